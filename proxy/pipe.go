package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/pool"
)

// This file holds one pipelined connection to a peer: many calls in flight on
// one socket, their requests written in batches, their replies read in order
// by one reader goroutine. A faed session answers its calls one after another,
// in the order they came (engine/transport.go holds back a reply while the
// next request is already buffered and writes the batch in one write), so the
// replies come back in the order of the requests and each is matched to its
// call by position, checked by sequence id.

// maxSpareBytes is the largest write buffer a pipelined connection keeps for
// its next batch; a larger one (a burst) is left to the garbage collector.
const maxSpareBytes = 64 << 10

// maxYields bounds how many times the writer of a batch lets the other
// runnable goroutines run first (runtime.Gosched) while they keep adding
// requests to it.
const maxYields = 4

// The states of a pipeCall; whoever moves it from callWaiting owns its outcome.
const (
	callWaiting   int32 = iota // sent or queued, no reply yet
	callClaimed                // the reader is decoding its reply into its result
	callAbandoned              // its caller left (ctx ended): the reply is skipped
	callFailed                 // the connection broke first: err set by pipeConn.fail
)

// pipeCall is one call in flight on a pipeConn.
type pipeCall struct {
	seq      int32
	method   string
	result   thrift.TStruct // decoded into by the reader once it has claimed the call
	deadline time.Time      // when it was queued plus io_timeout
	state    atomic.Int32
	done     chan struct{} // buffered (1): signalled once kind and err are set (not for an abandoned call)
	kind     pool.Kind
	err      error
	// reusable: the reader answered it after removing it from pending, so
	// no goroutine but its caller holds it (pipeClient.release). A call
	// answered any other way (failed with its connection, or answered by
	// a reader that found the connection broken) may still be in the list
	// fail walks, or in the reader's hands, and is never reused.
	reusable bool
}

// errNotSent is what pipeConn.call returns when the connection had broken
// before the call was queued: the call was not sent, so it may go on another.
var errNotSent = errors.New("pipelined connection broken before the call was sent")

// pipeConn is one pipelined connection to a peer. Callers encode their
// request (message head with the connection's next sequence id, args) into
// the write buffer under mu; the first to find no write in flight becomes the
// writer: it lets the other runnable goroutines run first (runtime.Gosched,
// again while they keep adding requests, at most maxYields times: on an idle
// node it returns at once, so no latency is added and no timer is waited
// for), then writes everything queued in one write, again while more was
// queued meanwhile. One reader goroutine decodes the replies in order, each
// into its caller's result. A watchdog timer fails the connection when the
// oldest call has had no reply for io_timeout (no timer per call). Once
// broken (a timeout, an I/O error, a reply out of step, retirement) it is
// closed and never used again.
//
// The writer is a caller: if the peer stops reading and the socket's buffer
// fills, its write blocks until the watchdog closes the connection (at most
// io_timeout), whatever its ctx. A peer that closes an idle connection (its
// rpc.session_timeout) is seen by the reader at once and the connection
// dropped; a request written in the instant the peer closes fails with the
// others pending, as "may or may not have run".
type pipeConn struct {
	nc       net.Conn
	framed   bool
	binary   bool // the peer speaks the binary protocol (appendCall), not compact
	peer     string
	timeout  time.Duration
	iprot    thrift.TProtocol // the reader goroutine's only
	newOprot func(thrift.TTransport) thrift.TProtocol
	watchdog *time.Timer
	// timedOut (nil: none) is called, on a goroutine of its own, when the
	// watchdog failed the connection and no caller was left waiting to see
	// the timeout: the callers of the calls pending had all given up first
	// (impatient clients of a frozen peer), so that the peer's breaker
	// still counts the peer's failure once.
	timedOut func(error)
	dead     atomic.Bool // set once broken: no new call is queued
	readDone chan struct{}

	mu       sync.Mutex
	wb       appendTransport  // the requests queued and not yet written
	oprot    thrift.TProtocol // encodes into wb
	spare    []byte           // the last batch's buffer, for the next one
	writing  bool             // a caller is writing a batch
	seq      int32
	pending  []*pipeCall  // sent or queued, oldest first; their replies come in this order
	queued   atomic.Int32 // len(pending), read without mu (pipes.get)
	retiring bool         // close once pending is empty
	kind     pool.Kind    // why it broke, once dead
	err      error
}

