package pool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

// This file is the coalesced read path of a memcached server
// (servants.memcache.coalesce, issue 12 "coalesced backend I/O"): concurrent
// gets of one server share round trips. A get that finds no round trip of
// gets in flight to its server sends its own at once (gomemcache's Get: no
// added latency when idle, nothing waits to fill a batch); the gets that
// arrive while one is in flight queue their keys, and when it returns the
// first of them sends one multi-get (gomemcache's GetMulti: one "gets k1 k2
// …" line, one round trip) for all the queued keys, up to
// max_conns_per_server of them, and hands each caller its own item or miss.
// Each get keeps its own timeout, from its start: a round trip ends by its
// oldest get's deadline (that get's caller then returns, the later gets of
// the round trip carried on by the first of them), and one that failed or timed out is sent again,
// once, on a fresh connection, for the gets with time left (reads are
// idempotent); otherwise its failure is each of its gets' own (kind, cause,
// observer, breaker). Scenario 5 of the bench (mc_get through faed, 2
// alternated runs of 3 rounds): at 16, 64 and 256 callers faed's CPU per
// call fell by 20-35% and calls/s rose by 35-50%; at one caller p50 and CPU
// stayed within noise.
//
// Batching onto gomemcache's multi-get rather than a pipelined text-protocol
// connection of our own: memcached answers a multi-get with one reply stream
// that gomemcache already parses, keeps gomemcache's connection reuse rule
// (no late reply ever answers another request) and needs no reader goroutine
// or reply matching here; what a pipeline would add, overlapping round
// trips, matters little when memcached answers a whole batch in
// microseconds. Writes (set, add, delete, incr, decr) keep a round trip of
// their own (mcServer.do): never batched, never retried.

// mcBatch is the coalesced read path of one server. Only one round trip of
// gets is in flight at a time, on a gomemcache client of its own (reads), so
// that the round trip's deadline (its oldest caller's start + timeout, set in
// limit) applies to its connection only.
type mcBatch struct {
	s       *mcServer
	reads   *memcache.Client // the round trips of gets only
	timeout time.Duration    // servants.memcache.timeout: each get's, from its start
	maxKeys int              // keys of one round trip: max_conns_per_server
	maxWait int              // max_waiting_calls: gets admitted beyond maxKeys (see get)
	limit   atomic.Int64     // deadline of the round trip in flight, Unix ns; 0 = none

	mu    sync.Mutex
	busy  bool     // a round trip is in flight
	sent  int      // the gets of the round trip in flight
	queue []*mcGet // gets waiting for the next round trip, oldest first

	// trips counts the round trips of gets, for tests to see the coalescing.
	trips atomic.Int64
}

// mcGet is one get of a key on the batched path.
type mcGet struct {
	key   string
	start time.Time     // the caller's; its deadline is start + timeout
	done  chan struct{} // capacity 1: signalled once when the get is answered, or told to lead
	lead  []*mcGet      // set before done is signalled: the batch this get sends (itself first)
	tried int           // with lead: the times lead was sent already (a round trip handed on, see run)
	item  *memcache.Item
	kind  Kind
	cause error
	count bool // the outcome came from the server (or a dial): the breaker counts it
}

// mcGets recycles the gets of every batch with their done channels: a get
// and its channel were 2 of the 9 allocations of a coalesced mc_get in faed
// (make bench scenario 5). A get goes back once its caller has its outcome;
// by then no batch signals it again (run signals each get once, last).
var mcGets = sync.Pool{New: func() any { return &mcGet{done: make(chan struct{}, 1)} }}

func newMcBatch(s *mcServer, cfg MemcacheConfig) *mcBatch {
	b := &mcBatch{s: s, timeout: cfg.Timeout, maxKeys: cfg.MaxConnsPerServer, maxWait: cfg.MaxWaitingCalls}
	b.reads = memcache.NewFromSelector(mcAddr(s.addr))
	b.reads.Timeout, b.reads.MaxIdleConns = cfg.Timeout, 1
	b.reads.DialContext = b.dial
	return b
}

