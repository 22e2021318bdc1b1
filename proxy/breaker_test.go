package proxy

import (
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/testenv"
	"github.com/fae-go/fae/pool"
)

// freeAddr is a loopback address nobody listens on (just now).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// A dead peer (nothing listening): each call tries one connect, not
// pool_capacity; after failure_allowance failed connects the breaker opens
// and calls fail at once without dialling; once the peer is back and
// retry_interval has passed, calls go through again.
func TestDeadPeer(t *testing.T) {
	addr := freeAddr(t)
	cfg := testConfig()
	cfg.Breaker.FailureAllowance = 3
	p, obs := newProxies(t, cfg)
	peer := Peer{Addr: addr, Protocol: "binary"}
	for i := int64(1); i <= 3; i++ {
		_, err := lcGet(bg, p, peer, "k")
		wantKind(t, err, pool.KindServerFailure, addr)
		var de *pool.DialError
		if !errors.As(err, &de) || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("error %v, want a *pool.DialError saying connection refused", err)
		}
		if s, _ := statsOf(p, addr); s.Dials != i {
			t.Fatalf("after %d calls, %d connects tried; want one per call", i, s.Dials)
		}
	}
	for range 5 {
		start := time.Now()
		_, err := lcGet(bg, p, peer, "k")
		wantKind(t, err, pool.KindBreakerOpen, addr)
		if took := time.Since(start); took > 100*time.Millisecond {
			t.Errorf("open breaker answered after %s, want at once", took)
		}
	}
	if s, _ := statsOf(p, addr); s.Dials != 3 || s.Breaker != "open" {
		t.Errorf("stats %+v, want 3 connects and the breaker open", s)
	}
	if obs.Sum(Backend, pool.KindBreakerOpen) != 5 || obs.Sum(Backend, pool.KindServerFailure) != 3 {
		t.Errorf("observer: %d breaker open, %d server failures; want 5, 3",
			obs.Sum(Backend, pool.KindBreakerOpen), obs.Sum(Backend, pool.KindServerFailure))
	}

	back := startPeer(t, "binary", false, func(c *engine.Config, _ *rpc.FunServantProcessor) { c.ListenAddr = addr })
	testenv.Eventually(t, 5*time.Second, "calls to go through once the peer is back", func() bool {
		v, err := lcGet(bg, p, back.peer, "back")
		return err == nil && v == "back"
	})
	if s, _ := statsOf(p, addr); s.Breaker != "closed" {
		t.Errorf("breaker %s after a successful call, want closed", s.Breaker)
	}
}

// A frozen peer (a child process stopped with SIGSTOP: the kernel still
// accepts connections, nothing answers) is a hung backend: each call times out
// after io_timeout, the health check fails too, and after failure_allowance
// timeouts the breaker opens: calls then fail at once, naming the peer. After
// SIGCONT the breaker closes again.
func TestFrozenPeer(t *testing.T) {
	child := startChildPeer(t, "compact", true)
	cfg := testConfig()
	cfg.IOTimeout, cfg.PoolCapacity = 300*time.Millisecond, 4
	cfg.Breaker = pool.BreakerConfig{FailureAllowance: 2, RetryInterval: 500 * time.Millisecond}
	p, obs := newProxies(t, cfg)
	addr := child.peer.Addr
	if v, err := lcGet(bg, p, child.peer, "warm"); err != nil || v != "warm" {
		t.Fatalf("call before the freeze = %q, %v", v, err)
	}

	child.signal(t, syscall.SIGSTOP)
	for range 2 {
		start := time.Now()
		_, err := lcGet(bg, p, child.peer, "k")
		wantKind(t, err, pool.KindTimeout, addr)
		if took := time.Since(start); took < 300*time.Millisecond || took > 3*time.Second {
			t.Errorf("timed out after %s, want io_timeout 300ms plus a health check of at most 1s", took)
		}
	}
	pp, _, _ := p.pool(child.peer)
	if pp.breaker.Checks.Load() != 2 || pp.breaker.CheckFailures.Load() != 2 {
		t.Errorf("%d health checks, %d failed; want 2 and 2", pp.breaker.Checks.Load(), pp.breaker.CheckFailures.Load())
	}
	start := time.Now()
	_, err := lcGet(bg, p, child.peer, "k")
	wantKind(t, err, pool.KindBreakerOpen, addr)
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("open breaker answered after %s, want at once", took)
	}
	if !strings.Contains(err.Error(), "server "+addr+": circuit open") {
		t.Errorf("error %q, want it to name the peer and say circuit open", err)
	}

	child.signal(t, syscall.SIGCONT)
	testenv.Eventually(t, 10*time.Second, "calls to go through after SIGCONT", func() bool {
		v, err := lcGet(bg, p, child.peer, "back")
		return err == nil && v == "back"
	})
	if s, _ := statsOf(p, addr); s.Breaker != "closed" {
		t.Errorf("breaker %s after SIGCONT and a successful call, want closed", s.Breaker)
	}
	if obs.Sum(Backend, pool.KindTimeout) != 2 || obs.Sum(Backend, pool.KindBreakerOpen) < 1 {
		t.Errorf("observer: %d timeouts, %d breaker open; want 2, at least 1",
			obs.Sum(Backend, pool.KindTimeout), obs.Sum(Backend, pool.KindBreakerOpen))
	}
}
