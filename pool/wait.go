// This file holds what bounds the calls waiting for a connection of one
// server (issue 11, "backend concurrency"): past max_waiting_calls a call
// fails at once with KindBusy instead of joining a queue, so a slow server
// never gathers a goroutine per caller behind it.

package pool

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// DefaultWaitingPerConn is the default of max_waiting_calls as a multiple of
// a server's connections (max_conns_per_server, Redis max_active): 4 calls may
// wait per connection, so a server whose calls take 4 times as long as usual
// still drains its queue within that many call times before anyone is turned
// away. Chosen for this fae (the original had no such bound).
const DefaultWaitingPerConn = 4

// waitingBound is the max_waiting_calls of a server of conns connections: the
// configured value, or DefaultWaitingPerConn × conns when it is 0.
func waitingBound(configured, conns int) int {
	if configured > 0 {
		return configured
	}
	return DefaultWaitingPerConn * conns
}

// WaitLimitError is the cause of a KindBusy *Error refused at once because
// Limit calls (max_waiting_calls) were already waiting for a connection to
// Server (host:port). errors.As finds it in the *Error.
type WaitLimitError struct {
	Waiting int    // calls waiting when this one came, at most Limit (see newWaitLimitError)
	Limit   int    // max_waiting_calls of the server
	Server  string // the server's address, host:port
}

// newWaitLimitError is the refusal of a call that found counted waiting calls
// (its own count, taken before it backed out): callers refused at the same
// moment count each other too, but no more than limit were ever let wait, so
// the count reported is at most limit.
func newWaitLimitError(counted, limit int, server string) *WaitLimitError {
	return &WaitLimitError{Waiting: min(counted, limit), Limit: limit, Server: server}
}

func (e *WaitLimitError) Error() string {
	return fmt.Sprintf("%d calls already waiting for a connection to %s (max_waiting_calls %d)", e.Waiting, e.Server, e.Limit)
}

// WaitTimeoutError is the cause of a KindBusy *Error whose call waited the
// time allowed (Wait, the key named WaitKey) and found every connection of
// Server (Conns of them, the key ConnsKey) still in use:
//
//	all connections busy: max_active 1, none free within borrow_timeout 200ms
type WaitTimeoutError struct {
	Server            string
	Conns             int
	ConnsKey, WaitKey string // "max_conns_per_server", "timeout"…
	Wait              time.Duration
}

func (e *WaitTimeoutError) Error() string {
	return fmt.Sprintf("all connections busy: %s %d, none free within %s %s", e.ConnsKey, e.Conns, e.WaitKey, e.Wait)
}

// connGate bounds the operations of one server using a connection (one token
// of slots each, cap = the server's connections) and the calls waiting for
// one (maxWaiting; a call beyond it gets a *WaitLimitError at once). A call
// that finds a token free takes it with one channel send and never touches
// the waiting count (BenchmarkConnGate); only a call that must wait counts
// itself, and waits at most wait. Safe for concurrent use.
type connGate struct {
	slots      chan struct{}
	waiting    atomic.Int64
	maxWaiting int64
	wait       time.Duration
	server     string // host:port, for messages
	connsKey   string // the key of the connection count, for messages
	waitKey    string // the key of wait, for messages
}

func newConnGate(server string, conns, maxWaiting int, wait time.Duration, connsKey, waitKey string) *connGate {
	return &connGate{slots: make(chan struct{}, conns), maxWaiting: int64(maxWaiting), wait: wait,
		server: server, connsKey: connsKey, waitKey: waitKey}
}

// acquire takes a token, waiting for one at most g.wait (no bound but ctx
// when g.wait is 0) and while ctx lasts.
// It returns nil (the caller must release), a *WaitLimitError or a
// *WaitTimeoutError (both KindBusy), or the cause of ctx's end.
func (g *connGate) acquire(ctx context.Context) error {
	select {
	case g.slots <- struct{}{}:
		return nil
	default:
	}
	if n := g.waiting.Add(1); n > g.maxWaiting {
		g.waiting.Add(-1)
		return newWaitLimitError(int(n-1), int(g.maxWaiting), g.server)
	}
	defer g.waiting.Add(-1)
	var expired <-chan time.Time
	if g.wait > 0 {
		t := time.NewTimer(g.wait)
		defer t.Stop()
		expired = t.C
	}
	select {
	case g.slots <- struct{}{}:
		return nil
	case <-expired:
		return &WaitTimeoutError{Server: g.server, Conns: cap(g.slots), ConnsKey: g.connsKey, WaitKey: g.waitKey, Wait: g.wait}
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// waitOutcome is the kind and cause of a failed connGate.acquire under ctx:
// KindBusy for the gate's own refusals, else the kind of ctx's end (a
// timeout, a cancel), the cause saying it came while waiting.
func waitOutcome(ctx context.Context, err error) (Kind, error) {
	var limit *WaitLimitError
	var expired *WaitTimeoutError
	if errors.As(err, &limit) || errors.As(err, &expired) {
		return KindBusy, err
	}
	return ctxKind(ctx.Err()), fmt.Errorf("while waiting for a free connection: %w", err)
}

// release gives back the token of a successful acquire.
func (g *connGate) release() { <-g.slots }

// inUse is the number of tokens taken now.
func (g *connGate) inUse() int { return len(g.slots) }

// Waiting is the number of calls waiting for a token now.
func (g *connGate) Waiting() int { return int(g.waiting.Load()) }
