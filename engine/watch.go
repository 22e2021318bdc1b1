package engine

import (
	"context"
	"sync"
	"syscall"
	"time"

	"github.com/fae-go/fae/internal/sockio"
)

// WatchClient watches, while a call waits on a backend, whether its client closes
// the connection: a php-fpm worker that gives up (its own timeout, a killed
// request) should not leave a MySQL statement running for up to query_timeout,
// holding a pool connection (REVIEW §2.B2).
//
// ctx is the ctx the call was given (or one derived from it). WatchClient returns
// a ctx that is cancelled, with cause ErrClientGone (context.Cause), when the
// client closes its connection, and a stop func that ends the watch. When ctx
// is the session's own (what the processor gives a call) or adds only values
// to it (same Done channel), the ctx returned is ctx itself and a client that
// leaves cancels the session's ctx: the session
// ends after the call anyway, and a watch then costs no context, allocation or
// new timer (the session's one is reset). For a ctx derived from it,
// WatchClient derives one more, released by stop; use it only for the wait.
// Call stop, which is idempotent until the next WatchClient of the session, once
// the wait is over and before the reply is written. The session stops a
// watch left running when the call returns.
//
// Call WatchClient from the call's goroutine, or from one the call waits for, and
// once per wait: while a watch of the call runs, WatchClient returns ctx unchanged
// (pass the watched ctx down to the work it covers). Only calls that wait on
// something should watch. The watch starts watchDelay after WatchClient: a
// call over by then pays for resetting and stopping the session's timer; a
// longer one for a goroutine and 2-3 µs more (BenchmarkWatchClient). A call that
// does not watch pays nothing.
//
// What counts as gone: the peer's FIN or a reset. Bytes sent by the client during
// the call are a pipelined next request, not a disconnect: the watch then ends
// without cancelling. Outside a session (a nil ctx, or one no engine session
// gave), on a connection that is not a syscall.Conn, or on a platform without the
// peek it uses, WatchClient returns ctx and a stop that does nothing.
func WatchClient(ctx context.Context) (context.Context, func()) {
	if ctx == nil {
		return ctx, nop
	}
	sess, _ := ctx.Value(sessionKey{}).(*session)
	if sess == nil || !watchSupported {
		return ctx, nop
	}
	if sess.gone.Load() { // an earlier watch of this call saw the client leave
		wctx, cancel := context.WithCancelCause(ctx)
		cancel(ErrClientGone)
		return wctx, nop
	}
	if sess.trans.br.Buffered() > 0 {
		return ctx, nop // a pipelined request is already read: the client was there after this call
	}
	w := sess.watch
	if w == nil {
		raw := sess.rawConn()
		if raw == nil {
			return ctx, nop
		}
		w = &watch{sess: sess, raw: raw}
		w.stopFn = w.stop
		sess.watch = w
	}
	w.mu.Lock()
	switch w.state {
	case watchArmed, watchRunning, watchStopping:
		w.mu.Unlock()
		return ctx, nop // nested: the outer watch covers this wait
	case watchEnded:
		w.mu.Unlock()
		return ctx, nop // this call's watch saw bytes of a next request: the client is there
	}
	wctx := ctx
	w.cancel = nil
	if ctx.Done() != sess.ctx.Done() { // not the session's ctx, nor one that only adds values to it
		wctx, w.cancel = context.WithCancelCause(ctx)
	}
	w.state = watchArmed
	if w.timer == nil {
		w.timer = time.AfterFunc(watchDelay, w.start)
	} else {
		w.timer.Reset(watchDelay)
	}
	w.mu.Unlock()
	return wctx, w.stopFn
}

// watchDelay is how long a call waits before its client is watched. A call
// answered sooner (nearly all: a forwarded lock, a cache hit, a fast query)
// then pays for a timer (a fraction of a µs) instead of a goroutine, a peek
// and a deadline change (some 5 µs of faed's CPU per forwarded call, pprof of
// make bench scenario 6); a client that leaves is seen at most watchDelay late.
const watchDelay = 2 * time.Millisecond

func nop() {}

// watchState is where a session's watch is.
type watchState int

const (
	watchIdle     watchState = iota // no call is watched (stopped, or never armed)
	watchArmed                      // a call is watched: the timer runs start after watchDelay
	watchRunning                    // run waits for the connection to become readable
	watchStopping                   // stop woke run and waits for it to return
	watchEnded                      // run returned (data or gone) before stop
)

