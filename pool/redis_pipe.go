package pool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/fae-go/fae/internal/sockio"
)

// This file is the pipelined path of a Redis server (servants.redis.pipeline,
// issue 12 "coalesced backend I/O"): concurrent calls share rdPipeConns
// connections of the server, gathering on the first one that is not stalled.
// Each connection has one batch of commands in flight at a time: the
// commands queued while it is out go in the next write (one Flush of redigo's
// buffered writer, one write system call) as soon as its last reply is read,
// by the connection's reader goroutine, which reads the replies in order and
// hands each to its caller; if the batch in flight is not answered within
// rdPipeHold (a slow command, a stalled server), the queue is written behind
// it (pipelined). Nothing waits to fill a batch: a caller that finds its
// connection idle writes its own command at once, and reads its own reply
// (readOwn) as a dedicated connection's caller does, so that a lone caller
// pays no goroutine hand-off: the reader goroutine takes over only the
// replies of commands that queued meanwhile. Gathering the calls of a
// round trip, as memcache_batch.go and twemproxy do, gives batches of about
// half the callers: at 64 callers 28-31 commands per write against 9-12 when
// each caller that found no write in flight wrote what had queued
// (BenchmarkRedisGet), so fewer writes and reads on both sides.
//
// Only commands that neither block nor change the state of the connection are
// pipelined (rdPipelinable); the others keep the dedicated connections of the
// server's redigo pool (rdServer.do).

// rdPipeConns is the number of shared connections per server: replies are read
// in order, so a slow reply delays the ones behind it on its connection; Redis
// runs one command at a time anyway, so more connections would not run more.
const rdPipeConns = 2

// rdPipeRetryable are the read-only commands a pipelined call runs again, once,
// on a fresh connection when the one it was sent on was lost before its reply
// (after another call's timeout, a reply too large, or a failed read or write):
// running them twice changes nothing. Any other command sent on a lost
// connection fails: it may or may not have run, and is never run twice.
var rdPipeRetryable = map[string]bool{"GET": true, "MGET": true, "HGET": true, "HMGET": true,
	"HGETALL": true, "HEXISTS": true, "HLEN": true, "EXISTS": true, "TTL": true, "PTTL": true, "TYPE": true,
	"STRLEN": true, "GETRANGE": true, "LLEN": true, "LINDEX": true, "LRANGE": true, "SCARD": true,
	"SISMEMBER": true, "SMEMBERS": true, "ZCARD": true, "ZSCORE": true, "ZRANK": true, "ZCOUNT": true,
	"PING": true, "ECHO": true}

// rdPipelinable reports whether upper-case command name may share a
// connection: not one of the state-changing commands (rdStateCommands, which
// DoKey may run), not a blocking one (rdBlockingCommands, even without its
// BLOCK option), and not ASKING (it applies to the connection's next command).
func rdPipelinable(name string) bool { return rdLookup(name).pipe }

// rdPipe is the pipelined path of one server: rdPipeConns slots, each empty or
// holding a live rdPipeConn. A slot's connection is borrowed from the
// server's redigo pool (so it counts in max_active and in Stats as in use, and
// is dialled through the breaker's dial side) and kept until it fails or the
// pool is closed.
type rdPipe struct {
	s      *rdServer
	limit  int64 // max_reply_bytes; 0 = none
	n      int   // slots used: rdPipeConns, or 1 when max_active is under 2 × rdPipeConns
	mu     sync.Mutex
	slots  [rdPipeConns]*rdPipeConn
	dial   [rdPipeConns]chan struct{} // closed when the slot's dial in flight ends; nil when none
	closed bool
	// flushes counts the writes of batches of commands, for tests to see the
	// coalescing (fewer flushes than calls under concurrency); turns the
	// turns of the connections' reader goroutines (read), for tests to see
	// that a lone caller reads its own reply.
	flushes, turns atomic.Int64
}

// newRdPipe returns the pipelined path of s, or nil (every command on
// dedicated connections) when pipeline is off or max_active is under
// rdPipeConns + 2: the pipe keeps its connections, and the dedicated ones
// (blocking and state-changing commands) need some left. max_active 0 is no limit.
func newRdPipe(s *rdServer, cfg RedisConfig, sc RedisServerConfig, limits Limits) *rdPipe {
	if !cfg.Pipeline || sc.MaxActive != 0 && sc.MaxActive < rdPipeConns+2 {
		return nil
	}
	n := rdPipeConns
	if sc.MaxActive != 0 && sc.MaxActive < 2*rdPipeConns {
		n = 1
	}
	return &rdPipe{s: s, n: n, limit: int64(limits.MaxReplyBytes)}
}

