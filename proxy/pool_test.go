package proxy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/testenv"
	"github.com/fae-go/fae/pool"
)

// At most pool_capacity calls hold a connection; the next one waits up to
// borrow_timeout, then fails with KindBusy naming the peer and the numbers; a
// waiter gets the first connection given back; a waiter whose ctx ends stops waiting.
func TestPoolBoundAndBorrowTimeout(t *testing.T) {
	tp := startPeer(t, "binary", false, nil)
	cfg := testConfig()
	cfg.PoolCapacity, cfg.BorrowTimeout = 2, 300*time.Millisecond
	p, _ := newProxies(t, cfg)
	done := make(chan error, 3)
	for _, name := range []string{"b1", "b2"} {
		go func() { _, err := lcGet(bg, p, tp.peer, "block:"+name); done <- err }()
		waitFor(t, tp.started, name)
	}

	start := time.Now()
	_, err := lcGet(bg, p, tp.peer, "x")
	waited := time.Since(start)
	pe := wantKind(t, err, pool.KindBusy, tp.peer.Addr)
	if want := "all 2 connections busy, none free within borrow_timeout 300ms"; pe.Err == nil || pe.Err.Error() != want {
		t.Errorf("cause %v, want %q", pe.Err, want)
	}
	if waited < 300*time.Millisecond || waited > 2*time.Second {
		t.Errorf("busy after %s, want borrow_timeout 300ms", waited)
	}

	ctx, cancel := context.WithCancel(bg)
	go func() { _, err := lcGet(ctx, p, tp.peer, "x"); done <- err }()
	testenv.Eventually(t, 5*time.Second, "a call waiting for a connection", func() bool { return waiting(p, tp.peer.Addr) == 1 })
	cancel()
	start = time.Now()
	if err := <-done; !errors.Is(err, pool.KindCanceled) || !errors.Is(err, context.Canceled) {
		t.Fatalf("waiter whose ctx ended: %v, want KindCanceled", err)
	}
	if took := time.Since(start); took > 200*time.Millisecond {
		t.Errorf("the waiter returned %s after its ctx ended, want at once", took)
	}

	cfg.BorrowTimeout = 5 * time.Second // a waiter gets the first connection back
	p2, _ := newProxies(t, cfg)
	for _, name := range []string{"c1", "c2"} {
		go func() { _, err := lcGet(bg, p2, tp.peer, "block:"+name); done <- err }()
		waitFor(t, tp.started, name)
	}
	got := make(chan string, 1)
	go func() { v, err := lcGet(bg, p2, tp.peer, "waiter"); got <- fmt.Sprintf("%s %v", v, err) }()
	testenv.Eventually(t, 5*time.Second, "the third call to wait", func() bool { return waiting(p2, tp.peer.Addr) == 1 })
	tp.unblock("c1")
	if v := <-got; v != "waiter <nil>" {
		t.Fatalf("waiter: %s, want its answer once a connection was free", v)
	}
	for _, name := range []string{"b1", "b2", "c2"} {
		tp.unblock(name)
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Errorf("blocked call: %v", err)
		}
	}
	if n := tp.accepted(); n != 4 {
		t.Errorf("the peer accepted %d connections, want 4: 2 per Proxies of capacity 2", n)
	}
}

// A call that times out closes its connection: the peer's late reply can never
// answer the next call, which gets its own answer on a new connection, while
// the late reply is still on its way and after it was sent. A slow but live
// peer does not open the breaker (its health check passes).
func TestNoReuseAfterTimeout(t *testing.T) {
	tp := startPeer(t, "binary", false, nil)
	cfg := testConfig()
	cfg.PoolCapacity, cfg.IOTimeout, cfg.Breaker.FailureAllowance = 1, 200*time.Millisecond, 1
	p, obs := newProxies(t, cfg)
	start := time.Now()
	_, err := lcGet(bg, p, tp.peer, "sleep:600ms:stale")
	if took := time.Since(start); took < 200*time.Millisecond || took > 2*time.Second {
		t.Errorf("timed out after %s, want io_timeout 200ms (plus the health check)", took)
	}
	pe := wantKind(t, err, pool.KindTimeout, tp.peer.Addr)
	if !strings.Contains(pe.Err.Error(), "no reply within io_timeout 200ms") {
		t.Errorf("cause %q, want it to give io_timeout", pe.Err)
	}
	if v, err := lcGet(bg, p, tp.peer, "fresh1"); err != nil || v != "fresh1" {
		t.Fatalf("call after the timeout, the late reply pending = %q, %v; want fresh1", v, err)
	}
	testenv.Eventually(t, 5*time.Second, "the peer to end the late call's session (its reply had nowhere to go)",
		func() bool { return tp.open() == 1 })
	if v, err := lcGet(bg, p, tp.peer, "fresh2"); err != nil || v != "fresh2" {
		t.Fatalf("call after the late reply = %q, %v; want fresh2", v, err)
	}
	if n := tp.accepted(); n != 3 {
		t.Errorf("the peer accepted %d connections, want 3: one for the timed-out call, one for the health check, one after", n)
	}
	if s, _ := statsOf(p, tp.peer.Addr); s.Breaker != "closed" || s.Discarded != 1 {
		t.Errorf("stats %+v, want the breaker closed (the peer is alive) and 1 connection discarded", s)
	}
	if obs.Sum(Backend, pool.KindTimeout) != 1 || obs.Sum(Backend, pool.KindOK) != 2 {
		t.Errorf("observer: %d timeouts, %d ok; want 1, 2", obs.Sum(Backend, pool.KindTimeout), obs.Sum(Backend, pool.KindOK))
	}
}

