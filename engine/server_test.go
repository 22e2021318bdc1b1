package engine_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/testenv"
)

// TestShutdownLeavesNoGoroutine: after Shutdown, Serve has returned
// ErrServerClosed, every session goroutine is gone, and Serve refuses to start again.
func TestShutdownLeavesNoGoroutine(t *testing.T) {
	leakCheck(t)
	ts := startServer(t, "tcp", &handler{}, nil)
	for i := 0; i < 10; i++ {
		c := ts.dial(t)
		if x, err := c.Noop(bg, int32(i)); err != nil || x != int32(i) {
			t.Fatalf("noop: %d %v", x, err)
		}
	}
	if n := ts.Sessions(); n != 10 {
		t.Errorf("Sessions = %d, want 10", n)
	}
	ctx, cancel := context.WithTimeout(bg, 5*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if n := ts.Stats.EndDrained.Load(); n != 10 {
		t.Errorf("EndDrained = %d, want the 10 idle sessions", n)
	}
	if len(goroutines("serveSession")) != 0 {
		t.Error("a session goroutine outlived Shutdown's nil return")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Serve(ln); !errors.Is(err, engine.ErrServerClosed) {
		t.Errorf("Serve after Shutdown = %v, want ErrServerClosed", err)
	}
}

// TestShutdownDrainsIdleAndBusy: during Shutdown an idle session is closed after
// DrainIdleGrace, a busy one finishes its call and gets its reply, new sessions
// are refused, and Shutdown returns nil once both are gone.
func TestShutdownDrainsIdleAndBusy(t *testing.T) {
	leakCheck(t)
	started, release := make(chan struct{}), make(chan struct{})
	h := &handler{ping: func(ctx context.Context) (string, error) {
		close(started)
		<-release
		return "finished", nil
	}}
	ts := startServer(t, "tcp", h, func(c *engine.Config) { c.SessionTimeout = 0 })
	idle := ts.dialRaw(t)
	busy := ts.dial(t)
	reply := make(chan string, 1)
	go func() {
		s, err := busy.Ping(bg, rctx())
		if err != nil {
			s = err.Error()
		}
		reply <- s
	}()
	<-started
	testenv.Eventually(t, 5*time.Second, "both sessions live", func() bool { return ts.Sessions() == 2 })

	shutdown := make(chan error, 1)
	begin := time.Now()
	go func() { shutdown <- ts.Shutdown(bg) }()

	if el := readClosed(t, idle, 5*time.Second); el < engine.DrainIdleGrace-50*time.Millisecond {
		t.Errorf("idle session closed %s into the drain, want after DrainIdleGrace %s", el, engine.DrainIdleGrace)
	}
	testenv.Eventually(t, 5*time.Second, "the listener closed", ts.listenerClosed)
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned %v while a call was in flight", err)
	default:
	}
	close(release)
	if got := <-reply; got != "finished" {
		t.Errorf("call in flight during the drain got %q, want its reply", got)
	}
	if err := <-shutdown; err != nil {
		t.Errorf("Shutdown = %v, want nil", err)
	}
	t.Logf("drain took %s", time.Since(begin))
	if d, c := ts.Stats.EndDrained.Load(), ts.Stats.EndClosed.Load(); d != 2 || c != 0 {
		t.Errorf("EndDrained %d, EndClosed %d; want both sessions drained, none closed", d, c)
	}
}

// TestShutdownTimeoutCancelsCalls: when Shutdown's ctx ends with a call still
// running, the call's ctx is cancelled with cause ErrShutdown, Shutdown waits for
// it to return and then returns ctx's error.
func TestShutdownTimeoutCancelsCalls(t *testing.T) {
	leakCheck(t)
	started := make(chan struct{})
	cause := make(chan error, 1)
	h := &handler{ping: func(ctx context.Context) (string, error) {
		close(started)
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond) // the call takes a moment to wind down: Shutdown must wait for it
		cause <- context.Cause(ctx)
		return "", context.Cause(ctx)
	}}
	ts := startServer(t, "unix", h, nil)
	c := ts.dial(t)
	go c.Ping(bg, rctx())
	<-started

	ctx, cancel := context.WithTimeout(bg, 100*time.Millisecond)
	defer cancel()
	if err := ts.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want context.DeadlineExceeded", err)
	}
	select {
	case err := <-cause:
		if !errors.Is(err, engine.ErrShutdown) {
			t.Errorf("call ctx cause = %v, want ErrShutdown", err)
		}
	default:
		t.Fatal("Shutdown returned before the cancelled call did")
	}
	if len(goroutines("serveSession")) != 0 {
		t.Error("a session goroutine outlived Shutdown")
	}
	if n := ts.Stats.EndClosed.Load(); n != 1 {
		t.Errorf("EndClosed = %d, want 1", n)
	}
}

