// Package proxy forwards calls to peer faed nodes: pooled clients of the
// generated FunServant client, one bounded pool and one breaker per peer.
package proxy

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/pool"
)

// Backend is the pool.Error Backend and pool.Op Backend of forwarded calls.
const Backend = "peer"

// Peer is a faed node to forward calls to, as it advertises itself: peers
// speak the protocol and transport their owner serves.
type Peer struct {
	Addr     string // host:port (TCP)
	Protocol string // "binary" or "compact" (the peer's rpc.protocol)
	Framed   bool   // the peer's rpc.framed
}

// Proxies are the connection pools to the peers, one per peer address,
// created on the first call to it. Each peer has its own breaker. Safe for
// concurrent use.
//
// Every failure is a *pool.Error (Backend "peer", Op the method, Pool and
// Server the peer's address); every call is reported once to the Observer
// (Backend "peer", Pool and Server the peer's address, Name the method).
type Proxies struct {
	cfg Config
	obs pool.Observer

	mu     sync.Mutex
	pools  map[string]*peerPool // by address
	closed bool
	// view is pools and closed as of the last change, for Call to read
	// without mu: a new copy is stored under mu at each change (a new peer,
	// Retain, Close: rare), as every forwarded call of every core reads it.
	view atomic.Pointer[proxiesView]
}

// proxiesView is a snapshot of Proxies' pools; never written once stored.
type proxiesView struct {
	pools  map[string]*peerPool
	closed bool
}

// publishLocked stores a snapshot of pools and closed; mu held.
func (p *Proxies) publishLocked() {
	p.view.Store(&proxiesView{pools: maps.Clone(p.pools), closed: p.closed})
}

// New returns Proxies for cfg, which must have passed Validate; obs (nil =
// none) is told of every forwarded call. Nothing is dialled before a call.
func New(cfg Config, obs pool.Observer) *Proxies {
	if obs == nil {
		obs = pool.NopObserver{}
	}
	p := &Proxies{cfg: cfg, obs: obs, pools: map[string]*peerPool{}}
	p.publishLocked()
	return p
}

// Call forwards one call to peer: fn makes it, with exactly one method call
// on c (method is that method's Thrift name, "lock", "my_query": the Op and
// the metric label). c belongs to fn only until fn returns.
//
// Bounds: the wait for a connection while pool_capacity calls to the peer
// hold one, borrow_timeout (then KindBusy); a dial, and the call from its
// request to the end of its reply, io_timeout each (5s when io_timeout is 0:
// IOTimeoutWhenZero; then KindTimeout). When ctx ends first the call stops at
// once (KindCanceled): its connection is closed, so the peer sees the client
// leave too. A connection that saw any failure, timeout or cancellation is
// closed, never reused, so a late reply never answers another call; it is
// kept after a reply read to its end: a result, a declared exception, or an
// INTERNAL_ERROR or UNKNOWN_METHOD exception (after which the peer's session
// goes on). The generated client's sequence ids would also refuse a reply
// that is not the call's (KindServerFailure).
//
// lock and unlock (with pipe_connections above 0) go instead on the peer's
// pipelined connections, shared by the calls (see pipeConn): no slot, no
// borrow_timeout; the call ends at its reply, at io_timeout after its request
// was queued (KindTimeout), or when ctx ends (KindCanceled: only its own wait
// stops; its reply, when it comes, is skipped). A timeout, a failed write or
// read, or a reply out of step closes the connection and fails every call
// pending on it at once (KindTimeout or KindServerFailure, the error saying
// the call may or may not have run; nothing is retried); the next call dials
// a new one. fn must make exactly one call on c.
//
// It returns nil; or the peer's declared exception as is (*rpc.TCacheMissed,
// *rpc.TMongoNotFound…), so that it reaches the client as itself; or a
// *pool.Error of kind:
//   - KindRefused: the peer answered with a TApplicationException, whose type
//     and message are in an *ApplicationError cause (see ServantError);
//   - KindBreakerOpen: the peer's breaker is open (a dead or frozen peer); no
//     connection was tried;
//   - KindBusy, KindTimeout, KindCanceled: as above;
//   - KindServerFailure: the dial, the write or the read failed, or the reply
//     was out of step with the call;
//   - KindBadArgument: no address, or a protocol other than binary and compact;
//   - KindClosed: after Close.
func (p *Proxies) Call(ctx context.Context, peer Peer, method string, fn func(ctx context.Context, c *rpc.FunServantClient) error) error {
	start := time.Now()
	pp, kind, err := p.pool(peer)
	server := peer.Addr
	if pp != nil {
		kind, err = pp.call(ctx, method, fn)
	} else {
		server = "" // refused before a connection was tried
	}
	p.obs.Observe(pool.Op{Backend: Backend, Pool: peer.Addr, Server: server, Name: method, Kind: kind, Duration: time.Since(start)})
	if kind == pool.KindOK || isDeclared(err) {
		return err
	}
	return &pool.Error{Backend: Backend, Op: method, Pool: peer.Addr, Server: server, Kind: kind, Err: err}
}