// rdPipeCall is one command on a pipelined connection. Calls are reused
// (rdPipeCalls): done is buffered, signalled once per use; only a call
// answered by its reply goes back (see once).
type rdPipeCall struct {
	cmd      string
	args     []any
	deadline time.Time     // of its reply: the call's start + io_timeout
	done     chan struct{} // signalled (one value) when reply, err and lost are set
	reply    any
	err      error
	// lost: the connection failed before this reply (another call's timeout,
	// a reply too large, or a failed read or write); sent says whether the
	// command had been written (it may have run) or was still queued (it did not).
	lost, sent bool
}

// rdPipeCalls are the calls not in use, with their done channel: a call
// otherwise costs two allocations (the call, its channel).
var rdPipeCalls = sync.Pool{New: func() any { return &rdPipeCall{done: make(chan struct{}, 1)} }}

// answer hands call its outcome; exactly once per use of the call.
func (call *rdPipeCall) answer() { call.done <- struct{}{} }

// do runs a pipelinable command: the pipelined counterpart of rdServer.do,
// with the same breaker accounting, kinds and causes. The connection is found
// outside the breaker (a failed dial counts on its dial side only, as a failed
// borrow). A call lost with its connection before it was sent certainly did
// not run: it is run again on another connection, up to rdPipeConns times
// (each such loss emptied a slot: after a server restart every idle
// connection of the pipe is dead, and submit finds each so before writing
// on it). One lost after it was sent is run again once, on a fresh
// connection, only when read-only (rdPipeRetryable). A lost attempt counts
// neither way on the breaker.
//
// start is the call's start: its reply is due by start + io_timeout; a
// retry that comes later fails with KindTimeout.
func (p *rdPipe) do(ctx context.Context, start time.Time, name, cmd string, args []any) (any, Kind, error) {
	if ctx.Err() != nil {
		return nil, KindCanceled, context.Cause(ctx)
	}
	if p.s.breaker.isOpen() {
		return nil, KindBreakerOpen, nil
	}
	deadline := start.Add(p.s.ioTimeout)
	var reply any
	var kind Kind
	var cause error
	for try, unsent, sentAgain := 0, 0, false; ; try++ {
		if try > 0 && !time.Now().Before(deadline) { // a retry only: the first try began at start
			kind, cause = KindTimeout, fmt.Errorf("no reply within io_timeout %s: the connection was lost and no time was left to retry", p.s.ioTimeout)
			break
		}
		c, k, err := p.conn(ctx)
		if k != KindOK {
			kind, cause = k, err
			break
		}
		retry, wasSent := false, false
		kind, cause = p.s.breaker.Do(func() (Kind, error) {
			var lost bool
			reply, lost, wasSent, kind, cause = p.once(ctx, c, cmd, args, deadline)
			retry = lost && (!wasSent && unsent < rdPipeConns || wasSent && !sentAgain && rdPipeRetryable[name])
			if retry {
				return KindCanceled, nil // neutral: the retry counts
			}
			return kind, cause
		})
		if !retry {
			break
		}
		if wasSent {
			sentAgain = true
		} else {
			unsent++
		}
		// The connection was lost: the pool's idle ones may be as dead (a
		// restarted server), so the retry must not borrow one of them.
		p.s.epoch.Add(1)
		kind, cause = KindOK, nil
	}
	if kind == KindServerFailure {
		p.s.epoch.Add(1)
	}
	return reply, kind, cause
}

// once sends one command on c and waits for its reply; lost and sent are
// the call's (see rdPipeCall).
func (p *rdPipe) once(ctx context.Context, c *rdPipeConn, cmd string, args []any, deadline time.Time) (reply any, lost, sent bool, kind Kind, err error) {
	call := rdPipeCalls.Get().(*rdPipeCall)
	call.cmd, call.args, call.deadline = cmd, args, deadline
	if c.submit(call) {
		c.readOwn(ctx, call)
	}
	select {
	case <-call.done: // answered already (often: by this caller's own read): no select over two channels
	default:
		select {
		case <-call.done:
		case <-ctx.Done(): // the reply, when it comes, is dropped by the reader; call is not reused
			return nil, false, false, KindCanceled, context.Cause(ctx)
		}
	}
	kind, err = p.classify(call)
	reply, lost, sent = call.reply, call.lost, call.sent
	if call.err == nil {
		// Answered by its reply: the writer is past it (Redis had it all).
		// A call failed with its connection may still be in the batch being
		// written, and is left to the garbage collector.
		*call = rdPipeCall{done: call.done}
		rdPipeCalls.Put(call)
	}
	return reply, lost, sent, kind, err
}