// get answers a get of key begun at start: the item (nil unless KindOK) or
// the outcome's kind and cause, as mcServer.do with Get would, with
// KindTooLarge when the value is over maxReply (0 = none). As many gets are
// admitted (sent or queued) as without coalescing, max_conns_per_server
// holding a connection and max_waiting_calls waiting: one more fails at once
// with KindBusy (a *WaitLimitError counting the gets beyond
// max_conns_per_server as waiting).
func (b *mcBatch) get(key string, start time.Time, maxReply int) (*memcache.Item, Kind, error) {
	g := mcGets.Get().(*mcGet)
	g.key, g.start = key, start
	defer func() {
		*g = mcGet{done: g.done}
		mcGets.Put(g)
	}()
	b.mu.Lock()
	switch {
	case !b.busy:
		b.busy, b.sent = true, 1
		b.mu.Unlock()
		b.run([]*mcGet{g}, 0)
	case b.sent+len(b.queue) >= b.maxKeys+b.maxWait:
		n := b.sent + len(b.queue) - b.maxKeys
		b.mu.Unlock()
		return nil, KindBusy, newWaitLimitError(n, b.maxWait, b.s.addr)
	default:
		b.queue = append(b.queue, g)
		b.mu.Unlock()
		<-g.done
		if batch := g.lead; batch != nil {
			g.lead = nil
			b.run(batch, g.tried)
		}
	}
	if g.count {
		b.s.breaker.Do(func() (Kind, error) { return g.kind, g.cause })
	}
	if g.kind == KindOK && maxReply > 0 && len(g.item.Value) > maxReply {
		return nil, KindTooLarge, &mcTooLargeError{size: len(g.item.Value), limit: maxReply}
	}
	return g.item, g.kind, g.cause
}

// run sends batch (its first get is the caller's own; sent tried times
// already) in one round trip, hands the gets queued meanwhile to the first of
// them, and answers the rest of batch. When the caller's own get has had its
// outcome (its deadline passed) while later gets of batch have time left,
// the first of those carries the round trip on and the caller returns at
// once: a get's caller never waits past its own deadline for later gets.
func (b *mcBatch) run(batch []*mcGet, tried int) {
	rest, restTried := b.tripSafe(batch, tried)
	if len(rest) > 0 {
		answered := batch[1 : len(batch)-len(rest)]
		rest[0].lead, rest[0].tried = rest, restTried
		rest[0].done <- struct{}{}
		for _, g := range answered {
			g.done <- struct{}{}
		}
		return
	}
	b.mu.Lock()
	var next []*mcGet
	n := min(len(b.queue), b.maxKeys)
	b.sent = n
	if n == 0 {
		b.busy = false
	} else {
		next = b.queue[:n:n]
		b.queue = append([]*mcGet(nil), b.queue[n:]...)
	}
	b.mu.Unlock()
	if next != nil {
		next[0].lead = next
		next[0].done <- struct{}{}
	}
	for _, g := range batch[1:] {
		g.done <- struct{}{}
	}
}

// trip gives the gets of batch (sent tried times already) their outcome:
// refused while the breaker is open, KindBusy when no connection slot
// (connGate) came within the gate's wait, KindTimeout when none came within
// the oldest get's deadline, else the server's answer within the deadline of
// the oldest get (its start + timeout; gets are in arrival order). A round
// trip that failed (not a dial: the connection was lost, or the deadline
// passed) is sent again once, on a fresh connection (gomemcache closes a
// failed one), for the gets whose own deadline has not passed, within the
// oldest of theirs: gets are idempotent, and a get queued behind older ones
// is not cut short by their deadline. A get sent again counts only its last
// outcome on the breaker. Once the gets at the head of batch (its caller's
// own first) are answered for their deadline while later ones have time
// left, trip returns those later ones, unanswered, and the times they were
// sent (see run); else nil.
func (b *mcBatch) trip(batch []*mcGet, tried int) ([]*mcGet, int) {
	if b.s.breaker.isOpen() {
		b.answer(batch, KindBreakerOpen, nil, false)
		return nil, 0
	}
	if err := b.acquire(batch[0]); err != nil {
		if !errors.Is(err, context.DeadlineExceeded) {
			b.answer(batch, KindBusy, err, false)
			return nil, 0
		}
		late := max(b.expired(batch, time.Now()), 1)
		b.answer(batch[:late], KindTimeout, fmt.Errorf("no answer within timeout %s: no connection to the server came free", b.timeout), false)
		return batch[late:], tried
	}
	defer b.s.gate.release()
	for try := tried; ; try++ {
		if late := b.expired(batch, time.Now()); late > 0 {
			b.answer(batch[:late], KindTimeout, fmt.Errorf("no answer within timeout %s: the gets sent before this one took it", b.timeout), try > 0)
			return batch[late:], try
		}
		b.limit.Store(batch[0].start.Add(b.timeout).UnixNano())
		err := b.fetch(batch)
		b.limit.Store(0)
		if err == nil {
			b.found(batch)
			return nil, 0
		}
		kind, cause := mcOutcome(err)
		if kind == KindServerFailure {
			b.reads.Close() // a restarted server reset them all: dial afresh
			b.s.client.Close()
		}
		if try > 0 || kind != KindServerFailure && kind != KindTimeout || isDialError(cause) {
			b.answer(batch, kind, cause, true)
			return nil, 0
		}
		if late := b.expired(batch, time.Now()); late > 0 {
			b.answer(batch[:late], kind, cause, true)
			return batch[late:], try + 1
		}
	}
}