// Pipelined reports whether calls of method go on the peers' pipelined
// connections: lock and unlock, unless pipe_connections is 0. Such a call
// holds no connection of its own while it waits (at most io_timeout), so its
// caller need not watch its client to free one (engine.WatchClient).
func (p *Proxies) Pipelined(method string) bool {
	return p.cfg.PipeConnections > 0 && pipelined(method)
}

// pool returns the pool of peer, creating it on first use. A pool of the
// same address with another protocol or transport (the peer restarted with
// another rpc section) is retired and replaced.
func (p *Proxies) pool(peer Peer) (*peerPool, pool.Kind, error) {
	switch {
	case peer.Addr == "":
		return nil, pool.KindBadArgument, errors.New("no peer address")
	case peer.Protocol != "binary" && peer.Protocol != "compact":
		return nil, pool.KindBadArgument, errors.New(`protocol must be "binary" or "compact", got "` + peer.Protocol + `"`)
	}
	v := p.view.Load()
	pp, closed := v.pools[peer.Addr], v.closed
	switch {
	case closed:
		return nil, pool.KindClosed, nil
	case pp != nil && pp.peer == peer:
		return pp, pool.KindOK, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, pool.KindClosed, nil
	}
	if pp = p.pools[peer.Addr]; pp != nil && pp.peer == peer {
		return pp, pool.KindOK, nil
	}
	if pp != nil {
		pp.retire()
	}
	pp = newPeerPool(peer, &p.cfg)
	p.pools[peer.Addr] = pp
	p.publishLocked()
	return pp, pool.KindOK, nil
}

// Retain keeps the pools of addrs (the current members) and retires the
// others: their idle connections close now, each busy one when its call
// returns, so no call in flight is cut. A later call to a retired address
// starts a new pool, with a new breaker.
func (p *Proxies) Retain(addrs []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, pp := range p.pools {
		if !slices.Contains(addrs, addr) {
			delete(p.pools, addr)
			pp.retire()
		}
	}
	p.publishLocked()
}

// Close retires every pool (idle connections close now, busy ones when their
// call returns); calls after Close fail with KindClosed. It returns nil.
func (p *Proxies) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for addr, pp := range p.pools {
		delete(p.pools, addr)
		pp.retire()
	}
	p.publishLocked()
	return nil
}

// PeerStats are the figures of one peer's pool (what diagnostic_interval logs).
type PeerStats struct {
	Peer               Peer
	Capacity           int    // pool_capacity
	Busy               int    // calls holding or getting a connection now
	Idle               int    // idle connections now
	Waiting            int64  // calls waiting for a connection now (all pool_capacity busy)
	Breaker            string // "closed", "half-open" or "open" (pool.Breaker.State: both sides)
	DialBreaker        string // the breaker's dial side alone (pool.Breaker.States)
	CommandBreaker     string // the breaker's command side alone
	Dials              int64  // connects tried
	DialFailures       int64  // connects that failed
	SharedDialFailures int64  // calls failed by another call's failed connect, without dialling
	Discarded          int64  // connections closed after a failure, or found dead or expired when borrowed
	PipeConns          int    // pipelined connections open now (lock, unlock; at most pipe_connections)
	PipeInFlight       int    // calls sent or queued on them and not yet answered
}

// Stats returns the figures of every pool, sorted by address.
func (p *Proxies) Stats() []PeerStats {
	p.mu.Lock()
	out := make([]PeerStats, 0, len(p.pools))
	for _, pp := range p.pools {
		out = append(out, pp.stats())
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b PeerStats) int { return strings.Compare(a.Peer.Addr, b.Peer.Addr) })
	return out
}

// isDeclared reports whether err is an exception declared in the IDL.
func isDeclared(err error) bool {
	te, ok := err.(thrift.TException)
	return ok && te.TExceptionType() == thrift.TExceptionTypeCompiled
}