// classify gives the kind and cause of a pipelined call's outcome.
func (p *rdPipe) classify(call *rdPipeCall) (Kind, error) {
	err := call.err
	if err == nil { // before re and tl, which escape: no allocation for an answer
		return KindOK, nil
	}
	var re redis.Error
	var tl *rdTooLargeError
	switch {
	case errors.As(err, &re):
		return classifyErrorReply(re, call.cmd)
	case call.lost && !call.sent:
		return KindServerFailure, fmt.Errorf("connection lost before the command was sent (it did not run): %w", err)
	case call.lost && errors.Is(err, os.ErrDeadlineExceeded):
		return KindTimeout, fmt.Errorf("connection replaced after an earlier command pipelined on it got no reply within io_timeout %s; this command was sent and may or may not have run: %w", p.s.ioTimeout, err)
	case call.lost:
		return KindServerFailure, fmt.Errorf("connection lost after the command was sent; it may or may not have run: %w", err)
	case errors.As(err, &tl):
		return KindTooLarge, err
	case errors.Is(err, os.ErrDeadlineExceeded):
		return KindTimeout, fmt.Errorf("no reply within io_timeout %s: %w", p.s.ioTimeout, err)
	}
	return KindServerFailure, err
}

// conn returns the first live connection in slot order that is not stalled
// (else the least loaded): concurrent calls gather on one connection, in
// batches twice as large as when spread over two, while the calls that come
// when a command there is slow go to the other one. An empty slot is filled first
// (borrowing from the server's pool: up to borrow_timeout, KindBusy after).
func (p *rdPipe) conn(ctx context.Context) (*rdPipeConn, Kind, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, KindClosed, nil
		}
		var best *rdPipeConn
		free := -1
		bestLoad := 0
		for i, c := range p.slots[:p.n] {
			switch {
			case c == nil:
				if free < 0 {
					free = i
				}
			case best == nil || best.stalled.Load() && (!c.stalled.Load() || c.load() < bestLoad):
				best, bestLoad = c, c.load()
			}
		}
		if free < 0 || best != nil && bestLoad == 0 {
			p.mu.Unlock()
			return best, KindOK, nil
		}
		if wait := p.dial[free]; wait != nil {
			p.mu.Unlock()
			if best != nil {
				return best, KindOK, nil
			}
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, KindCanceled, context.Cause(ctx)
			}
		}
		wait := make(chan struct{})
		p.dial[free] = wait
		p.mu.Unlock()
		c, kind, err := p.open(ctx)
		if c != nil && rdPipeBeforeInstall != nil {
			rdPipeBeforeInstall(c)
		}
		p.mu.Lock()
		p.dial[free] = nil
		if c != nil && p.closed {
			c.fail(errRdPipeClosed, false)
			c, kind, err = nil, KindClosed, nil
		}
		if c != nil {
			c.slot = free
			// A connection that failed before it had its slot (closed
			// meanwhile by close) is not installed: fail found no slot to
			// empty, and every call given it would be lost. The caller's
			// call fails as not sent and is retried on a fresh connection.
			// (One the server closed before its first command, as after a
			// restart, is installed; submit finds it dead before writing.)
			c.mu.Lock()
			dead := c.dead != nil
			c.mu.Unlock()
			if !dead {
				p.slots[free] = c
			}
		}
		p.mu.Unlock()
		close(wait)
		return c, kind, err
	}
}

var errRdPipeClosed = errors.New("pool closed")

// rdPipePeek is whether pipelined connections are peeked at (readOwn,
// idleCheck): sockio.PeekSupported, false in tests of the other way.
var rdPipePeek = sockio.PeekSupported

// rdPipeBeforeInstall, when set (tests only), runs in conn between opening a
// connection and installing it in its slot.
var rdPipeBeforeInstall func(*rdPipeConn)

