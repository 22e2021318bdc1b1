package engine_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/testenv"
)

// watchResult is what a watching handler saw.
type watchResult struct {
	cause error // context.Cause of the watched ctx when the wait ended; nil = released
}

// watchingHandler is a handler whose ping calls WatchClient and waits until the
// watched ctx ends or release is closed; it reports on started and results.
func watchingHandler(release <-chan struct{}) (*handler, chan struct{}, chan watchResult) {
	started := make(chan struct{}, 1)
	results := make(chan watchResult, 1)
	h := &handler{ping: func(ctx context.Context) (string, error) {
		wctx, stop := engine.WatchClient(ctx)
		defer stop()
		select {
		case started <- struct{}{}:
		default: // a test that does not wait for it
		}
		select {
		case <-wctx.Done():
			results <- watchResult{cause: context.Cause(wctx)}
			return "", context.Cause(wctx)
		case <-release:
			results <- watchResult{}
			return "released", nil
		}
	}}
	return h, started, results
}

// TestWatchClientGone: the client closes its connection while its call waits; the
// call's watched ctx ends within 100 ms with cause ErrClientGone, on TCP and unix.
func TestWatchClientGone(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			leakCheck(t)
			h, started, results := watchingHandler(nil)
			ts := startServer(t, network, h, nil)
			conn := ts.dialRaw(t)
			if _, err := conn.Write(pingRequest(t, false, 1)); err != nil {
				t.Fatal(err)
			}
			<-started
			closedAt := time.Now()
			conn.Close()
			select {
			case r := <-results:
				if el := time.Since(closedAt); el > 100*time.Millisecond {
					t.Errorf("the call saw the client leave after %s, want within 100ms", el)
				}
				if !errors.Is(r.cause, engine.ErrClientGone) {
					t.Errorf("cause = %v, want ErrClientGone", r.cause)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the call's ctx was not cancelled after the client closed")
			}
			testenv.Eventually(t, 5*time.Second, "the session's end", func() bool { return ts.Sessions() == 0 })
			if n := ts.Stats.ClientGone.Load(); n != 1 {
				t.Errorf("ClientGone = %d, want 1", n)
			}
			if n := ts.Stats.EndEOF.Load(); n != 1 {
				t.Errorf("EndEOF = %d, want 1 (a client that left is no transport error)", n)
			}
			for _, line := range []string{"call failed", "bad call"} {
				if strings.Contains(ts.log.String(), line) {
					t.Errorf("a client that left logged %q:\n%s", line, ts.log)
				}
			}
		})
	}
}

// TestWatchClientPipelined: bytes of a next request that arrive while a call is
// watched are not a disconnect: the watch ends, the call goes on, and the next
// request is served, even when the client then closes its write side.
func TestWatchClientPipelined(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			leakCheck(t)
			release := make(chan struct{})
			h, started, results := watchingHandler(release)
			ts := startServer(t, network, h, nil)
			conn := ts.dialRaw(t)
			if _, err := conn.Write(pingRequest(t, false, 1)); err != nil {
				t.Fatal(err)
			}
			<-started
			testenv.Eventually(t, 5*time.Second, "the watch running", func() bool { return len(goroutines("(*watch).run")) == 1 })
			if _, err := conn.Write(noopRequest(t, false, 2, 5)); err != nil {
				t.Fatal(err)
			}
			if err := closeWrite(conn); err != nil { // after the data; a live watch would take this FIN as gone
				t.Fatal(err)
			}
			testenv.Eventually(t, 5*time.Second, "the watch to end on the data", func() bool { return len(goroutines("(*watch).run")) == 0 })
			close(release)
			if r := <-results; r.cause != nil {
				t.Fatalf("watched ctx ended with %v; pipelined data taken as a disconnect", r.cause)
			}
			rr := newReplyReader(conn, false)
			var ping rpc.FunServantPingResult
			if _, _, err := rr.read(&ping); err != nil || ping.GetSuccess() != "released" {
				t.Fatalf("first reply %q, %v", ping.GetSuccess(), err)
			}
			if x := noopResult(t, rr); x != 5 {
				t.Errorf("pipelined noop = %d, want 5", x)
			}
			if n := ts.Stats.ClientGone.Load(); n != 0 {
				t.Errorf("ClientGone = %d, want 0", n)
			}
		})
	}
}