// watch is a session's WatchClient machinery, made at its first watch and
// kept for its next calls: after watchDelay, a goroutine (the timer's) that
// waits for the connection to become readable, then peeks at it.
type watch struct {
	sess   *session
	raw    syscall.RawConn
	stopFn func() // w.stop, made once

	mu      sync.Mutex
	state   watchState
	timer   *time.Timer             // runs start; reset for each watched call
	cancel  context.CancelCauseFunc // the derived ctx's, or nil: the session's ctx is the call's
	done    chan struct{}           // while running or stopping: closed when run returns
	changed bool                    // run cleared the read deadline since the session last asked
}

// aLongTimeAgo is a read deadline in the past: it wakes a pending read at once.
var aLongTimeAgo = time.Unix(1, 0)

// start runs the watch, unless stop came first. The deadline is cleared under
// mu, so that stop's deadline in the past always comes after it. A timer that
// fired while stop stopped it finds the watch no longer armed (or armed for
// the next call, which it then starts watching early).
func (w *watch) start() {
	w.mu.Lock()
	if w.state != watchArmed {
		w.mu.Unlock()
		return
	}
	w.state, w.changed = watchRunning, true
	w.done = make(chan struct{})
	// The request has been read: its io_timeout deadline, or a deadline an
	// earlier phase left (lazy deadlines, deadline.go), must not end the watch.
	w.sess.conn.SetReadDeadline(time.Time{})
	w.mu.Unlock()
	w.run(w.raw)
}

// run waits until the connection is readable and tells a close from data. It
// returns on close (after cancelling), on data (the watch just ends), and when stop
// or Close wakes it (a deadline in the past, or the connection closed).
func (w *watch) run(raw syscall.RawConn) {
	var state peekState
	err := raw.Read(func(fd uintptr) bool {
		state = peek(fd)
		return state != peekEmpty
	})
	w.mu.Lock()
	if err == nil && state == peekClosed {
		w.sess.gone.Store(true)
		w.sess.srv.Stats.ClientGone.Add(1)
		if w.cancel != nil {
			w.cancel(ErrClientGone)
		}
		w.sess.cancel(ErrClientGone)
	}
	if w.state == watchRunning {
		w.state = watchEnded
	}
	close(w.done)
	w.mu.Unlock()
}

// stop ends the watch: before it started, by stopping the timer; once
// started, by waking run with a read deadline in the past (the session sets
// its deadlines afresh before its next read) and waiting for it to return.
// Then it releases a derived ctx. Safe to call more than once and from any
// goroutine, until the session's next WatchClient.
func (w *watch) stop() {
	w.mu.Lock()
	switch w.state {
	case watchArmed:
		w.timer.Stop() // a start already on its way finds the watch idle
	case watchRunning:
		w.state = watchStopping
		done := w.done
		w.mu.Unlock()
		w.sess.conn.SetReadDeadline(aLongTimeAgo)
		<-done
		w.mu.Lock()
	case watchIdle, watchStopping:
		w.mu.Unlock()
		return
	}
	w.state = watchIdle
	cancel := w.cancel
	w.cancel = nil
	w.mu.Unlock()
	if cancel != nil {
		cancel(context.Canceled)
	}
}

// stopWatch stops the call's watch, if any; the session calls it after each
// call. A watch that ran changed the read deadline: the idle wait arms its own
// again.
func (sess *session) stopWatch() {
	w := sess.watch
	if w == nil {
		return
	}
	w.stop()
	w.mu.Lock()
	changed := w.changed
	w.changed = false
	w.mu.Unlock()
	if changed {
		sess.armedWait = time.Time{}
	}
}

// rawConn is the session's connection as a syscall.RawConn; nil when it is not a
// syscall.Conn (such as a net.Pipe in a test).
func (sess *session) rawConn() syscall.RawConn {
	if sess.raw == nil {
		if sc, ok := sess.conn.(syscall.Conn); ok {
			sess.raw, _ = sc.SyscallConn()
		}
	}
	return sess.raw
}

// peekState is what a non-blocking peek at the connection found.
type peekState = sockio.PeekState

const (
	peekEmpty  = sockio.PeekEmpty  // nothing to read: keep waiting
	peekData   = sockio.PeekData   // bytes of a next request: the client is there
	peekClosed = sockio.PeekClosed // end of stream or an error such as a reset: the client is gone
)
