package proxy

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/pool"
)

// pipelined reports whether method goes on a peer's pipelined connections:
// lock and unlock, which the owner answers from memory (its lock table)
// without waiting. The other forwarded methods (my_query, my_bulk_exec,
// my_merge, my_evict) can wait on MySQL at the owner, and a peer session
// answers its calls in order: a slow one would hold up every call pipelined
// behind it, so they keep the exclusive pool (one call per connection).
func pipelined(method string) bool {
	return method == "lock" || method == "unlock"
}

// pipes are the pipelined connections to one peer: pipe_connections slots,
// each holding at most one open connection. Calls gather on the first slot
// whose connection has fewer than pipeSpill calls in flight (the next slot's
// when it has as many, the least loaded one's when all have): the more calls
// one connection carries, the more go out in each write and come back in
// each read, at both ends, while a burst still spreads over the peer's cores
// (a peer answers one session's calls in turn). A slot whose connection broke
// dials a new one on the next call that reaches it, through the breaker's
// dial side; the calls that find it dialling wait for that dial and share
// its outcome.
type pipes struct {
	pp    *peerPool
	slots []pipeSlot
}

// pipeSpill is how many calls a pipelined connection holds in flight before
// the next calls go to the next slot's. Calls taken in turn by two
// connections made smaller batches: a forwarded lock cost node 0 and the
// owner 2-3 µs more of CPU at c=64 (make bench scenario 6, pipe_connections
// 1 against 2, alternated runs); 64 lock calls are a write of about 4 KiB.
const pipeSpill = 64

type pipeSlot struct {
	pc      atomic.Pointer[pipeConn] // the open connection, or nil or a dead one
	mu      sync.Mutex
	dialing *pipeDial // the dial in flight
}

// pipeDial is a dial in flight; done is closed once pc or err is set.
type pipeDial struct {
	done chan struct{}
	pc   *pipeConn
	err  error
}

func newPipes(pp *peerPool, n int) *pipes {
	return &pipes{pp: pp, slots: make([]pipeSlot, n)}
}

// call runs fn on a pipelined connection, through the peer's breaker. A call
// whose connection turned out broken before its request was queued (so not
// sent) goes once more on a fresh one.
func (p *pipes) call(ctx context.Context, method string, fn func(context.Context, *rpc.FunServantClient) error) (pool.Kind, error) {
	for try := 0; ; try++ {
		pc, err := p.get(ctx)
		if err != nil {
			return dialKind(ctx, err)
		}
		tc := pipeClients.Get().(*pipeClient)
		tc.pc = pc
		ran := false
		var out error
		kind, _ := p.pp.breaker.Do(func() (pool.Kind, error) {
			ran = true
			err := fn(ctx, tc.client)
			var k pool.Kind
			if tc.failed {
				k, out = tc.kind, tc.err
			} else {
				k, out, _ = classify(err, p.pp.peer.Addr, method, p.pp.cfg.CallTimeout())
			}
			if out == errNotSent {
				k = pool.KindClosed // counts neither way on the breaker
			}
			return k, out
		})
		tc.release()
		switch {
		case !ran:
			return pool.KindBreakerOpen, nil
		case out == errNotSent && try == 0 && ctx.Err() == nil:
			continue
		}
		return kind, out
	}
}

// get returns the open connection calls gather on (see pipes), or dials the
// first slot's that is closed or broken before any later slot is used.
func (p *pipes) get(ctx context.Context) (*pipeConn, error) {
	var least *pipeConn
	for i := range p.slots {
		s := &p.slots[i]
		pc := s.pc.Load()
		if pc == nil || pc.dead.Load() {
			return p.dial(ctx, s)
		}
		if n := pc.queued.Load(); n < pipeSpill {
			return pc, nil
		} else if least == nil || n < least.queued.Load() {
			least = pc
		}
	}
	return least, nil
}