// TestWatchClientPipelinedBuffered: when the next request is already in the
// session's buffer, WatchClient does not watch at all (no goroutine) and both
// calls are served.
func TestWatchClientPipelinedBuffered(t *testing.T) {
	leakCheck(t)
	release := make(chan struct{})
	close(release)
	h, _, results := watchingHandler(release)
	ts := startServer(t, "tcp", h, nil)
	conn := ts.dialRaw(t)
	if _, err := conn.Write(append(pingRequest(t, false, 1), noopRequest(t, false, 2, 6)...)); err != nil {
		t.Fatal(err)
	}
	closeWrite(conn)
	if r := <-results; r.cause != nil {
		t.Fatalf("watched ctx ended with %v", r.cause)
	}
	rr := newReplyReader(conn, false)
	var ping rpc.FunServantPingResult
	if _, _, err := rr.read(&ping); err != nil || ping.GetSuccess() != "released" {
		t.Fatalf("first reply %q, %v", ping.GetSuccess(), err)
	}
	if x := noopResult(t, rr); x != 6 {
		t.Errorf("pipelined noop = %d, want 6", x)
	}
}

// TestWatchClientStopThenNextCall: after a watch is stopped the session serves its
// next calls normally, its deadlines set afresh: io_timeout still bounds the next
// request and session_timeout the idle wait.
func TestWatchClientStopThenNextCall(t *testing.T) {
	leakCheck(t)
	release := make(chan struct{})
	close(release)
	h, _, results := watchingHandler(release)
	ts := startServer(t, "tcp", h, func(c *engine.Config) {
		c.IOTimeout, c.SessionTimeout = 100*time.Millisecond, 300*time.Millisecond
	})
	c := ts.dial(t)
	for i := 0; i < 3; i++ {
		if s, err := c.Ping(bg, rctx()); err != nil || s != "released" {
			t.Fatalf("watched ping %d = %q, %v", i, s, err)
		}
		if r := <-results; r.cause != nil {
			t.Fatalf("watched ctx ended with %v", r.cause)
		}
		if x, err := c.Noop(bg, int32(i)); err != nil || x != int32(i) {
			t.Fatalf("noop after a stopped watch = %d, %v", x, err)
		}
	}
	if el := readClosed(t, c.conn, 5*time.Second); el < 250*time.Millisecond {
		t.Errorf("session closed %s after its last call, want session_timeout 300ms", el)
	}
	if n := ts.Stats.EndIdleTimeout.Load(); n != 1 {
		t.Errorf("EndIdleTimeout = %d, want 1", n)
	}
}

// TestWatchClientClose: Close cancels a watched call with ErrShutdown, not ErrClientGone.
func TestWatchClientClose(t *testing.T) {
	leakCheck(t)
	h, started, results := watchingHandler(nil)
	ts := startServer(t, "unix", h, nil)
	conn := ts.dialRaw(t)
	if _, err := conn.Write(pingRequest(t, false, 1)); err != nil {
		t.Fatal(err)
	}
	<-started
	ts.Close()
	if r := <-results; !errors.Is(r.cause, engine.ErrShutdown) {
		t.Errorf("cause = %v, want ErrShutdown", r.cause)
	}
	if n := ts.Stats.ClientGone.Load(); n != 0 {
		t.Errorf("ClientGone = %d after Close, want 0", n)
	}
}

