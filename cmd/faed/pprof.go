package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/fae-go/fae/engine"
)

// pprofReadHeaderTimeout bounds a pprof client's request headers; the
// profiles themselves take as long as asked (/debug/pprof/profile?seconds=30),
// so there is no write timeout.
const pprofReadHeaderTimeout = 10 * time.Second

// pprofMux is net/http/pprof's handlers on a mux of their own: never the
// default mux (the original served pprof and expvar there, so they leaked onto
// the dashboard port) and never the RPC port.
func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // heap, goroutine, allocs, block, mutex…
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// servePprof serves Go's profiles on addr (pprof_listen_addr; a bare ":port"
// binds 127.0.0.1, engine.APIListenAddr) under /debug/pprof/. It returns the
// bound address and a stop function; with addr "" it serves nothing and
// returns "" and a no-op. The error names the key.
func servePprof(addr string, logger *slog.Logger) (bound string, stop func(), err error) {
	if addr == "" {
		return "", func() {}, nil
	}
	ln, err := net.Listen("tcp", engine.APIListenAddr(addr))
	if err != nil {
		return "", nil, fmt.Errorf("pprof_listen_addr %s: %w", addr, err)
	}
	srv := &http.Server{Handler: pprofMux(), ReadHeaderTimeout: pprofReadHeaderTimeout}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("pprof stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}
