package engine_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/servant"
)

func newServer(t testing.TB) (*engine.Server, net.Listener) {
	svt, err := servant.New(servant.Config{IdgenWorkerID: 1}, servant.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var cfg engine.Config
	cfg.SetDefaults()
	cfg.ListenAddr = "127.0.0.1:0"
	srv := engine.NewServer(cfg, rpc.NewFunServantProcessor(svt), slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln, err := engine.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return srv, ln
}

func dial(t testing.TB, addr string) (*rpc.FunServantClient, thrift.TTransport) {
	trans := thrift.NewTBufferedTransport(thrift.NewTSocketConf(addr, nil), 4096)
	if err := trans.Open(); err != nil {
		t.Fatal(err)
	}
	return rpc.NewFunServantClientFactory(trans, thrift.NewTBinaryProtocolFactoryConf(nil)), trans
}

// TestShutdownLeavesNoGoroutine: after Shutdown, Serve has returned
// ErrServerClosed and every session goroutine is gone.
func TestShutdownLeavesNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	srv, ln := newServer(t)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	var transports []thrift.TTransport
	for i := 0; i < 10; i++ {
		c, tr := dial(t, ln.Addr().String())
		if x, err := c.Noop(context.Background(), int32(i)); err != nil || x != int32(i) {
			t.Fatalf("noop: %d %v", x, err)
		}
		transports = append(transports, tr)
	}
	if n := srv.Sessions(); n != 10 {
		t.Errorf("Sessions = %d, want 10", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, engine.ErrServerClosed) {
		t.Errorf("Serve returned %v, want ErrServerClosed", err)
	}
	for _, tr := range transports {
		tr.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines after Shutdown, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := srv.Serve(ln); !errors.Is(err, engine.ErrServerClosed) {
		t.Errorf("Serve after Shutdown = %v", err)
	}
}

// ExampleServer_Shutdown drains a server: calls in flight finish, idle
// sessions are closed, then Shutdown returns.
func ExampleServer_Shutdown() {
	svt, _ := servant.New(servant.Config{IdgenWorkerID: 1}, servant.Options{})
	var cfg engine.Config
	cfg.SetDefaults()
	cfg.ListenAddr = "127.0.0.1:0"
	srv := engine.NewServer(cfg, rpc.NewFunServantProcessor(svt), slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln, _ := engine.Listen(cfg)
	go srv.Serve(ln)

	// … on SIGTERM:
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	fmt.Println(srv.Shutdown(ctx))
	// Output: <nil>
}
