package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/testenv"
	"github.com/fae-go/fae/pool"
)

// lock forwards lock of key to peer as rid.
func lock(ctx context.Context, p *Proxies, peer Peer, rid int64, key string) (bool, error) {
	var got bool
	err := p.Call(ctx, peer, "lock", func(ctx context.Context, c *rpc.FunServantClient) (err error) {
		got, err = c.Lock(ctx, &rpc.Context{Rid: rid, Reason: "proxy.test"}, "test", key)
		return err
	})
	return got, err
}

// unlock forwards unlock of key to peer as rid.
func unlock(ctx context.Context, p *Proxies, peer Peer, rid int64, key string) error {
	return p.Call(ctx, peer, "unlock", func(ctx context.Context, c *rpc.FunServantClient) error {
		return c.Unlock(ctx, &rpc.Context{Rid: rid, Reason: "proxy.test"}, "test", key)
	})
}

// 256 callers lock and unlock keys of their own through one peer, in every
// protocol and transport: each gets its own answers (a reply handed to the
// wrong caller would answer a lock with another key's state), and all of them
// share pipe_connections connections.
func TestPipeConcurrentCallers(t *testing.T) {
	for _, cb := range combos {
		t.Run(comboName(cb.protocol, cb.framed), func(t *testing.T) {
			tp := startPeer(t, cb.protocol, cb.framed, nil)
			cfg := testConfig()
			cfg.PipeConnections = 2
			p, obs := newProxies(t, cfg)
			const callers, rounds = 256, 4
			var wg sync.WaitGroup
			errs := make(chan error, callers)
			for i := range callers {
				wg.Go(func() {
					if err := lockRounds(p, tp.peer, int64(i+1), fmt.Sprintf("k%d", i), rounds); err != nil {
						errs <- fmt.Errorf("caller %d: %w", i, err)
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			s, _ := statsOf(p, tp.peer.Addr)
			if tp.accepted() > 2 || s.PipeConns != 2 || s.PipeInFlight != 0 || s.Idle != 0 {
				t.Errorf("%d connections accepted, stats %+v; want the calls on 2 pipelined connections, none in flight", tp.accepted(), s)
			}
			if n := obs.Sum(Backend, pool.KindOK); n != callers*rounds*5 {
				t.Errorf("observer: %d calls OK, want %d", n, callers*rounds*5)
			}
		})
	}
}

// Calls gather on the first pipelined connection while it has fewer than
// pipeSpill calls in flight: 16 concurrent callers (at most 16 in flight)
// open one connection of the 4 allowed, and the 256 callers above open more.
func TestPipeCallsGatherOnFirstConnection(t *testing.T) {
	tp := startPeer(t, "binary", false, nil)
	cfg := testConfig()
	cfg.PipeConnections = 4
	p, _ := newProxies(t, cfg)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			if err := lockRounds(p, tp.peer, int64(i+1), fmt.Sprintf("g%d", i), 20); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if s, _ := statsOf(p, tp.peer.Addr); tp.accepted() != 1 || s.PipeConns != 1 {
		t.Errorf("%d connections accepted, %d pipelined open; want 1: 16 callers stay under pipeSpill %d", tp.accepted(), s.PipeConns, pipeSpill)
	}
}

// lockRounds takes key, finds it held, frees it, takes and frees it again, rounds times.
func lockRounds(p *Proxies, peer Peer, rid int64, key string, rounds int) error {
	for range rounds {
		for j, want := range []bool{true, false} {
			got, err := lock(bg, p, peer, rid, key)
			if err != nil || got != want {
				return fmt.Errorf("lock %d of %s = %t, %v; want %t", j, key, got, err, want)
			}
		}
		if err := unlock(bg, p, peer, rid, key); err != nil {
			return err
		}
		if got, err := lock(bg, p, peer, rid, key); err != nil || !got {
			return fmt.Errorf("lock after unlock of %s = %t, %v", key, got, err)
		}
		if err := unlock(bg, p, peer, rid, key); err != nil {
			return err
		}
	}
	return nil
}

// A frozen peer (a child process stopped with SIGSTOP): every call pending on
// the pipelined connection fails at io_timeout (plus the breaker's health
// check) with KindTimeout, saying it may or may not have run; the breaker
// opens; after SIGCONT calls succeed again on a new connection.
func TestPipeFrozenPeer(t *testing.T) {
	child := startChildPeer(t, "binary", false)
	cfg := testConfig()
	cfg.IOTimeout, cfg.PipeConnections = 300*time.Millisecond, 1
	cfg.Breaker = pool.BreakerConfig{FailureAllowance: 2, RetryInterval: 500 * time.Millisecond}
	p, obs := newProxies(t, cfg)
	addr := child.peer.Addr
	if got, err := lock(bg, p, child.peer, 1, "warm"); err != nil || !got {
		t.Fatalf("lock before the freeze = %t, %v", got, err)
	}

	child.signal(t, syscall.SIGSTOP)
	const n = 8
	errs := make(chan error, n)
	start := time.Now()
	for i := range n {
		go func() { _, err := lock(bg, p, child.peer, 1, fmt.Sprintf("f%d", i)); errs <- err }()
	}
	for range n {
		err := <-errs
		wantKind(t, err, pool.KindTimeout, addr)
		if !strings.Contains(err.Error(), "may or may not have run") || !strings.Contains(err.Error(), "io_timeout 300ms") {
			t.Errorf("error %q, want it to say no reply within io_timeout and that the call may or may not have run", err)
		}
	}
	if took := time.Since(start); took < 300*time.Millisecond || took > 3*time.Second {
		t.Errorf("calls failed after %s, want io_timeout 300ms plus a health check of at most 1s", took)
	}
	if s, _ := statsOf(p, addr); s.Breaker != "open" || s.PipeConns != 0 {
		t.Errorf("stats %+v after %d timeouts, want the breaker open and the connection closed", s, n)
	}
	start = time.Now()
	_, err := lock(bg, p, child.peer, 1, "k")
	wantKind(t, err, pool.KindBreakerOpen, addr)
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("open breaker answered after %s, want at once", took)
	}

	child.signal(t, syscall.SIGCONT)
	testenv.Eventually(t, 10*time.Second, "locks to go through after SIGCONT", func() bool {
		got, err := lock(bg, p, child.peer, 1, "back")
		return err == nil && got
	})
	if s, _ := statsOf(p, addr); s.Breaker != "closed" || s.Dials != 2 || s.PipeConns != 1 {
		t.Errorf("stats %+v after SIGCONT, want the breaker closed, a second connection dialled and open", s)
	}
	if obs.Sum(Backend, pool.KindTimeout) != n {
		t.Errorf("observer: %d timeouts, want %d", obs.Sum(Backend, pool.KindTimeout), n)
	}
}

// A killed peer: the call pending on it fails at once (not at io_timeout)
// saying it may or may not have run; the next calls dial, are refused, and
// after failure_allowance refused dials the breaker opens and calls fail at
// once without dialling.
func TestPipeKilledPeer(t *testing.T) {
	child := startChildPeer(t, "compact", true)
	cfg := testConfig()
	cfg.IOTimeout = 10 * time.Second
	cfg.Breaker.FailureAllowance = 2
	p, _ := newProxies(t, cfg)
	addr := child.peer.Addr
	errc := make(chan error, 1)
	go func() { _, err := lock(bg, p, child.peer, 1, "sleep:5s:k"); errc <- err }()
	testenv.Eventually(t, 5*time.Second, "the call in flight", func() bool {
		s, _ := statsOf(p, addr)
		return s.PipeInFlight == 1
	})
	start := time.Now()
	if err := child.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	err := <-errc
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the pending call failed %s after the kill, want at once", took)
	}
	wantKind(t, err, pool.KindServerFailure, addr)
	if !strings.Contains(err.Error(), "may or may not have run") {
		t.Errorf("error %q, want it to say the call may or may not have run", err)
	}
	child.cmd.Wait() // the process has exited: its listening socket is closed too
	for range 2 {
		_, err := lock(bg, p, child.peer, 1, "k")
		var de *pool.DialError
		if wantKind(t, err, pool.KindServerFailure, addr); !errors.As(err, &de) {
			t.Errorf("error %v, want a refused dial", err)
		}
	}
	start = time.Now()
	_, err = lock(bg, p, child.peer, 1, "k")
	wantKind(t, err, pool.KindBreakerOpen, addr)
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("open breaker answered after %s, want at once", took)
	}
	if s, _ := statsOf(p, addr); s.Dials != 3 {
		t.Errorf("stats %+v, want 3 dials: the first connection and two refused", s)
	}
}

// A caller whose client leaves stops waiting at once; the connection is not
// broken: the calls queued behind it on the same connection get their
// answers, and no new connection is dialled.
func TestPipeCancel(t *testing.T) {
	tp := startPeer(t, "binary", true, nil)
	cfg := testConfig()
	cfg.PipeConnections = 1
	p, obs := newProxies(t, cfg)
	ctx, cancel := context.WithCancelCause(bg)
	errc := make(chan error, 1)
	go func() { _, err := lock(ctx, p, tp.peer, 1, "block:c"); errc <- err }()
	waitFor(t, tp.started, "c")
	behind := make(chan string, 1)
	go func() { got, err := lock(bg, p, tp.peer, 2, "behind"); behind <- fmt.Sprint(got, err) }()
	testenv.Eventually(t, 5*time.Second, "the second call queued", func() bool {
		s, _ := statsOf(p, tp.peer.Addr)
		return s.PipeInFlight == 2
	})
	gone := errors.New("client gone")
	start := time.Now()
	cancel(gone)
	err := <-errc
	if took := time.Since(start); took > time.Second {
		t.Errorf("the canceled call returned after %s, want at once", took)
	}
	wantKind(t, err, pool.KindCanceled, tp.peer.Addr)
	if !errors.Is(err, gone) {
		t.Errorf("error %v, want it to carry the ctx's cause", err)
	}
	tp.unblock("c") // the peer answers the abandoned call; its reply is skipped
	if got := <-behind; got != "true <nil>" {
		t.Fatalf("call behind the canceled one = %s, want true", got)
	}
	if got, err := lock(bg, p, tp.peer, 3, "after"); err != nil || !got {
		t.Fatalf("lock after = %t, %v", got, err)
	}
	if s, _ := statsOf(p, tp.peer.Addr); tp.accepted() != 1 || s.PipeConns != 1 || s.Breaker != "closed" {
		t.Errorf("%d connections accepted, stats %+v; want the one connection kept", tp.accepted(), s)
	}
	if obs.Sum(Backend, pool.KindCanceled) != 1 || obs.Sum(Backend, pool.KindOK) != 2 {
		t.Errorf("observer: %d canceled, %d OK; want 1, 2", obs.Sum(Backend, pool.KindCanceled), obs.Sum(Backend, pool.KindOK))
	}
}

// Retain closes the pipelined connections of a departed peer once their
// calls are answered, and Close closes the others.
func TestPipeRetainAndClose(t *testing.T) {
	a := startPeer(t, "binary", false, nil)
	b := startPeer(t, "compact", false, nil)
	p, _ := newProxies(t, testConfig())
	got := make(chan string, 1)
	go func() { ok, err := lock(bg, p, a.peer, 1, "block:r"); got <- fmt.Sprint(ok, err) }()
	waitFor(t, a.started, "r")
	if ok, err := lock(bg, p, b.peer, 1, "b"); err != nil || !ok {
		t.Fatalf("lock on b = %t, %v", ok, err)
	}
	p.Retain([]string{b.peer.Addr})
	a.unblock("r")
	if v := <-got; v != "true <nil>" {
		t.Fatalf("call in flight during Retain: %s, want its answer", v)
	}
	testenv.Eventually(t, 5*time.Second, "a's pipelined connection to close after its call", func() bool { return a.open() == 0 })
	if b.open() != 1 {
		t.Errorf("%d connections open to b, want its pipelined one kept", b.open())
	}
	p.Close()
	testenv.Eventually(t, 5*time.Second, "b's pipelined connection to close", func() bool { return b.open() == 0 })
}

// A reply out of step (a wrong sequence id) breaks the connection: the call
// fails with KindServerFailure and the next call dials a new connection.
// The peer is a fake (a raw socket answering with the next sequence id): a
// real faed never sends one, so the fault cannot be caused for real.
func TestPipeOutOfStep(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan struct{}, 8)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			go answerOutOfStep(nc)
		}
	}()
	p, _ := newProxies(t, testConfig())
	peer := Peer{Addr: ln.Addr().String(), Protocol: "binary"}
	for i := range 2 {
		_, err := lock(bg, p, peer, 1, "k")
		wantKind(t, err, pool.KindServerFailure, peer.Addr)
		if !strings.Contains(err.Error(), "out of step") {
			t.Errorf("call %d: error %q, want it to say the reply was out of step", i, err)
		}
	}
	if len(accepted) != 2 {
		t.Errorf("%d connections dialled, want a new one for the call after the broken one", len(accepted))
	}
}