// open borrows a connection from the server's pool and starts its reader.
func (p *rdPipe) open(ctx context.Context) (*rdPipeConn, Kind, error) {
	// The connection holds a token of the server's connGate (max_active,
	// max_waiting_calls) for its life, as a dedicated call holds one while it
	// uses its connection: the gate and redigo's pool count alike.
	if g := p.s.gate; g != nil {
		if err := g.acquire(ctx); err != nil {
			kind, cause := waitOutcome(ctx, err)
			return nil, kind, cause
		}
	}
	bctx, cancel := context.WithTimeout(ctx, p.s.borrow)
	pc, err := p.s.pool.GetContext(bctx)
	cancel()
	if err != nil {
		p.release()
		kind, cause := p.s.borrowError(ctx, err)
		return nil, kind, cause
	}
	// The empty command runs nothing: rdConn.DoContext only hands over the
	// rdConn under the pool's wrapper.
	call := &rdCall{}
	if _, err := pc.(redis.ConnWithContext).DoContext(context.WithValue(ctx, rdCallKey{}, call), ""); err != nil || call.conn == nil {
		pc.Close()
		p.release()
		return nil, KindServerFailure, fmt.Errorf("pipelined connection: %v", err)
	}
	raw := call.conn.nc.Conn // under rdNetConn, whose reply count assumes one command at a time
	limit := p.limit
	if limit <= 0 || limit > rdNoReplyLimit {
		limit = rdNoReplyLimit
	}
	nc := &rdPipeNetConn{Conn: raw, scan: rdReplyScan{limit: limit, lineHead: true}}
	c := &rdPipeConn{p: p, pc: pc, rc: call.conn, raw: raw, nc: nc, conn: redis.NewConn(nc, 0, 0), wake: make(chan struct{}, 1)}
	if sc, ok := raw.(syscall.Conn); ok && rdPipePeek {
		c.rawc, _ = sc.SyscallConn()
		c.peekFn = func(fd uintptr) bool {
			c.peekN, c.peeked = sockio.PeekInto(fd, c.peekBuf[:])
			return c.peeked != sockio.PeekEmpty
		}
		c.checkFn = func(fd uintptr) { c.checked = sockio.Peek(fd) }
	} else {
		// Without peeking, an idle connection cannot be looked at: the
		// reader goroutine reads it all the time, as a dead one must be
		// seen before a command is written on it (readSent).
		c.role = rdReaderGoroutine
		c.wake <- struct{}{}
	}
	go c.read()
	return c, KindOK, nil
}

// release gives back the connGate token of a connection that ended or was not opened.
func (p *rdPipe) release() {
	if p.s.gate != nil {
		p.s.gate.release()
	}
}

// drop empties c's slot if c is still in it.
func (p *rdPipe) drop(c *rdPipeConn) {
	p.mu.Lock()
	if p.slots[c.slot] == c {
		p.slots[c.slot] = nil
	}
	p.mu.Unlock()
}

// close stops new calls (KindClosed) and closes each connection once the
// calls already on it have their reply, as the pool's busy connections are
// closed when their command ends.
func (p *rdPipe) close() {
	p.mu.Lock()
	p.closed = true
	slots := p.slots
	p.mu.Unlock()
	for _, c := range slots {
		if c == nil {
			continue
		}
		c.mu.Lock()
		c.closing = true
		idle := len(c.sent)+len(c.queue) == 0 && !c.writing
		c.mu.Unlock()
		if idle {
			c.fail(errRdPipeClosed, false)
		}
	}
}