// TestShutdownGraceBounded: a call that ignores its ctx does not hold Shutdown
// past its ctx plus ShutdownGrace; Wait then reports it running until it returns.
func TestShutdownGraceBounded(t *testing.T) {
	leakCheck(t)
	started, release := make(chan struct{}), make(chan struct{})
	h := &handler{ping: func(ctx context.Context) (string, error) {
		close(started)
		<-release // ignores ctx
		return "late", nil
	}}
	ts := startServer(t, "tcp", h, nil)
	go ts.dial(t).Ping(bg, rctx())
	<-started

	ctx, cancel := context.WithTimeout(bg, 50*time.Millisecond)
	defer cancel()
	begin := time.Now()
	if err := ts.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want context.DeadlineExceeded", err)
	}
	if el := time.Since(begin); el < engine.ShutdownGrace || el > engine.ShutdownGrace+2*time.Second {
		t.Errorf("Shutdown returned after %s, want its ctx (50ms) + ShutdownGrace (%s)", el, engine.ShutdownGrace)
	}
	short, cancel2 := context.WithTimeout(bg, 20*time.Millisecond)
	defer cancel2()
	if err := ts.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait with a call still running = %v, want context.DeadlineExceeded", err)
	}
	close(release)
	if err := ts.Wait(bg); err != nil {
		t.Errorf("Wait after the call returned = %v", err)
	}
}

// TestCloseCancelsCall: Close cancels a running call's ctx with cause ErrShutdown
// and closes its session; the client sees the connection end.
func TestCloseCancelsCall(t *testing.T) {
	leakCheck(t)
	started := make(chan struct{})
	cause := make(chan error, 1)
	h := &handler{ping: func(ctx context.Context) (string, error) {
		close(started)
		<-ctx.Done()
		cause <- context.Cause(ctx)
		return "", context.Cause(ctx)
	}}
	ts := startServer(t, "tcp", h, nil)
	c := ts.dial(t)
	failed := make(chan error, 1)
	go func() { _, err := c.Ping(bg, rctx()); failed <- err }()
	<-started
	ts.Close()
	select {
	case err := <-cause:
		if !errors.Is(err, engine.ErrShutdown) {
			t.Errorf("call ctx cause = %v, want ErrShutdown", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the call's ctx was not cancelled by Close")
	}
	if err := <-failed; err == nil {
		t.Error("the client got a reply from a closed session")
	}
	if err := ts.Wait(bg); err != nil {
		t.Fatal(err)
	}
	if n := ts.Stats.EndClosed.Load(); n != 1 {
		t.Errorf("EndClosed = %d, want 1", n)
	}
}

// TestSessionCtxCancelledAtEnd: the ctx a call was given is cancelled once its
// session ends, with cause ErrClientGone when the client closed it.
func TestSessionCtxCancelledAtEnd(t *testing.T) {
	leakCheck(t)
	ctxs := make(chan context.Context, 1)
	h := &handler{ping: func(ctx context.Context) (string, error) {
		ctxs <- ctx
		return "pong", nil
	}}
	ts := startServer(t, "tcp", h, nil)
	c := ts.dial(t)
	if _, err := c.Ping(bg, rctx()); err != nil {
		t.Fatal(err)
	}
	ctx := <-ctxs
	if ctx.Err() != nil {
		t.Fatal("call ctx cancelled while its session is open")
	}
	c.conn.Close()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("call ctx not cancelled after its session ended")
	}
	if err := context.Cause(ctx); !errors.Is(err, engine.ErrClientGone) {
		t.Errorf("cause = %v, want ErrClientGone", err)
	}
}

// noopResult reads a noop reply.
func noopResult(t testing.TB, r *replyReader) int32 {
	t.Helper()
	var res rpc.FunServantNoopResult
	if _, _, err := r.read(&res); err != nil {
		t.Fatalf("noop reply: %v", err)
	}
	return res.GetSuccess()
}
