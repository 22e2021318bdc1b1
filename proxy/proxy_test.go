package proxy

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/testenv"
	"github.com/fae-go/fae/pool"
)

// Every protocol × transport a peer may serve: answers, declared exceptions,
// application exceptions and the breaker's health check all work, and one
// connection serves them all.
func TestCombinations(t *testing.T) {
	for _, c := range combos {
		t.Run(comboName(c.protocol, c.framed), func(t *testing.T) {
			tp := startPeer(t, c.protocol, c.framed, func(_ *engine.Config, proc *rpc.FunServantProcessor) {
				delete(proc.ProcessorMap(), "my_merge") // a peer of an older version
			})
			p, obs := newProxies(t, testConfig())
			for _, key := range []string{"hello", "world"} {
				if v, err := lcGet(bg, p, tp.peer, key); err != nil || v != key {
					t.Fatalf("lc_get %q = %q, %v; want the key back", key, v, err)
				}
			}
			_, err := lcGet(bg, p, tp.peer, "miss")
			if m, ok := err.(*rpc.TCacheMissed); !ok || m.GetMessage() != "lcache missed: miss" {
				t.Fatalf("lc_get miss: %v (%T), want the peer's *rpc.TCacheMissed as is", err, err)
			}
			_, err = lcGet(bg, p, tp.peer, "fail:lock table full")
			wantApplicationError(t, err, tp.peer.Addr, thrift.INTERNAL_ERROR, "lock table full")
			if want := "peer lc_get: server " + tp.peer.Addr + ": refused: lock table full"; err.Error() != want {
				t.Errorf("error text %q, want %q", err.Error(), want)
			}
			err = p.Call(bg, tp.peer, "my_merge", func(ctx context.Context, c *rpc.FunServantClient) error {
				_, err := c.MyMerge(ctx, rctx, "p", "t", 1, "id=1", "k", "c", "{}")
				return err
			})
			wantApplicationError(t, err, tp.peer.Addr, thrift.UNKNOWN_METHOD, "Unknown function my_merge")
			if v, err := lcGet(bg, p, tp.peer, "after"); err != nil || v != "after" {
				t.Fatalf("lc_get after the exceptions = %q, %v", v, err)
			}
			if n := tp.accepted(); n != 1 {
				t.Errorf("the peer accepted %d connections, want 1: answers and exceptions keep the connection", n)
			}
			pp, _, _ := p.pool(tp.peer)
			if err := pp.healthCheck(context.Background()); err != nil {
				t.Errorf("health check: %v", err)
			}
			for kind, want := range map[pool.Kind]int64{pool.KindOK: 3, pool.KindMiss: 1, pool.KindRefused: 2} {
				if got := obs.Sum(Backend, kind); got != want {
					t.Errorf("observer: %d calls of kind %s, want %d", got, kind.String(), want)
				}
			}
		})
	}
}

// wantApplicationError fails the test unless err is a KindRefused *pool.Error
// whose *ApplicationError has the type and message.
func wantApplicationError(t *testing.T, err error, peer string, typeID int32, msg string) *ApplicationError {
	t.Helper()
	wantKind(t, err, pool.KindRefused, peer)
	var ae *ApplicationError
	if !errors.As(err, &ae) || ae.Type != typeID || ae.Message != msg || ae.Peer != peer {
		t.Fatalf("error %v: cause %+v, want an *ApplicationError of type %d, message %q, peer %s", err, ae, typeID, msg, peer)
	}
	return ae
}

// Every call is reported once, named by its method, with Pool and Server the
// peer; refusals before any connection have Server "".
func TestObserver(t *testing.T) {
	tp := startPeer(t, "binary", false, nil)
	p, obs := newProxies(t, testConfig())
	lcGet(bg, p, tp.peer, "a")
	lcGet(bg, p, tp.peer, "miss")
	p.Call(bg, tp.peer, "noop", func(ctx context.Context, c *rpc.FunServantClient) error {
		_, err := c.Noop(ctx, 7)
		return err
	})
	bad := Peer{Addr: tp.peer.Addr, Protocol: "json"}
	err := p.Call(bg, bad, "noop", func(context.Context, *rpc.FunServantClient) error {
		t.Error("fn ran for a peer of protocol json")
		return nil
	})
	var pe *pool.Error
	if !errors.As(err, &pe) || pe.Kind != pool.KindBadArgument || pe.Server != "" {
		t.Errorf("protocol json: %v, want KindBadArgument with no server", err)
	}
	snap := obs.Snapshot()
	if len(snap) != 3 {
		t.Fatalf("observer has %d entries, want 3 (lc_get, noop, refused noop): %+v", len(snap), snap)
	}
	want := []struct {
		server, name string
		kind         pool.Kind
		n            int64
	}{{"", "noop", pool.KindBadArgument, 1}, {tp.peer.Addr, "lc_get", pool.KindOK, 1},
		{tp.peer.Addr, "lc_get", pool.KindMiss, 1}, {tp.peer.Addr, "noop", pool.KindOK, 1}}
	for _, w := range want {
		var got int64
		for _, oc := range snap {
			if oc.Backend == Backend && oc.Pool == tp.peer.Addr && oc.Server == w.server && oc.Name == w.name {
				got = oc.Count(w.kind)
			}
		}
		if got != w.n {
			t.Errorf("observer: %s %q %s = %d, want %d", w.name, w.server, w.kind.String(), got, w.n)
		}
	}
}

// After Close every call fails with KindClosed, and the pools' connections are closed.
func TestClose(t *testing.T) {
	tp := startPeer(t, "binary", false, nil)
	p, _ := newProxies(t, testConfig())
	if _, err := lcGet(bg, p, tp.peer, "a"); err != nil {
		t.Fatal(err)
	}
	p.Close()
	_, err := lcGet(bg, p, tp.peer, "b")
	var pe *pool.Error
	if !errors.As(err, &pe) || pe.Kind != pool.KindClosed {
		t.Fatalf("after Close: %v, want KindClosed", err)
	}
	testenv.Eventually(t, 5*time.Second, "the peer to see the idle connection closed", func() bool { return tp.open() == 0 })
}

func TestConfig(t *testing.T) {
	var c Config
	c.SetDefaults()
	want := Config{PoolCapacity: 10, IOTimeout: 10 * time.Second, BorrowTimeout: 10 * time.Second,
		DiagnosticInterval: 5 * time.Second, TCPNoDelay: true, BufferSize: 4096, PipeConnections: 2,
		Breaker: pool.BreakerConfig{FailureAllowance: 5, RetryInterval: 10 * time.Second}}
	if c != want {
		t.Errorf("defaults %+v, want %+v", c, want)
	}
	if err := c.Validate("servants.proxy"); err != nil {
		t.Error(err)
	}
	if c.CallTimeout() != 10*time.Second {
		t.Errorf("CallTimeout = %s, want io_timeout 10s", c.CallTimeout())
	}
	c.IOTimeout = 0
	if c.CallTimeout() != 5*time.Second {
		t.Errorf("io_timeout 0: CallTimeout = %s, want 5s", c.CallTimeout())
	}
	c.PipeConnections = 65
	if err := c.Validate("servants.proxy"); err == nil || err.Error() != "servants.proxy.pipe_connections: must be 0 to 64, got 65" {
		t.Errorf("pipe_connections 65: %v", err)
	}
	c.PipeConnections = 0
	c.Breaker.FailureAllowance = 0
	if err := c.Validate("servants.proxy"); err == nil || err.Error() != "servants.proxy.breaker.failure_allowance: must be at least 1, got 0" {
		t.Errorf("failure_allowance 0: %v", err)
	}
}