// rdPipeConn is one shared connection. Callers append to queue; the caller
// that finds no write in flight becomes the writer and writes the queue, batch
// after batch, until it is empty. Written calls move to sent, whose head the
// reader goroutine answers with the next reply.
type rdPipeConn struct {
	p    *rdPipe
	slot int
	pc   redis.Conn // the pool's connection, given back (closed) when this one fails
	rc   *rdConn
	raw  net.Conn   // the socket: deadlines are set here, redigo's calls to set them are ignored
	conn redis.Conn // redigo's connection over rdPipeNetConn: Send and Flush by the writer, Receive by the reader
	nc   *rdPipeNetConn
	// received counts the replies taken from conn (Receive), by whoever
	// reads (role); compared with those nc has seen end (idleCheck).
	received int64
	// rawc is the socket's RawConn, for waiting until it is readable
	// without reading (readOwn) and looking at an idle one (submit); nil
	// when the platform cannot peek: every reply is then read by the reader
	// goroutine.
	rawc    syscall.RawConn
	peekFn  func(fd uintptr) bool // readOwn's wait: peeks into peekBuf (peekN, peeked), true unless PeekEmpty; made once
	peeked  sockio.PeekState
	peekN   int
	peekBuf [rdOwnReplyBytes]byte
	checkFn func(fd uintptr) // idleCheck's look: sets checked; made once
	checked sockio.PeekState
	wake    chan struct{} // (1) the reader goroutine's turn to read: role became rdReaderGoroutine; closed by fail

	pending atomic.Int32 // calls submitted and not yet answered: queue, sent, and those being handed over
	// stalled: the batch in flight has gone unanswered for rdPipeHold
	// (flushHeld), until all that was written is answered; conn then
	// prefers another connection.
	stalled atomic.Bool

	mu    sync.Mutex
	queue []*rdPipeCall // waiting to be written
	sent  []*rdPipeCall // written, waiting for their reply, in order
	// sentBuf is the array sent started at when it was last empty, and
	// spare the array of the last batch written: reused, so that queue and
	// sent do not grow afresh for each batch.
	sentBuf, spare []*rdPipeCall
	writing        bool
	held           bool        // timer is armed to write the queue (hold)
	timer          *time.Timer // rdPipeHold's, made on first use
	closing        bool        // the pipe is closed: fail c once its calls are answered
	rdl            time.Time   // the socket's read deadline (rdPipeTick-rounded), zero for none
	wdl            time.Time   // the socket's write deadline; the writer's only
	dead           error       // why the connection failed; nil while it works
	// role says who reads the replies of sent: nobody (rdReaderNone, sent
	// is empty), the caller of its head call (rdReaderOwn, readOwn), or the
	// reader goroutine. Whenever sent is not empty someone reads.
	role rdReaderRole
	// waitingOwn: the caller reading its own reply waits for the socket
	// to be readable, where its ctx may interrupt it (interrupt);
	// interrupted says that it did. ownSeq numbers the own reads, so that
	// an interrupt meant for an earlier one, late, leaves a later one be.
	waitingOwn, interrupted bool
	ownSeq                  uint64
}

// rdOwnReplyBytes is the largest reply a caller reads itself (readOwn): it
// takes it from redigo only once the whole reply has arrived, which it
// sees by peeking at the socket; a larger reply, or one not all there
// when the socket becomes readable, is left to the reader goroutine, so
// that the caller waits for the rest where its ctx can end the wait.
const rdOwnReplyBytes = 4096

// rdReaderRole is who reads a pipelined connection's replies.
type rdReaderRole int8

const (
	rdReaderNone      rdReaderRole = iota // no reply is awaited
	rdReaderOwn                           // the caller of the head of sent, for its own reply only (readOwn)
	rdReaderGoroutine                     // the connection's reader goroutine (read)
)

// load is the number of calls waiting on c (read without c.mu: conn asks
// it of every slot on every call).
func (c *rdPipeConn) load() int { return int(c.pending.Load()) }

// submit queues call, and writes the queue when the connection is idle (no
// write in flight, no reply awaited): an idle connection adds no latency.
// Otherwise the queue goes out in one write when the batch in flight has all
// its replies (the reader writes it: read), or after rdPipeHold if that batch
// is still unanswered by then (pipelined behind it: flushHeld). One batch in
// flight per connection gathers the calls that arrive during a round trip
// into the next write, as memcache_batch.go does, instead of writing
// whatever arrived during the last write.
//
// It reports whether the caller is to read call's reply itself (readOwn):
// the connection was idle, so call is the head of sent. Nobody reads an idle
// connection, so before writing on one it is looked at (sockio.Peek): one
// the server has closed meanwhile (its timeout, a restart: the end of the
// stream) or that has bytes no command asked for is failed, and call is lost
// unsent (run again on a fresh connection by rdPipe.do) instead of being sent
// on a dead connection, where it might or might not run.
func (c *rdPipeConn) submit(call *rdPipeCall) bool {
	c.mu.Lock()
	if c.dead != nil {
		err := c.dead
		c.mu.Unlock()
		call.err, call.lost = err, true
		call.answer()
		return false
	}
	switch {
	case c.writing: // the writer arms the hold when it is done, if need be
		c.pending.Add(1)
		c.queue = append(c.queue, call)
		c.mu.Unlock()
		return false
	case len(c.sent) > 0:
		c.pending.Add(1)
		c.queue = append(c.queue, call)
		c.hold()
		c.mu.Unlock()
		return false
	}
	own := c.rawc != nil && c.role == rdReaderNone
	if own {
		if err := c.idleCheck(); err != nil {
			c.mu.Unlock()
			c.fail(err, false)
			call.err, call.lost = err, true
			call.answer()
			return false
		}
		c.role, c.waitingOwn = rdReaderOwn, true
		c.ownSeq++
	}
	c.pending.Add(1)
	c.queue = append(c.queue, call)
	c.flush() // unlocks
	return own
}