// answerOutOfStep answers each lock on nc with the sequence id after its own.
func answerOutOfStep(nc net.Conn) {
	defer nc.Close()
	trans := thrift.NewTBufferedTransport(sockTransport{nc}, 4096)
	prot := thrift.NewTBinaryProtocolConf(trans, nil)
	for {
		name, _, seq, err := prot.ReadMessageBegin(bg)
		if err != nil {
			return
		}
		var args rpc.FunServantLockArgs
		if args.Read(bg, prot) != nil || prot.ReadMessageEnd(bg) != nil {
			return
		}
		res := rpc.FunServantLockResult{Success: thrift.BoolPtr(true)}
		prot.WriteMessageBegin(bg, name, thrift.REPLY, seq+1)
		res.Write(bg, prot)
		prot.WriteMessageEnd(bg)
		if prot.Flush(bg) != nil {
			return
		}
	}
}

// relay forwards TCP connections to target; cut closes every connection it
// carries (both sides), as a peer restart or a network fault would.
type relay struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func startRelay(t *testing.T, target string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln}
	t.Cleanup(func() { ln.Close(); r.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			r.mu.Lock()
			r.conns = append(r.conns, c, u)
			r.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	return r
}

func (r *relay) cut() {
	r.mu.Lock()
	conns := r.conns
	r.conns = nil
	r.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// Pipelined connections cut again and again under 64 callers: a call fails
// or gets its own answer, never another's. Half the calls lock a key
// another rid holds (false), half a new key (true): a reply handed to the
// wrong call, such as to a call reused while the connection's failure still
// held it, would answer one with the other's value.
func TestPipeCutsUnderLoad(t *testing.T) {
	tp := startPeer(t, "binary", false, nil)
	rl := startRelay(t, tp.peer.Addr)
	peer := Peer{Addr: rl.ln.Addr().String(), Protocol: "binary"}
	cfg := testConfig()
	cfg.Breaker.RetryInterval = 10 * time.Millisecond
	p, _ := newProxies(t, cfg)
	if got, err := lock(bg, p, tp.peer, 1, "held"); err != nil || !got {
		t.Fatalf("lock of the held key: %v, %v", got, err)
	}
	var ok, failed, wrong atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key, want := fmt.Sprintf("new:%d:%d", w, i), true
				if i%2 == 1 {
					key, want = "held", false
				}
				got, err := lock(bg, p, peer, int64(w+2), key)
				switch {
				case err != nil:
					failed.Add(1)
				case got != want:
					wrong.Add(1)
				default:
					ok.Add(1)
				}
			}
		})
	}
	// Each cut comes once calls are answered again since the one before: a
	// fresh connection carries calls in flight when it is cut.
	for i := range 40 {
		before := ok.Load()
		testenv.Eventually(t, 5*time.Second, fmt.Sprintf("calls answered before cut %d", i+1), func() bool { return ok.Load() >= before+16 })
		rl.cut()
	}
	before := ok.Load()
	testenv.Eventually(t, 5*time.Second, "1000 more calls answered", func() bool { return ok.Load() > before+1000 })
	close(stop)
	wg.Wait()
	if wrong.Load() != 0 {
		t.Errorf("%d calls answered another call's value (%d right, %d failed)", wrong.Load(), ok.Load(), failed.Load())
	}
	if failed.Load() == 0 {
		t.Errorf("no call failed: the cuts did not break calls in flight (%d answered)", ok.Load())
	}
	t.Logf("%d answered, %d failed with their connection", ok.Load(), failed.Load())
}