// newPipeConn starts the reader and the watchdog of a pipelined connection
// over nc, in the peer's protocol and transport.
func newPipeConn(nc net.Conn, peer Peer, timeout time.Duration, bufferSize int, retiring bool, timedOut func(error)) *pipeConn {
	tconf := &thrift.TConfiguration{MaxMessageSize: maxReplyBytes, MaxFrameSize: maxReplyBytes,
		TBinaryStrictWrite: thrift.BoolPtr(true)}
	var rt thrift.TTransport = thrift.NewTBufferedTransport(sockTransport{nc}, bufferSize)
	if peer.Framed {
		rt = thrift.NewTFramedTransportConf(rt, tconf)
	}
	newProt := func(t thrift.TTransport) thrift.TProtocol { return thrift.NewTBinaryProtocolConf(t, tconf) }
	if peer.Protocol == "compact" {
		newProt = func(t thrift.TTransport) thrift.TProtocol { return thrift.NewTCompactProtocolConf(t, tconf) }
	}
	pc := &pipeConn{nc: nc, framed: peer.Framed, binary: peer.Protocol != "compact", peer: peer.Addr, timeout: timeout, iprot: newProt(rt),
		newOprot: newProt, retiring: retiring, readDone: make(chan struct{}), timedOut: timedOut}
	pc.mu.Lock()
	pc.oprot = newProt(&pc.wb)
	pc.watchdog = time.AfterFunc(timeout, pc.watch)
	pc.mu.Unlock()
	go pc.read()
	return pc
}

// call sends the request of c (its method, args) and waits for its reply,
// decoded into c.result, until ctx ends; c is unused (state callWaiting), its done channel buffered and empty. It returns KindOK (result filled in, or err the peer's
// TApplicationException), KindCanceled (ctx ended; the reply, when it comes,
// is skipped and the connection stays in use), or the kind and error the
// connection broke with (KindTimeout, KindServerFailure, KindClosed), which
// every call pending on it shares; or errNotSent if it was broken already.
func (pc *pipeConn) call(ctx context.Context, c *pipeCall, args thrift.TStruct) (pool.Kind, error) {
	method := c.method
	pc.mu.Lock()
	if pc.err != nil {
		pc.mu.Unlock()
		return pool.KindServerFailure, errNotSent
	}
	pc.seq++
	c.seq = pc.seq
	if err := pc.encodeLocked(ctx, c.seq, method, args); err != nil {
		pc.mu.Unlock()
		return pool.KindBadArgument, fmt.Errorf("encoding %s: %w", method, err)
	}
	c.deadline = time.Now().Add(pc.timeout)
	pc.pending = append(pc.pending, c)
	pc.queued.Store(int32(len(pc.pending)))
	if !pc.writing {
		pc.writing = true
		pc.flushLocked()
	} else {
		pc.mu.Unlock()
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		if c.state.CompareAndSwap(callWaiting, callAbandoned) {
			return pool.KindCanceled, context.Cause(ctx)
		}
		<-c.done // the reader is decoding its reply, or the connection broke: either ends within io_timeout
	}
	return c.kind, c.err
}