// idleCheck looks at an idle connection (c.mu held): nil while the server has
// sent nothing on it, else why it cannot be used.
func (c *rdPipeConn) idleCheck() error {
	if !c.nc.scan.idle(c.received) {
		return errors.New("a reply no command asked for")
	}
	err := c.rawc.Control(c.checkFn)
	switch {
	case err != nil:
		return err
	case c.checked == sockio.PeekClosed:
		return errors.New("the server closed the idle connection")
	case c.checked == sockio.PeekData:
		return errors.New("a reply no command asked for")
	}
	return nil
}

// readOwn reads the reply of call, the head of sent, written by its caller
// on an idle connection: it waits until the socket is readable, then, if the
// whole reply is there (at most rdOwnReplyBytes), takes it from redigo, which
// then cannot wait. If ctx ends during the wait (interrupt), or the reply
// is longer or not all there yet, the reader goroutine takes over the
// reading and the caller waits in once, where its ctx can end the wait (its
// reply, when it comes, is then dropped). The replies of commands written
// behind call meanwhile (flushHeld) are the reader goroutine's, as are
// those of the commands queued meanwhile, which this writes when call is
// answered.
func (c *rdPipeConn) readOwn(ctx context.Context, call *rdPipeCall) {
	var stop func() bool
	if ctx.Done() != nil {
		seq := c.ownSeq // set by this goroutine's submit; no other submit runs until the reading is handed on
		stop = context.AfterFunc(ctx, func() { c.interrupt(seq) })
	}
	err := c.rawc.Read(c.peekFn)
	if stop != nil {
		stop()
	}
	c.mu.Lock()
	c.waitingOwn = false
	whole := err == nil && c.peeked == sockio.PeekData && rdWholeReply(c.peekBuf[:c.peekN])
	if c.interrupted || err == nil && c.peeked == sockio.PeekData && !whole {
		if c.interrupted {
			c.interrupted = false
			c.rdl = time.Time{} // interrupt moved the socket's deadline: set it again
		}
		if c.dead == nil {
			c.setReadDeadline(c.sent[0].deadline)
			c.role = rdReaderNone
			c.readerTurn()
		}
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	if err != nil { // io_timeout passed (call is the head: the timeout is its own), or the connection was closed
		c.fail(err, true)
		return
	}
	reply, err := c.conn.Receive()
	c.received++
	if err != nil && !rdErrorReply(err) {
		c.fail(err, true)
		return
	}
	c.mu.Lock()
	if len(c.sent) == 0 || c.sent[0] != call {
		c.mu.Unlock() // failed meanwhile (closed by another call's failed write): call is answered
		return
	}
	c.sent[0] = nil
	c.sent = c.sent[1:]
	c.pending.Add(-1)
	call.reply, call.err = reply, err
	c.role = rdReaderNone
	if len(c.sent) > 0 { // written behind call after rdPipeHold
		c.setReadDeadline(c.sent[0].deadline)
		c.readerTurn()
	} else if c.stalled.Load() {
		c.stalled.Store(false) // all that was written is answered
	}
	if len(c.sent) == 0 && len(c.queue) > 0 && !c.writing && c.dead == nil {
		c.flush() // unlocks; the reader goroutine reads what it writes
		call.answer()
		return
	}
	drained := c.closing && len(c.sent)+len(c.queue) == 0 && !c.writing
	c.mu.Unlock()
	call.answer()
	if drained {
		c.fail(errRdPipeClosed, false)
	}
}

// interrupt is the ctx of own read seq ending: its wait for the socket ends
// (a read deadline in the past; readOwn sets the call's again), unless it is
// past the wait, taking a reply that is all there from redigo.
func (c *rdPipeConn) interrupt(seq uint64) {
	c.mu.Lock()
	if c.waitingOwn && c.ownSeq == seq && c.dead == nil {
		c.interrupted = true
		c.raw.SetReadDeadline(longAgo)
	}
	c.mu.Unlock()
}

// readerTurn gives the reading of sent to the reader goroutine; c.mu held,
// role rdReaderNone. A turn already given and not yet taken is the same turn.
func (c *rdPipeConn) readerTurn() {
	if c.dead == nil {
		c.role = rdReaderGoroutine
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// rdPipeHold is how long queued calls wait for the batch in flight to be
// answered before they are written behind it anyway: a round trip takes
// tens of µs, so it matters only when a command is slow or the server
// stalls, where pipelining behind the stuck batch keeps the old behaviour.
const rdPipeHold = time.Millisecond

// hold arms the timer that writes the queue after rdPipeHold; c.mu held.
func (c *rdPipeConn) hold() {
	if c.held {
		return
	}
	c.held = true
	if c.timer == nil {
		c.timer = time.AfterFunc(rdPipeHold, c.flushHeld)
	} else {
		c.timer.Reset(rdPipeHold)
	}
}

// flushHeld is the hold's timer: the queue still waits, pipelined behind an
// unanswered batch; it is written now.
func (c *rdPipeConn) flushHeld() {
	c.mu.Lock()
	if !c.held || c.writing || c.dead != nil || len(c.queue) == 0 {
		c.held = false
		c.mu.Unlock()
		return
	}
	c.stalled.Store(true)
	c.flush()
}

// flush writes the queue as one batch, and again while the replies of
// everything written came meanwhile; if calls queued during the write while
// replies are awaited, it arms the hold. Called with c.mu held and no write
// in flight; returns with c.mu released.
func (c *rdPipeConn) flush() {
	c.writing = true
	if c.held {
		c.held = false
		c.timer.Stop() // a fire already under way finds held false
	}
	for len(c.queue) > 0 && c.dead == nil {
		batch := c.queue
		c.queue, c.spare = c.spare, nil
		if len(c.sent) == 0 {
			c.setReadDeadline(batch[0].deadline) // the reader may be waiting with none
			c.sent = c.sentBuf[:0]
		}
		c.sent = append(c.sent, batch...)
		if len(c.sent) == len(batch) {
			c.sentBuf = c.sent // sent starts at its array's start: reusable once empty
		}
		if c.role == rdReaderNone {
			c.readerTurn()
		}
		c.mu.Unlock()
		err := c.write(batch)
		c.mu.Lock()
		clear(batch)
		c.spare = batch[:0] // the next batch's queue: appended to only after this write
		if err != nil {
			c.mu.Unlock()
			c.fail(err, false)
			c.mu.Lock()
		}
		if len(c.sent) > 0 {
			break
		}
	}
	if len(c.queue) > 0 && c.dead == nil {
		c.hold()
	}
	c.writing = false
	drained := c.closing && len(c.sent)+len(c.queue) == 0
	c.mu.Unlock()
	if drained { // the reader answered everything while this wrote
		c.fail(errRdPipeClosed, false)
	}
}

// write sends batch in one flush, bounded by io_timeout.
func (c *rdPipeConn) write(batch []*rdPipeCall) error {
	if dl := rdPipeRound(time.Now().Add(c.p.s.ioTimeout)); !dl.Equal(c.wdl) {
		c.wdl = dl
		c.raw.SetWriteDeadline(dl)
	}
	for _, call := range batch {
		if err := c.conn.Send(call.cmd, call.args...); err != nil {
			return err
		}
	}
	c.p.flushes.Add(1)
	return c.conn.Flush()
}

// rdPipeTick is the granularity of a pipelined connection's deadlines: a
// call's deadline is rounded up to it, so that the calls of one tick share
// one deadline and the socket's timer is reset once per tick, not per call
// (it cost 8% of faed's CPU at 64 clients). A timeout comes at most a tick late.
const rdPipeTick = 10 * time.Millisecond

// rdPipeRound rounds t up to a multiple of rdPipeTick; zero stays zero.
func rdPipeRound(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	if r := t.Truncate(rdPipeTick); !r.Equal(t) {
		return r.Add(rdPipeTick)
	}
	return t
}

// setReadDeadline moves the socket's read deadline to t rounded up, unless
// it is there already; c.mu held.
func (c *rdPipeConn) setReadDeadline(t time.Time) {
	if t = rdPipeRound(t); !t.Equal(c.rdl) {
		c.rdl = t
		c.raw.SetReadDeadline(t)
	}
}

// read is the reader goroutine: on each of its turns (readerTurn) it answers
// the calls of sent in order (readSent), until the connection fails.
func (c *rdPipeConn) read() {
	for range c.wake {
		c.p.turns.Add(1)
		if !c.readSent() {
			return
		}
	}
}

// readSent answers the calls of sent in order, writing the queue whenever
// sent has all its replies, until nothing is awaited (the turn ends: true)
// or the connection fails (false). The read deadline is the head call's.
func (c *rdPipeConn) readSent() bool {
	for {
		reply, err := c.conn.Receive()
		c.received++
		if err != nil && !rdErrorReply(err) {
			c.fail(err, true)
			return false
		}
		c.mu.Lock()
		if len(c.sent) == 0 { // a turn ends when sent is empty, but without peeking (rawc nil)
			c.mu.Unlock()
			c.fail(errors.New("a reply no command asked for"), false)
			return false
		}
		call := c.sent[0]
		c.sent[0] = nil
		c.sent = c.sent[1:]
		c.pending.Add(-1)
		call.reply, call.err = reply, err
		if len(c.sent) == 0 && c.stalled.Load() {
			c.stalled.Store(false) // all that was written is answered
		}
		if len(c.sent) == 0 && len(c.queue) > 0 && !c.writing && c.dead == nil {
			c.flush() // the batch in flight is answered: the next one goes out; unlocks
			call.answer()
			continue
		}
		idle := len(c.sent) == 0 && c.rawc != nil
		switch {
		case idle:
			c.role = rdReaderNone // the turn ends; the next write gives the next one
		case len(c.sent) > 0:
			c.setReadDeadline(c.sent[0].deadline)
		default: // no peeking: the turn goes on, waiting without a deadline (a reply nobody asked for fails the connection)
			c.setReadDeadline(time.Time{})
		}
		drained := c.closing && len(c.sent)+len(c.queue) == 0 && !c.writing
		c.mu.Unlock()
		call.answer()
		if drained {
			c.fail(errRdPipeClosed, false)
			return false
		}
		if idle {
			return true
		}
	}
}

// rdErrorReply reports whether err is Redis's error reply (redigo's
// redis.Error), not a failure of the connection.
func rdErrorReply(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}

// fail ends c once: the head call of sent gets err as its own when head (a
// read failed: timeout, reply too large, connection closed); every other call
// is lost (sent or not). The connection is closed and given back to the pool
// (which drops it) and its slot emptied.
func (c *rdPipeConn) fail(err error, head bool) {
	c.mu.Lock()
	if c.dead != nil {
		c.mu.Unlock()
		return
	}
	c.dead = err
	close(c.wake) // the reader goroutine ends (every send is under mu, while dead is nil)
	if c.held {
		c.held = false
		c.timer.Stop()
	}
	sent, queue := c.sent, c.queue
	c.sent, c.queue = nil, nil
	c.pending.Add(-int32(len(sent) + len(queue)))
	c.mu.Unlock()
	// After dead is set: conn installs no connection already dead, and
	// this empties the slot of one installed before.
	c.p.drop(c)
	c.rc.Conn.Close() // the socket: the reader stops, the pool drops the connection
	c.pc.Close()
	c.p.release()
	for i, call := range sent {
		call.err, call.lost, call.sent = err, !(head && i == 0), true
		call.answer()
	}
	for _, call := range queue {
		call.err, call.lost = err, true
		call.answer()
	}
}

// rdPipeNetConn is the socket under a pipelined redigo connection: it bounds
// each reply's bytes (rdReplyScan) and ignores redigo's deadlines, which
// rdPipeConn sets itself on the socket.
type rdPipeNetConn struct {
	net.Conn
	scan rdReplyScan // the reading goroutine's only (rdReaderRole), as is failed
	// failed is the scan's error once a reply went over the limit: Read
	// returned the whole replies before it, and returns failed from then on,
	// so that the call of that reply gets it, not the calls ahead.
	failed error
}

func (c *rdPipeNetConn) SetDeadline(time.Time) error      { return nil }
func (c *rdPipeNetConn) SetReadDeadline(time.Time) error  { return nil }
func (c *rdPipeNetConn) SetWriteDeadline(time.Time) error { return nil }

func (c *rdPipeNetConn) Read(b []byte) (int, error) {
	if c.failed != nil {
		return 0, c.failed
	}
	n, err := c.Conn.Read(b)
	if n > 0 {
		if e := c.scan.scan(b[:n]); e != nil {
			c.failed = e
			if c.scan.failAt == 0 {
				return 0, e
			}
			return c.scan.failAt, nil // the replies ahead, whole
		}
	}
	return n, err
}

// takes reports whether p runs a command: a pipe exists (nil p: pipeline
// off, or max_active too small), the command does not block (block 0) and
// is rdPipelinable (pipe, its rdCmd's).
func (p *rdPipe) takes(block time.Duration, pipe bool) bool {
	return p != nil && block == 0 && pipe
}
