package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/pool"
)

// peerPool is the pool of connections to one peer, and the peer's breaker.
//
// At most pool_capacity calls hold a connection at once (slots, a semaphore
// in the manner of go-redis's pool); a connection is dialled only when a call
// holds a slot and no idle one is left, so open connections never exceed
// pool_capacity either. Safe for concurrent use.
type peerPool struct {
	peer    Peer
	cfg     *Config // read-only
	breaker *pool.Breaker
	slots   chan struct{} // one token per call holding (or getting) a connection
	pipes   *pipes        // the pipelined connections (lock, unlock); nil when pipe_connections is 0

	mu      sync.Mutex
	idle    []*conn     // given back, least recently used first
	dialing *dialCall   // the dial in flight, whose failure its waiters share
	reaper  *time.Timer // closes idle connections past idle_timeout; armed while idle is not empty
	armed   bool
	retired bool // departed, or the Proxies closed: no connection goes back to idle

	waiting, dials, dialFailures, sharedFailures, discarded atomic.Int64
}

// dialCall is a dial in flight; done is closed once err is set.
type dialCall struct {
	done chan struct{}
	err  error
}

func newPeerPool(peer Peer, cfg *Config) *peerPool {
	pp := &peerPool{peer: peer, cfg: cfg, slots: make(chan struct{}, cfg.PoolCapacity)}
	pp.breaker = pool.NewBreaker("peer", peer.Addr, cfg.Breaker, pp.healthCheck)
	if cfg.PipeConnections > 0 {
		pp.pipes = newPipes(pp, cfg.PipeConnections)
	}
	return pp
}

// call runs fn on a connection of the peer, through its breaker, and gives
// the connection back only if the call left it in step with the peer. It
// returns the outcome's kind and the error for the caller (a declared
// exception as is, else the cause of a *pool.Error).
func (pp *peerPool) call(ctx context.Context, method string, fn func(context.Context, *rpc.FunServantClient) error) (pool.Kind, error) {
	if ctx.Err() != nil {
		return pool.KindCanceled, context.Cause(ctx)
	}
	if pp.pipes != nil && pipelined(method) {
		return pp.pipes.call(ctx, method, fn)
	}
	if pp.breaker.State() == "open" { // fail fast, without waiting for a connection
		return pool.KindBreakerOpen, nil
	}
	if kind, err := pp.acquire(ctx); kind != pool.KindOK {
		return kind, err
	}
	defer func() { <-pp.slots }()
	c, err := pp.get(ctx)
	if err != nil {
		return dialKind(ctx, err)
	}
	reuse := false // unless the call proves it in step (a panic of fn closes it too)
	defer func() { pp.put(c, reuse) }()
	if ctx.Err() != nil { // the caller left during the dial: the connection is unused
		reuse = true
		return pool.KindCanceled, context.Cause(ctx)
	}
	ran := false
	var out error
	kind, _ := pp.breaker.Do(func() (pool.Kind, error) {
		ran = true
		var k pool.Kind
		k, out, reuse = c.call(ctx, pp.peer.Addr, method, pp.cfg.CallTimeout(), fn)
		reuse = reuse && k.Reusable()
		return k, out
	})
	if !ran { // the breaker opened meanwhile: the connection is unused
		reuse = true
		return pool.KindBreakerOpen, nil
	}
	return kind, out
}

// acquire takes a slot, waiting up to borrow_timeout while every one is held.
func (pp *peerPool) acquire(ctx context.Context) (pool.Kind, error) {
	select {
	case pp.slots <- struct{}{}:
		return pool.KindOK, nil
	default:
	}
	busy := fmt.Errorf("all %d connections busy, none free within borrow_timeout %s", cap(pp.slots), pp.cfg.BorrowTimeout)
	if pp.cfg.BorrowTimeout <= 0 {
		return pool.KindBusy, busy
	}
	t := time.NewTimer(pp.cfg.BorrowTimeout)
	defer t.Stop()
	pp.waiting.Add(1)
	defer pp.waiting.Add(-1)
	select {
	case pp.slots <- struct{}{}:
		return pool.KindOK, nil
	case <-ctx.Done():
		return pool.KindCanceled, context.Cause(ctx)
	case <-t.C:
		return pool.KindBusy, busy
	}
}

// get returns an idle connection that is still usable, the most recently
// used first, or dials a new one.
func (pp *peerPool) get(ctx context.Context) (*conn, error) {
	for {
		pp.mu.Lock()
		n := len(pp.idle)
		if n == 0 {
			pp.mu.Unlock()
			return pp.dial(ctx)
		}
		c := pp.idle[n-1]
		pp.idle[n-1] = nil
		pp.idle = pp.idle[:n-1]
		pp.mu.Unlock()
		if pp.expired(c, time.Now()) || connCheck(c.nc) != nil {
			pp.discarded.Add(1)
			c.nc.Close()
			continue
		}
		return c, nil
	}
}

