package engine

import (
	"context"
	"sync"
	"syscall"
	"time"
)

// WatchClient watches, while a call waits on a backend, whether its client closes
// the connection: a php-fpm worker that gives up (its own timeout, a killed
// request) should not leave a MySQL statement running for up to query_timeout,
// holding a pool connection (REVIEW §2.B2).
//
// ctx is the ctx the call was given (or one derived from it). WatchClient returns
// a ctx derived from it that is also cancelled, with cause ErrClientGone
// (context.Cause), when the client closes its connection, and a stop func that ends
// the watch and releases that ctx. Call stop, which is idempotent, once the wait
// is over and before the reply is written; after stop the returned ctx is
// cancelled (context.Canceled), so use it only for the wait. The session stops a
// watch left running when the call returns.
//
// Call WatchClient from the call's goroutine, or from one the call waits for, and
// once per wait: while a watch of the call runs, WatchClient returns ctx unchanged
// (pass the watched ctx down to the work it covers). Only calls that wait on
// something should watch. The watch starts watchDelay after WatchClient: a
// call over by then pays for a derived ctx and a timer; a longer one for a
// goroutine and 2-3 µs more (BenchmarkWatchClient). A call that does not
// watch pays nothing.
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
	if w := sess.watch; w != nil && !w.ended() {
		return ctx, nop // nested: the outer watch covers this wait
	}
	if sess.trans.br.Buffered() > 0 {
		return ctx, nop // a pipelined request is already read: the client was there after this call
	}
	raw := sess.rawConn()
	if raw == nil {
		return ctx, nop
	}
	wctx, cancel := context.WithCancelCause(ctx)
	w := &watch{sess: sess, cancel: cancel, raw: raw, done: make(chan struct{})}
	sess.watch = w
	w.timer = time.AfterFunc(watchDelay, w.start)
	return wctx, w.stop
}

// watchDelay is how long a call waits before its client is watched. A call
// answered sooner (nearly all: a forwarded lock, a cache hit, a fast query)
// then pays for a timer (a fraction of a µs) instead of a goroutine, a peek
// and a deadline change (some 5 µs of faed's CPU per forwarded call, pprof of
// make bench scenario 6); a client that leaves is seen at most watchDelay late.
const watchDelay = 2 * time.Millisecond

func nop() {}

// watch is one WatchClient: after watchDelay, a goroutine (the timer's) that
// waits for the connection to become readable, then peeks at it.
type watch struct {
	sess   *session
	cancel context.CancelCauseFunc
	raw    syscall.RawConn
	timer  *time.Timer
	done   chan struct{} // closed when run returns, or by stop when run never started
	once   sync.Once

	mu      sync.Mutex
	started bool // run was started (the read deadline cleared for it)
	stopped bool // stop was called: run must not start
}

// aLongTimeAgo is a read deadline in the past: it wakes a pending read at once.
var aLongTimeAgo = time.Unix(1, 0)

// start runs the watch, unless stop came first. The deadline is cleared under
// mu, so that stop's deadline in the past always comes after it.
func (w *watch) start() {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return
	}
	w.started = true
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
	defer close(w.done)
	var state peekState
	err := raw.Read(func(fd uintptr) bool {
		state = peek(fd)
		return state != peekEmpty
	})
	if err == nil && state == peekClosed {
		w.sess.gone.Store(true)
		w.sess.srv.Stats.ClientGone.Add(1)
		w.cancel(ErrClientGone)
	}
}

// stop ends the watch: before it started, by stopping its timer; once started,
// by waking run with a read deadline in the past (the session sets its
// deadlines afresh before its next read) and waiting for it to return. Then it
// releases the derived ctx. Safe to call more than once and from any goroutine.
func (w *watch) stop() {
	w.once.Do(func() {
		w.mu.Lock()
		w.stopped = true
		started := w.started
		w.mu.Unlock()
		if started {
			w.sess.conn.SetReadDeadline(aLongTimeAgo)
			<-w.done
		} else {
			w.timer.Stop()
			close(w.done)
		}
		w.cancel(context.Canceled)
	})
}

// ended reports whether run has returned.
func (w *watch) ended() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// stopWatch stops the call's watch, if any; the session calls it after each call.
func (sess *session) stopWatch() {
	if w := sess.watch; w != nil {
		w.stop()
		sess.watch = nil
		sess.armedWait = time.Time{} // the watch changed the read deadline
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
type peekState int

const (
	peekEmpty  peekState = iota // nothing to read: keep waiting
	peekData                    // bytes of a next request: the client is there
	peekClosed                  // end of stream or an error such as a reset: the client is gone
)
