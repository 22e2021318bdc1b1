package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/fae-go/fae/dashboard"
	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/metrics"
	"github.com/fae-go/fae/servant"
)

// dashboardReadHeaderTimeout bounds a dashboard client's request headers;
// every answer is small and quick, so a write timeout bounds the rest.
const (
	dashboardReadHeaderTimeout = 10 * time.Second
	dashboardWriteTimeout      = 30 * time.Second
)

// dashboardSources are what this faed's dashboard reads: srv's and svt's
// counters, m's Prometheus registry (the latency histogram), and with a
// cluster (cl non-nil) its membership. self is how the header names this
// node: its advertised address, else its RPC listen addresses.
func dashboardSources(srv *engine.Server, svt *servant.FunServant, m *metrics.Metrics, cl *cluster,
	self string) dashboard.Sources {
	src := dashboard.Sources{Version: version, BuildID: buildID, Started: time.Now(), Engine: &srv.Stats,
		Servant: svt, Gatherer: m.Registry(), Self: self}
	if cl != nil {
		src.Peers = func() metrics.Peers { return metrics.Peers{Self: cl.self, Members: cl.reg.Members()} }
	}
	// Every backend server's and peer's breaker, as a whole: "open" when its
	// dial or its command side is.
	src.Breakers = func() []dashboard.BreakerState {
		stats := svt.PoolStats()
		out := make([]dashboard.BreakerState, 0, len(stats))
		for _, st := range stats {
			out = append(out, dashboard.BreakerState{Backend: st.Backend, Pool: st.Pool, Server: st.Server, State: st.Breaker})
		}
		return out
	}
	return src
}

// serveDashboard serves the dashboard of src on addr (dashboard_listen_addr;
// a bare ":port" binds 127.0.0.1, engine.APIListenAddr) on a listener of its
// own, sampling from now on. It returns the bound address and the function
// that stops the server and the sampler (call it at exit); with addr "" it
// serves nothing and returns "" and a no-op. The error names the key.
func serveDashboard(addr string, src dashboard.Sources, logger *slog.Logger) (bound string, stop func(), err error) {
	if addr == "" {
		return "", func() {}, nil
	}
	ln, err := net.Listen("tcp", engine.APIListenAddr(addr))
	if err != nil {
		return "", nil, fmt.Errorf("dashboard_listen_addr %s: %w", addr, err)
	}
	bound = ln.Addr().String()
	src.SelfDashboard = bound
	d := dashboard.New(src, dashboard.Options{})
	srv := &http.Server{Handler: d, ReadHeaderTimeout: dashboardReadHeaderTimeout, WriteTimeout: dashboardWriteTimeout}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("dashboard stopped", "addr", bound, "err", err)
		}
	}()
	return bound, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		d.Stop()
	}, nil
}

// advertisedDashboard is the dashboard address this node registers in its
// member record, so that the other nodes' dashboards link to it: the bound
// address, with the node's advertised host (self) in place of an unspecified
// one (0.0.0.0, ::). "" when the dashboard is off.
func advertisedDashboard(bound, self string) string {
	host, port, err := net.SplitHostPort(bound)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if h, _, err := net.SplitHostPort(self); err == nil && h != "" {
			return net.JoinHostPort(h, port)
		}
	}
	return bound
}

// selfName is how the dashboard names this node: its advertised address in
// a cluster, else its RPC listen addresses.
func selfName(cl *cluster, lns []net.Listener) string {
	if a := cl.advertised(); a != "" {
		return a
	}
	return strings.Join(engine.ListenerAddrs(lns), ",")
}