// TestWatchClientOutsideSession: a ctx no session gave is returned as it is, with
// a stop that does nothing.
func TestWatchClientOutsideSession(t *testing.T) {
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	wctx, stop := engine.WatchClient(ctx)
	if wctx != ctx {
		t.Error("WatchClient outside a session returned a new ctx")
	}
	stop()
	stop()
	if ctx.Err() != nil {
		t.Error("stop cancelled the caller's ctx")
	}
	var none context.Context
	if wctx, stop := engine.WatchClient(none); wctx != nil {
		t.Error("WatchClient(nil) returned a ctx")
	} else {
		stop()
	}
}

func closeWrite(c net.Conn) error {
	return c.(interface{ CloseWrite() error }).CloseWrite()
}

// BenchmarkWatchClient: the cost of WatchClient and stop for one call, measured
// inside a real session's call (ns/op); and, for scale, a whole noop call over
// loopback TCP.
func BenchmarkWatchClient(b *testing.B) {
	for _, network := range []string{"tcp", "unix"} {
		b.Run("watch+stop/"+network, func(b *testing.B) {
			done := make(chan struct{})
			h := &handler{ping: func(ctx context.Context) (string, error) {
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					_, stop := engine.WatchClient(ctx)
					stop()
				}
				b.StopTimer()
				close(done)
				return "", nil
			}}
			ts := startServer(b, network, h, nil)
			c := ts.dial(b)
			if _, err := c.Ping(bg, rctx()); err != nil {
				b.Fatal(err)
			}
			<-done
		})
	}
	b.Run("noop-call/tcp", func(b *testing.B) {
		ts := startServer(b, "tcp", &handler{}, nil)
		c := ts.dial(b)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := c.Noop(bg, 1); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestWatchClientDerivedCtx: a ctx derived from the call's (here with a
// timeout) gets a ctx of its own, cancelled with ErrClientGone when the
// client leaves, and released (Canceled) by stop; the call's own ctx, or one
// that only adds values to it (as proxy's exception passing does), is
// returned as it is and costs no allocation.
func TestWatchClientDerivedCtx(t *testing.T) {
	leakCheck(t)
	started := make(chan struct{}, 1)
	results := make(chan watchResult, 2)
	type key struct{}
	h := &handler{ping: func(ctx context.Context) (string, error) {
		for _, c := range []context.Context{ctx, context.WithValue(ctx, key{}, 1)} { // values only: the same Done
			allocs := testing.AllocsPerRun(100, func() {
				wctx, stop := engine.WatchClient(c)
				if wctx != c {
					t.Error("WatchClient of the call's own ctx returned another")
				}
				stop()
			})
			if allocs != 0 {
				t.Errorf("WatchClient+stop of the call's own ctx: %.1f allocations, want 0", allocs)
			}
		}
		dctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		wctx, stop := engine.WatchClient(dctx)
		if wctx == dctx {
			t.Error("WatchClient of a derived ctx returned it unchanged")
		}
		stop()
		if !errors.Is(context.Cause(wctx), context.Canceled) || dctx.Err() != nil {
			t.Errorf("after stop: watched ctx %v, derived ctx %v; want Canceled, live", context.Cause(wctx), dctx.Err())
		}
		wctx, stop = engine.WatchClient(dctx)
		defer stop()
		started <- struct{}{}
		<-wctx.Done()
		results <- watchResult{cause: context.Cause(wctx)}
		return "", context.Cause(wctx)
	}}
	ts := startServer(t, "tcp", h, nil)
	conn := ts.dialRaw(t)
	if _, err := conn.Write(pingRequest(t, false, 1)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler never started its last wait")
	}
	conn.Close()
	select {
	case r := <-results:
		if !errors.Is(r.cause, engine.ErrClientGone) {
			t.Errorf("cause = %v, want ErrClientGone", r.cause)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the derived watched ctx was not cancelled after the client closed")
	}
	testenv.Eventually(t, 5*time.Second, "the session's end", func() bool { return ts.Sessions() == 0 })
}