// encodeLocked appends the request (message head, args; a frame when the
// peer is framed) to wb. On failure wb is as it was.
func (pc *pipeConn) encodeLocked(ctx context.Context, seq int32, method string, args thrift.TStruct) error {
	mark := len(pc.wb.b)
	if pc.framed {
		pc.wb.b = append(pc.wb.b, 0, 0, 0, 0)
	}
	var err error
	ok := false
	if pc.binary {
		pc.wb.b, ok = appendCall(pc.wb.b, method, seq, args)
	}
	if !ok {
		err = pc.oprot.WriteMessageBegin(ctx, method, thrift.CALL, seq)
		if err == nil {
			err = args.Write(ctx, pc.oprot)
		}
		if err == nil {
			err = pc.oprot.WriteMessageEnd(ctx)
		}
	}
	if err != nil {
		pc.wb.b = pc.wb.b[:mark]
		pc.oprot = pc.newOprot(&pc.wb) // a compact protocol keeps field state
		return err
	}
	if pc.framed {
		n := len(pc.wb.b) - mark - 4
		pc.wb.b[mark], pc.wb.b[mark+1], pc.wb.b[mark+2], pc.wb.b[mark+3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	}
	return nil
}

// flushLocked writes the queued requests, one write per batch, until none is
// left; the caller holds mu and has set writing. It returns with mu released.
func (pc *pipeConn) flushLocked() {
	for range maxYields {
		n := len(pc.wb.b)
		pc.mu.Unlock()
		runtime.Gosched()
		pc.mu.Lock()
		if len(pc.wb.b) == n {
			break
		}
	}
	for pc.err == nil && len(pc.wb.b) > 0 {
		out := pc.wb.b
		pc.wb.b, pc.spare = pc.spare[:0], nil
		pc.mu.Unlock()
		_, err := pc.nc.Write(out)
		pc.mu.Lock()
		if cap(out) <= maxSpareBytes {
			pc.spare = out[:0]
		}
		if err != nil {
			pc.writing = false
			pc.mu.Unlock()
			pc.fail(pool.KindServerFailure, fmt.Errorf("write: %w", err))
			return
		}
	}
	pc.writing = false
	pc.mu.Unlock()
}

// read is the reader goroutine: it decodes the replies in order into their
// calls until the connection breaks.
func (pc *pipeConn) read() {
	defer close(pc.readDone)
	ctx := context.Background()
	for {
		name, typ, seq, err := pc.iprot.ReadMessageBegin(ctx)
		if err != nil {
			pc.fail(pc.readFailure(err))
			return
		}
		pc.mu.Lock()
		var c *pipeCall
		if len(pc.pending) > 0 {
			c = pc.pending[0]
		}
		pc.mu.Unlock()
		if c == nil || seq != c.seq || name != c.method {
			pc.fail(pool.KindServerFailure, fmt.Errorf("reply out of step: %s seqid %d, when %s", name, seq, expected(c)))
			return
		}
		claimed := c.state.CompareAndSwap(callWaiting, callClaimed)
		ae, err := pc.readReply(ctx, c, typ, claimed)
		if err != nil {
			kind, cause := pc.readFailure(err)
			if claimed {
				c.finish(kind, cause)
			}
			pc.fail(kind, cause)
			return
		}
		popped := pc.pop(c)
		if claimed { // its whole reply was read: it stands, even if the connection broke meanwhile
			// Out of pending (popped), nothing but its caller refers to it
			// any more: it may be reused. Otherwise fail's list of the
			// pending calls may still hold it.
			c.reusable = popped
			c.finish(pool.KindOK, ae)
		}
		if !popped {
			return
		}
		if ae != nil && ae.TypeId() != thrift.INTERNAL_ERROR && ae.TypeId() != thrift.UNKNOWN_METHOD {
			// The peer's engine ends the session after any other exception.
			pc.fail(pool.KindServerFailure, fmt.Errorf("the peer ended the session after its exception: %w", ae))
			return
		}
	}
}

// expected describes the call a reply was expected for.
func expected(c *pipeCall) string {
	if c == nil {
		return "no call was pending"
	}
	return fmt.Sprintf("the reply to %s seqid %d was next", c.method, c.seq)
}

// readReply reads the rest of a reply of type typ: into c.result when
// claimed, else skipped. It returns the peer's TApplicationException, if
// that was the reply, or the error of the stream (then it is out of step).
func (pc *pipeConn) readReply(ctx context.Context, c *pipeCall, typ thrift.TMessageType, claimed bool) (thrift.TApplicationException, error) {
	var ae thrift.TApplicationException
	var err error
	switch {
	case typ == thrift.EXCEPTION:
		ae = thrift.NewTApplicationException(thrift.UNKNOWN_APPLICATION_EXCEPTION, "")
		err = ae.Read(ctx, pc.iprot)
	case typ != thrift.REPLY:
		return nil, fmt.Errorf("reply out of step: message type %d to %s", typ, c.method)
	case claimed:
		err = c.result.Read(ctx, pc.iprot)
	default:
		err = pc.iprot.Skip(ctx, thrift.STRUCT)
	}
	if err == nil {
		err = pc.iprot.ReadMessageEnd(ctx)
	}
	return ae, err
}

// pop removes c, whose reply has been read, from the head of pending; false
// when the connection broke meanwhile. A retiring connection left with no
// call pending is closed.
func (pc *pipeConn) pop(c *pipeCall) bool {
	pc.mu.Lock()
	if pc.err != nil || len(pc.pending) == 0 || pc.pending[0] != c {
		pc.mu.Unlock()
		return false
	}
	pc.pending[0] = nil
	pc.pending = pc.pending[1:]
	pc.queued.Store(int32(len(pc.pending)))
	idle := pc.retiring && len(pc.pending) == 0
	pc.mu.Unlock()
	if idle {
		pc.fail(pool.KindClosed, errRetired)
	}
	return true
}

var errRetired = errors.New("peer connection closed: the peer left the cluster or the proxies closed")

// readFailure is the kind and error of the calls pending when a read failed:
// why the connection was failed, if it was (a timeout closes it), else a
// broken stream.
func (pc *pipeConn) readFailure(err error) (pool.Kind, error) {
	pc.mu.Lock()
	kind, cause := pc.kind, pc.err
	pc.mu.Unlock()
	if cause != nil {
		return kind, cause
	}
	if errors.Is(err, io.EOF) {
		err = fmt.Errorf("the peer closed the connection: %w", err)
	}
	return pool.KindServerFailure, mayHaveRun(err)
}

// mayHaveRun says what a pending call's caller must know: it was sent, and
// no reply came.
func mayHaveRun(err error) error {
	return fmt.Errorf("%w; the call may or may not have run on the peer (pipelined connection closed)", err)
}

// watch is the watchdog: it fails the connection once the oldest pending call
// has had no reply for io_timeout, else it sleeps until that call's deadline
// (or io_timeout when none is pending). It costs the calls nothing.
func (pc *pipeConn) watch() {
	pc.mu.Lock()
	if pc.err != nil {
		pc.mu.Unlock()
		return
	}
	next := pc.timeout
	if len(pc.pending) > 0 {
		if next = time.Until(pc.pending[0].deadline); next <= 0 {
			pc.mu.Unlock()
			err := mayHaveRun(fmt.Errorf("no reply within io_timeout %s: %w", pc.timeout, os.ErrDeadlineExceeded))
			if pc.fail(pool.KindTimeout, err) == 0 && pc.timedOut != nil {
				go pc.timedOut(err)
			}
			return
		}
	}
	pc.watchdog.Reset(next)
	pc.mu.Unlock()
}

// fail breaks the connection, once: it is closed, and every call pending on
// it that no one else has finished fails with kind and cause. It returns the
// number of calls it failed whose caller was still waiting.
func (pc *pipeConn) fail(kind pool.Kind, cause error) (failed int) {
	pc.mu.Lock()
	if pc.err != nil {
		pc.mu.Unlock()
		return 0
	}
	pc.dead.Store(true)
	pc.kind, pc.err = kind, cause
	pending := pc.pending
	pc.pending = nil
	pc.queued.Store(0)
	pc.wb.b = pc.wb.b[:0]
	pc.mu.Unlock()
	pc.watchdog.Stop()
	pc.nc.Close()
	for _, c := range pending {
		if c.state.CompareAndSwap(callWaiting, callFailed) {
			c.kind, c.err = kind, cause
			c.done <- struct{}{}
			failed++
		}
	}
	return failed
}

// finish sets the outcome of a claimed call and wakes its caller.
func (c *pipeCall) finish(kind pool.Kind, err error) {
	c.kind, c.err = kind, err
	c.done <- struct{}{}
}

// retire closes the connection once no call is pending on it (now, if none is).
func (pc *pipeConn) retire() {
	pc.mu.Lock()
	pc.retiring = true
	idle := len(pc.pending) == 0
	pc.mu.Unlock()
	if idle {
		pc.fail(pool.KindClosed, errRetired)
	}
}

// inFlight is the number of calls sent or queued and not yet answered.
func (pc *pipeConn) inFlight() int {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return len(pc.pending)
}

// appendTransport is the write side of a pipeConn: the protocol encodes
// requests by appending to b. Reading is not supported.
type appendTransport struct{ b []byte }

func (t *appendTransport) Write(p []byte) (int, error) { t.b = append(t.b, p...); return len(p), nil }
func (t *appendTransport) WriteByte(c byte) error      { t.b = append(t.b, c); return nil }
func (t *appendTransport) WriteString(s string) (int, error) {
	t.b = append(t.b, s...)
	return len(s), nil
}
func (t *appendTransport) Read([]byte) (int, error)    { return 0, io.EOF }
func (t *appendTransport) ReadByte() (byte, error)     { return 0, io.EOF }
func (t *appendTransport) Flush(context.Context) error { return nil }
func (t *appendTransport) RemainingBytes() uint64      { return 0 }
func (t *appendTransport) Open() error                 { return nil }
func (t *appendTransport) IsOpen() bool                { return true }
func (t *appendTransport) Close() error                { return nil }