// acquire takes a connection slot of the server for the round trip led by
// first, the oldest get: at once if one is free, else waiting at most until
// first's deadline (context.DeadlineExceeded then) or the gate's own wait.
func (b *mcBatch) acquire(first *mcGet) error {
	select {
	case b.s.gate.slots <- struct{}{}:
		return nil
	default:
	}
	ctx, cancel := context.WithDeadline(context.Background(), first.start.Add(b.timeout))
	defer cancel()
	return b.s.gate.acquire(ctx)
}

// tripSafe is trip, with a panic on the caller's goroutine (here, or in the
// memcache client's single-key Get: none is known, but the gets queued
// behind a round trip wait for it without a timeout of their own, and the
// servant's recover would save the leader's call only) made a server failure
// of every get of batch: the next round trip still goes out, and the
// server's reads connection is dropped. gomemcache's GetMulti reads and
// parses on goroutines of its own, out of reach of any recover here: a panic
// there ends the process, as any goroutine's does.
func (b *mcBatch) tripSafe(batch []*mcGet, tried int) (rest []*mcGet, restTried int) {
	defer func() {
		if r := recover(); r != nil {
			b.limit.Store(0)
			b.reads.Close()
			b.answer(batch, KindServerFailure, fmt.Errorf("memcache client panicked: %v", r), true)
			rest, restTried = nil, 0
		}
	}()
	return b.trip(batch, tried)
}

// mcTripHook, when set (tests only), runs at the start of each round trip's fetch.
var mcTripHook func()

// expired is the number of gets at the head of batch (oldest first) whose
// deadline is not after now.
func (b *mcBatch) expired(batch []*mcGet, now time.Time) int {
	n := 0
	for n < len(batch) && !now.Before(batch[n].start.Add(b.timeout)) {
		n++
	}
	return n
}

// found gives each get of an answered round trip its outcome: its item
// (KindOK) or a miss.
func (b *mcBatch) found(batch []*mcGet) {
	for _, g := range batch {
		g.kind, g.cause, g.count = KindOK, nil, true
		if g.item == nil {
			g.kind, g.cause = KindMiss, mcCause(memcache.ErrCacheMiss)
		}
	}
}

// fetch sends the keys of batch and gives each get its item (nil: a miss):
// gomemcache's Get for one key (no goroutine, no map), GetMulti for several,
// each key once.
func (b *mcBatch) fetch(batch []*mcGet) error {
	b.trips.Add(1)
	if mcTripHook != nil {
		mcTripHook()
	}
	if len(batch) == 1 {
		it, err := b.reads.Get(batch[0].key)
		if err != nil && !errors.Is(err, memcache.ErrCacheMiss) {
			return err
		}
		batch[0].item = it
		return nil
	}
	keys := make([]string, 0, len(batch))
	seen := make(map[string]bool, len(batch))
	for _, g := range batch {
		if !seen[g.key] {
			seen[g.key] = true
			keys = append(keys, g.key)
		}
	}
	items, err := b.reads.GetMulti(keys)
	if err != nil {
		return err
	}
	clear(seen)
	for _, g := range batch {
		g.item = items[g.key]
		if g.item != nil && len(keys) < len(batch) {
			if seen[g.key] { // a second caller of the key: a value of its own
				c := *g.item
				c.Value = bytes.Clone(c.Value)
				g.item = &c
			}
			seen[g.key] = true
		}
	}
	return nil
}

// answer gives every get of batch the same outcome.
func (b *mcBatch) answer(batch []*mcGet, kind Kind, cause error, count bool) {
	for _, g := range batch {
		g.item, g.kind, g.cause, g.count = nil, kind, cause, count
	}
}

// dial is the reads client's DialContext: the server's counting dial within
// the round trip's deadline, the connection's deadlines bounded by it too.
func (b *mcBatch) dial(ctx context.Context, network, address string) (net.Conn, error) {
	if l := b.limit.Load(); l != 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, time.Unix(0, l))
		defer cancel()
	}
	nc, err := b.s.dial(ctx, network, address)
	if err != nil {
		return nil, err
	}
	return &mcLimitConn{Conn: nc, limit: &b.limit}, nil
}

// mcLimitConn moves each deadline gomemcache sets (now + timeout, before each
// read and write) back to the round trip's deadline when that is earlier, so
// that a get queued behind a slow round trip still ends within its own timeout.
type mcLimitConn struct {
	net.Conn
	limit *atomic.Int64
}

func (c *mcLimitConn) SetDeadline(t time.Time) error {
	if l := c.limit.Load(); l != 0 && l < t.UnixNano() {
		t = time.Unix(0, l)
	}
	return c.Conn.SetDeadline(t)
}

// close releases the reads client's idle connection.
func (b *mcBatch) close() { b.reads.Close() }

// queued is the number of gets waiting for the next round trip.
func (b *mcBatch) queued() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue)
}