// dial opens a connection through the breaker's dial side. While a dial is in
// flight, other calls wait for it instead of dialling too: if it fails they
// fail with its error (one failed dial, however many calls wanted a
// connection, and it counts once on the breaker); if it succeeds each dials
// its own. A waiter stops waiting when its ctx ends.
func (pp *peerPool) dial(ctx context.Context) (*conn, error) {
	pp.mu.Lock()
	if d := pp.dialing; d != nil {
		pp.mu.Unlock()
		select {
		case <-d.done:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
		if d.err != nil {
			pp.sharedFailures.Add(1)
			return nil, d.err
		}
		return pp.dialOne()
	}
	d := &dialCall{done: make(chan struct{})}
	pp.dialing = d
	pp.mu.Unlock()
	c, err := pp.dialOne()
	pp.mu.Lock()
	d.err, pp.dialing = err, nil
	pp.mu.Unlock()
	close(d.done)
	return c, err
}

func (pp *peerPool) dialOne() (*conn, error) {
	var c *conn
	err := pp.breaker.Dial(func() (err error) {
		pp.dials.Add(1)
		c, err = dialConn(pp.peer, pp.cfg.CallTimeout(), pp.cfg.TCPNoDelay, pp.cfg.BufferSize)
		if err != nil {
			pp.dialFailures.Add(1)
		}
		return err
	})
	return c, err
}

// dialKind classifies a failed get: an open breaker, the caller leaving, a
// dial that timed out or failed.
func dialKind(ctx context.Context, err error) (pool.Kind, error) {
	switch {
	case errors.Is(err, pool.KindBreakerOpen):
		return pool.KindBreakerOpen, nil
	case ctx.Err() != nil && errors.Is(err, context.Cause(ctx)):
		return pool.KindCanceled, err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return pool.KindTimeout, err
	}
	return pool.KindServerFailure, err
}

// put gives c back: to the idle list if reuse and the pool still serves, else
// it is closed.
func (pp *peerPool) put(c *conn, reuse bool) {
	if reuse {
		c.nc.SetDeadline(time.Time{}) // the call's deadline would fail connCheck's peek
	}
	pp.mu.Lock()
	if !reuse || pp.retired {
		pp.mu.Unlock()
		if !reuse {
			pp.discarded.Add(1)
		}
		c.nc.Close()
		return
	}
	c.lastUsed = time.Now()
	pp.idle = append(pp.idle, c)
	if idle := pp.cfg.IdleTimeout; idle > 0 && !pp.armed {
		pp.armed = true
		if pp.reaper == nil {
			pp.reaper = time.AfterFunc(idle, pp.reap)
		} else {
			pp.reaper.Reset(idle)
		}
	}
	pp.mu.Unlock()
}

func (pp *peerPool) expired(c *conn, now time.Time) bool {
	return pp.cfg.IdleTimeout > 0 && now.Sub(c.lastUsed) >= pp.cfg.IdleTimeout
}

// reap closes the idle connections unused for idle_timeout, and arms the
// timer again for the next one to expire.
func (pp *peerPool) reap() {
	pp.mu.Lock()
	now := time.Now()
	n := 0
	for n < len(pp.idle) && pp.expired(pp.idle[n], now) {
		n++
	}
	old := append([]*conn(nil), pp.idle[:n]...)
	pp.idle = append(pp.idle[:0], pp.idle[n:]...)
	clear(pp.idle[len(pp.idle):cap(pp.idle)])
	pp.armed = len(pp.idle) > 0 && !pp.retired
	if pp.armed {
		pp.reaper.Reset(pp.idle[0].lastUsed.Add(pp.cfg.IdleTimeout).Sub(now))
	}
	pp.mu.Unlock()
	for _, c := range old {
		c.nc.Close()
	}
}

// retire closes the idle connections now and every busy one when its call
// ends: the peer departed, or the Proxies closed.
func (pp *peerPool) retire() {
	pp.mu.Lock()
	pp.retired = true
	old := pp.idle
	pp.idle = nil
	if pp.reaper != nil {
		pp.reaper.Stop()
	}
	pp.armed = false
	pp.mu.Unlock()
	for _, c := range old {
		c.nc.Close()
	}
	if pp.pipes != nil {
		pp.pipes.retire()
	}
}

// healthCheck is the breaker's health check: noop on a fresh connection,
// bounded by ctx (pool.HealthCheckTimeout).
func (pp *peerPool) healthCheck(ctx context.Context) error {
	d := pool.HealthCheckTimeout
	if dl, ok := ctx.Deadline(); ok {
		d = time.Until(dl)
	}
	c, err := dialConn(pp.peer, d, pp.cfg.TCPNoDelay, pp.cfg.BufferSize)
	if err != nil {
		return err
	}
	defer c.nc.Close()
	c.nc.SetDeadline(time.Now().Add(d))
	const x = 0x6fae
	got, err := c.client.Noop(ctx, x)
	if err == nil && got != x {
		err = fmt.Errorf("noop(%d) answered %d", x, got)
	}
	return err
}

// stats is a snapshot of the pool's figures.
func (pp *peerPool) stats() PeerStats {
	pp.mu.Lock()
	idle := len(pp.idle)
	pp.mu.Unlock()
	dial, command := pp.breaker.States()
	var pipeConns, pipeInFlight int
	if pp.pipes != nil {
		pipeConns, pipeInFlight = pp.pipes.stats()
	}
	return PeerStats{PipeConns: pipeConns, PipeInFlight: pipeInFlight, Peer: pp.peer, DialBreaker: dial, CommandBreaker: command, Capacity: cap(pp.slots), Busy: len(pp.slots), Idle: idle, Waiting: pp.waiting.Load(),
		Breaker: pp.breaker.State(), Dials: pp.dials.Load(), DialFailures: pp.dialFailures.Load(),
		SharedDialFailures: pp.sharedFailures.Load(), Discarded: pp.discarded.Load()}
}