// A connection the peer drops mid-call fails that call (KindServerFailure),
// and the next call dials a new one.
func TestNoReuseAfterFailure(t *testing.T) {
	tp := startPeer(t, "compact", true, nil)
	p, _ := newProxies(t, testConfig())
	_, err := lcGet(bg, p, tp.peer, "drop")
	wantKind(t, err, pool.KindServerFailure, tp.peer.Addr)
	if v, err := lcGet(bg, p, tp.peer, "next"); err != nil || v != "next" {
		t.Fatalf("call after a dropped connection = %q, %v", v, err)
	}
	if n := tp.accepted(); n != 2 {
		t.Errorf("the peer accepted %d connections, want 2", n)
	}
}

// Idle connections close after idle_timeout, and a later call dials again.
func TestIdleTimeout(t *testing.T) {
	tp := startPeer(t, "binary", true, nil)
	cfg := testConfig()
	cfg.IdleTimeout = 300 * time.Millisecond
	p, _ := newProxies(t, cfg)
	for _, key := range []string{"a", "b"} {
		if _, err := lcGet(bg, p, tp.peer, key); err != nil {
			t.Fatal(err)
		}
	}
	used := time.Now()
	if tp.open() != 1 {
		t.Fatalf("%d connections open, want 1", tp.open())
	}
	testenv.Eventually(t, 5*time.Second, "the idle connection to close", func() bool { return tp.open() == 0 })
	if idle := time.Since(used); idle < 300*time.Millisecond {
		t.Errorf("closed after %s idle, want at least idle_timeout 300ms", idle)
	}
	if s, _ := statsOf(p, tp.peer.Addr); s.Idle != 0 {
		t.Errorf("%d idle connections in the pool after idle_timeout, want 0", s.Idle)
	}
	if v, err := lcGet(bg, p, tp.peer, "c"); err != nil || v != "c" {
		t.Fatalf("call after the idle close = %q, %v", v, err)
	}
	if n := tp.accepted(); n != 2 {
		t.Errorf("the peer accepted %d connections, want 2", n)
	}
}

// With idle_timeout 0 (never), a pooled connection that the peer closed (its
// session_timeout) is seen when borrowed and replaced: the call does not fail.
func TestPeerClosedIdleConnection(t *testing.T) {
	tp := startPeer(t, "binary", false, func(c *engine.Config, _ *rpc.FunServantProcessor) { c.SessionTimeout = 200 * time.Millisecond })
	p, obs := newProxies(t, testConfig())
	if _, err := lcGet(bg, p, tp.peer, "a"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, "the peer to close the idle session", func() bool { return tp.open() == 0 })
	if v, err := lcGet(bg, p, tp.peer, "b"); err != nil || v != "b" {
		t.Fatalf("call on a pool whose connection the peer closed = %q, %v", v, err)
	}
	if s, _ := statsOf(p, tp.peer.Addr); s.Discarded != 1 || tp.accepted() != 2 {
		t.Errorf("stats %+v, peer accepted %d; want 1 discarded, 2 accepted", s, tp.accepted())
	}
	if obs.Sum(Backend, pool.KindServerFailure) != 0 {
		t.Error("a call failed on the closed connection")
	}
}

// When the caller's ctx ends mid-call, the call stops at once and its
// connection is closed: the peer sees its client leave.
func TestCancelClosesCall(t *testing.T) {
	tp := startPeer(t, "compact", false, nil)
	cfg := testConfig()
	cfg.IOTimeout = 10 * time.Second
	p, obs := newProxies(t, cfg)
	ctx, cancel := context.WithCancelCause(bg)
	errc := make(chan error, 1)
	go func() { _, err := lcGet(ctx, p, tp.peer, "block:cancel"); errc <- err }()
	waitFor(t, tp.started, "cancel")
	start := time.Now()
	gone := errors.New("client gone")
	cancel(gone)
	err := <-errc
	if took := time.Since(start); took > time.Second {
		t.Errorf("the canceled call returned after %s, want at once", took)
	}
	wantKind(t, err, pool.KindCanceled, tp.peer.Addr)
	if !errors.Is(err, gone) {
		t.Errorf("error %v, want it to carry the ctx's cause", err)
	}
	waitFor(t, tp.gone, "cancel") // the peer's call saw its connection close
	if s, _ := statsOf(p, tp.peer.Addr); s.Breaker != "closed" || s.Idle != 0 {
		t.Errorf("stats %+v, want the breaker closed and no idle connection", s)
	}
	if obs.Sum(Backend, pool.KindCanceled) != 1 {
		t.Errorf("observer: %d canceled, want 1", obs.Sum(Backend, pool.KindCanceled))
	}
}