// dial opens the connection of slot s, through the breaker's dial side, or
// waits for the dial in flight and shares its outcome. A waiter stops
// waiting when its ctx ends; the dial itself is bounded by io_timeout only.
func (p *pipes) dial(ctx context.Context, s *pipeSlot) (*pipeConn, error) {
	if p.pp.breaker.State() == "open" {
		return nil, pool.KindBreakerOpen
	}
	s.mu.Lock()
	if pc := s.pc.Load(); pc != nil && !pc.dead.Load() {
		s.mu.Unlock()
		return pc, nil
	}
	d := s.dialing
	if d == nil {
		d = &pipeDial{done: make(chan struct{})}
		s.dialing = d
		s.mu.Unlock()
		d.pc, d.err = p.dialOne()
		s.mu.Lock()
		s.dialing = nil
		if d.err == nil {
			s.pc.Store(d.pc)
		}
		s.mu.Unlock()
		close(d.done)
		return d.pc, d.err
	}
	s.mu.Unlock()
	select {
	case <-d.done:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	if d.err != nil {
		p.pp.sharedFailures.Add(1)
	}
	return d.pc, d.err
}

// dialOne connects to the peer through the breaker's dial side and starts a
// pipelined connection on the socket.
func (p *pipes) dialOne() (*pipeConn, error) {
	pp := p.pp
	var pc *pipeConn
	err := pp.breaker.Dial(func() error {
		pp.dials.Add(1)
		nc, err := dialNet(pp.peer, pp.cfg.CallTimeout(), pp.cfg.TCPNoDelay)
		if err != nil {
			pp.dialFailures.Add(1)
			return err
		}
		pp.mu.Lock()
		retired := pp.retired
		pp.mu.Unlock()
		pc = newPipeConn(nc, pp.peer, pp.cfg.CallTimeout(), pp.cfg.BufferSize, retired, func(err error) {
			pp.breaker.Do(func() (pool.Kind, error) { return pool.KindTimeout, err })
		})
		return nil
	})
	return pc, err
}

// retire closes every connection once its pending calls are answered.
func (p *pipes) retire() {
	for i := range p.slots {
		if pc := p.slots[i].pc.Load(); pc != nil {
			pc.retire()
		}
	}
}

// stats are the open connections and the calls in flight on them.
func (p *pipes) stats() (conns, inFlight int) {
	for i := range p.slots {
		if pc := p.slots[i].pc.Load(); pc != nil && !pc.dead.Load() {
			conns++
			inFlight += pc.inFlight()
		}
	}
	return conns, inFlight
}

// pipeClient is the thrift.TClient of one call on a pipelined connection
// (rpc.NewFunServantClient works on it unchanged). It records the failure of
// the connection, if that was the call's outcome, for pipes.call.
type pipeClient struct {
	pc     *pipeConn
	client *rpc.FunServantClient // on this pipeClient, made once
	call   pipeCall              // the call in flight (in the same allocation)
	used   bool
	failed bool
	kind   pool.Kind
	err    error
}

// pipeClients are the pipeClients not in use, each with its generated
// client and its call's done channel: a forwarded call otherwise allocated
// all three (pprof of make bench scenario 6: allocation was a quarter of
// what forwarding a lock cost node 0 beyond answering it locally).
var pipeClients = sync.Pool{New: func() any {
	tc := &pipeClient{}
	tc.call.done = make(chan struct{}, 1)
	tc.client = rpc.NewFunServantClient(tc)
	return tc
}}

// release returns tc to pipeClients once its call is over, if the reader
// answered it in the ordinary way (pipeCall.reusable); any other call (its
// caller left it, its connection failed) may still be looked at by the
// reader or by fail, and is left to the garbage collector.
func (tc *pipeClient) release() {
	if !tc.call.reusable {
		return
	}
	done := tc.call.done
	tc.call = pipeCall{done: done}
	tc.pc, tc.used, tc.failed, tc.kind, tc.err = nil, false, false, pool.KindOK, nil
	pipeClients.Put(tc)
}

// Call sends the request and waits for the reply (see pipeConn.call). Its
// error is the peer's TApplicationException, or the failure of the call.
func (tc *pipeClient) Call(ctx context.Context, method string, args, result thrift.TStruct) (thrift.ResponseMeta, error) {
	if result == nil {
		return thrift.ResponseMeta{}, errors.New("proxy: oneway calls are not pipelined")
	}
	if tc.used {
		return thrift.ResponseMeta{}, errors.New("proxy: one call per pipelined client")
	}
	tc.used = true
	tc.call.method, tc.call.result = method, result
	kind, err := tc.pc.call(ctx, &tc.call, args)
	if kind != pool.KindOK {
		tc.failed, tc.kind, tc.err = true, kind, err
	}
	return thrift.ResponseMeta{}, err
}