// A frozen peer whose callers all give up before io_timeout (clients with a
// shorter timeout of their own: 50 ms here, io_timeout 300 ms): no caller
// is left to see a timeout, and cancellations do not count, but each
// connection whose watchdog fires counts one timeout on the peer's breaker
// itself, so the breaker still opens and calls fail at once. Before (found
// by a cluster review), the breaker of a frozen peer stayed closed for as
// long as its callers were impatient, and reads never fell back to local.
func TestPipeFrozenPeerImpatientCallers(t *testing.T) {
	child := startChildPeer(t, "binary", false)
	cfg := testConfig()
	cfg.IOTimeout, cfg.PipeConnections = 300*time.Millisecond, 1
	cfg.Breaker = pool.BreakerConfig{FailureAllowance: 2, RetryInterval: time.Hour}
	p, _ := newProxies(t, cfg)
	addr := child.peer.Addr
	if got, err := lock(bg, p, child.peer, 1, "warm"); err != nil || !got {
		t.Fatalf("lock before the freeze = %t, %v", got, err)
	}
	child.signal(t, syscall.SIGSTOP)
	defer child.signal(t, syscall.SIGCONT)
	for round := range 2 { // failure_allowance: one timeout counted per connection
		ctx, cancel := context.WithTimeout(bg, 50*time.Millisecond)
		_, err := lock(ctx, p, child.peer, 1, fmt.Sprintf("r%d", round))
		cancel()
		wantKind(t, err, pool.KindCanceled, addr)
		testenv.Eventually(t, 5*time.Second, "the watchdog to close the connection, no caller waiting", func() bool {
			s, _ := statsOf(p, addr)
			return s.PipeConns == 0
		})
	}
	testenv.Eventually(t, 5*time.Second, "the breaker to open (two timeouts, each with a failed health check)", func() bool {
		s, _ := statsOf(p, addr)
		return s.Breaker == "open"
	})
	_, err := lock(bg, p, child.peer, 1, "after")
	wantKind(t, err, pool.KindBreakerOpen, addr)
}