// Retain retires the pools of departed peers: a call in flight to one ends
// normally, its connection closes after it; the kept peer's pool stays.
func TestRetain(t *testing.T) {
	a := startPeer(t, "binary", false, nil)
	b := startPeer(t, "compact", true, nil)
	p, _ := newProxies(t, testConfig())
	if _, err := lcGet(bg, p, b.peer, "b"); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() { v, err := lcGet(bg, p, a.peer, "block:r"); got <- fmt.Sprintf("%s %v", v, err) }()
	waitFor(t, a.started, "r")
	if _, err := lcGet(bg, p, a.peer, "idle"); err != nil { // a second connection to a, left idle
		t.Fatal(err)
	}
	if a.open() != 2 {
		t.Fatalf("%d connections open to a, want 2 (idle, busy)", a.open())
	}
	p.Retain([]string{b.peer.Addr})
	if _, ok := statsOf(p, a.peer.Addr); ok {
		t.Error("a still has a pool after Retain without it")
	}
	testenv.Eventually(t, 5*time.Second, "a's idle connection to close", func() bool { return a.open() == 1 })
	a.unblock("r")
	if v := <-got; v != "r <nil>" {
		t.Fatalf("call in flight during Retain: %s, want its answer", v)
	}
	testenv.Eventually(t, 5*time.Second, "a's last connection to close after its call", func() bool { return a.open() == 0 })
	if b.open() != 1 {
		t.Errorf("%d connections open to b, want its idle one kept", b.open())
	}
	if v, err := lcGet(bg, p, a.peer, "again"); err != nil || v != "again" {
		t.Fatalf("call to a after it came back = %q, %v", v, err)
	}
	if v, err := lcGet(bg, p, b.peer, "b2"); err != nil || v != "b2" || b.accepted() != 1 {
		t.Fatalf("call to b = %q, %v, with %d connections accepted; want its pooled connection reused", v, err, b.accepted())
	}
}

// A peer that comes back on the same address with another protocol and
// transport gets a new pool speaking them; the old one is retired.
func TestPeerChangesProtocol(t *testing.T) {
	old := startPeer(t, "binary", false, nil)
	p, _ := newProxies(t, testConfig())
	if _, err := lcGet(bg, p, old.peer, "a"); err != nil {
		t.Fatal(err)
	}
	old.srv.Close()
	addr := old.peer.Addr
	now := startPeer(t, "compact", true, func(c *engine.Config, _ *rpc.FunServantProcessor) { c.ListenAddr = addr })
	if v, err := lcGet(bg, p, now.peer, "b"); err != nil || v != "b" {
		t.Fatalf("call to the peer serving compact/framed = %q, %v", v, err)
	}
	if s, _ := statsOf(p, addr); s.Peer != now.peer || len(p.Stats()) != 1 {
		t.Errorf("stats %+v, want one pool, of %+v", p.Stats(), now.peer)
	}
}

// io_timeout 0 is a bound of 5s (IOTimeoutWhenZero), not an immediate timeout.
func TestZeroIOTimeout(t *testing.T) {
	tp := startPeer(t, "binary", false, nil)
	cfg := testConfig()
	cfg.IOTimeout = 0
	p, _ := newProxies(t, cfg)
	if v, err := lcGet(bg, p, tp.peer, "sleep:100ms:slow"); err != nil || v != "slow" {
		t.Fatalf("a 100ms call with io_timeout 0 = %q, %v", v, err)
	}
}

// A panic in fn closes its connection and frees its slot.
func TestPanicInFn(t *testing.T) {
	tp := startPeer(t, "binary", false, nil)
	cfg := testConfig()
	cfg.PoolCapacity = 1
	p, _ := newProxies(t, cfg)
	func() {
		defer func() {
			if r := recover(); r != "fn bug" {
				t.Errorf("recovered %v, want the panic of fn", r)
			}
		}()
		p.Call(bg, tp.peer, "lc_get", func(ctx context.Context, c *rpc.FunServantClient) error {
			c.LcGet(ctx, rctx, "a")
			panic("fn bug")
		})
	}()
	testenv.Eventually(t, 5*time.Second, "the connection of the call that panicked to close", func() bool { return tp.open() == 0 })
	if v, err := lcGet(bg, p, tp.peer, "b"); err != nil || v != "b" {
		t.Fatalf("call after a panic (capacity 1) = %q, %v", v, err)
	}
}
