package engine

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
)

// connTransport is the thrift.TTransport of one session: a buffered net.Conn that
// enforces the per-call limits. The session calls beginCall when a request's first
// byte has arrived; from then on reads are bounded by maxBytes, and the reply's
// first write arms the write deadline (io_timeout covers reading the request and
// writing the reply, not the servant's work in between).
//
// With the framed transport, a read never crosses the end of the current frame:
// thrift.TFramedTransport reads through a bufio.Reader of its own, which would
// otherwise take the start of a pipelined next request out of br, where the
// session (waitCall) and WatchClient look for it.
type connTransport struct {
	conn     net.Conn
	br       *bufio.Reader
	wbuf     []byte  // the reply being written: small[:n], or a pooled batch buffer while a reply outgrows small
	small    []byte  // the session's own write buffer, buffer_size bytes (nil while idle: see idleBuffers)
	smallBox *[]byte // the pool's box of small, put back with it (a new box was an allocation per release)
	// proto: the protocol objects of a binary unframed session over t, made
	// by its first session and kept with t when it is recycled (nil: none yet).
	proto     *sessionProtocol
	batch     *[]byte // from batchPool while wbuf is it, else nil
	ioTimeout time.Duration
	maxBytes  int
	framed    bool

	read      int   // bytes read for the current call
	frameLeft int64 // framed: bytes of the current frame (4-byte header included) not yet read
	writing   bool  // the reply of the current call has started
	// deferred: wbuf holds replies whose Flush was held back because the next
	// request was already read (a client pipelining its calls, as a peer's
	// pipelined proxy connection does): they go out with the next reply that
	// is not followed by one, in one write, or before br next reads the
	// connection, or when the session ends.
	deferred bool
	bufs     *idleBuffers // where br and small go while the session is idle; nil: kept

	vectored bool        // conn writes net.Buffers in one writev (see writeRef)
	refs     []replyRef  // values of the reply being written, by reference
	iov      net.Buffers // writeVectored's, kept for the next reply
	iovOut   net.Buffers // the part of iov not yet written

	// Lazy deadlines (deadline.go), when raw is set: the deadline of the
	// reads (rdl) and of the writes (wdl) of the current phase, and whether
	// the connection has it (armed at the first read or write that waits).
	raw             syscall.RawConn
	sess            *session // the session whose idle wait arms rdl under its mu; nil: none
	rdl, wdl        time.Time
	rdlSet, wdlSet  bool
	one             [1]byte            // WriteByte's
	rdlRel, wdlRel  bool               // rdl, wdl are io_timeout from when they are armed (not read from the clock before)
	readFn, writeFn func(uintptr) bool // readNow, writeNow, bound once
	writevFn        func(uintptr) bool // writevNow, bound once
	wiov            iovecs             // writevNow's iovecs of iov, what is left of them
	rp, wp          []byte             // the read and write in progress
	rn, wn          int
	rerr, werr      error
}

// errMessageTooLarge ends a session whose request is longer than max_message_bytes.
type errMessageTooLarge struct{ limit int }

func (e errMessageTooLarge) Error() string {
	return fmt.Sprintf("message exceeds max_message_bytes (%d bytes)", e.limit)
}

func newConnTransport(conn net.Conn, bufSize int, ioTimeout time.Duration, maxBytes int, framed bool) *connTransport {
	t := &connTransport{
		conn:      conn,
		small:     make([]byte, 0, bufSize),
		ioTimeout: ioTimeout,
		maxBytes:  maxBytes,
		framed:    framed,
		vectored:  vectored(conn),
	}
	t.br = bufio.NewReaderSize(flushFirst{t}, bufSize)
	t.wbuf = t.small
	return t
}

// newPooledConnTransport is newConnTransport with its buffers taken from bufs
// (buffer_size bytes each), and given back there while the session is idle,
// and lazy deadlines (deadline.go) on raw, conn's RawConn (nil: none).
//
// The transport itself comes from bufs.kits when an earlier session left one
// there (recycle), with the protocol objects bound to it (proto) and its
// bound read and write funcs: 8 of the 15 allocations of faed's side of a
// php-fpm session of one call (BenchmarkSession -benchmem), made once per
// kit instead of once per session.
func newPooledConnTransport(conn net.Conn, raw syscall.RawConn, bufs *idleBuffers, ioTimeout time.Duration, maxBytes int, framed bool) *connTransport {
	t, _ := bufs.kits.Get().(*connTransport)
	if t == nil {
		t = new(connTransport)
	}
	proto, readFn, writeFn, writevFn := t.proto, t.readFn, t.writeFn, t.writevFn
	*t = connTransport{conn: conn, ioTimeout: ioTimeout, maxBytes: maxBytes, framed: framed, bufs: bufs, vectored: vectored(conn), proto: proto}
	if raw != nil && watchSupported {
		if readFn == nil {
			readFn, writeFn, writevFn = t.readNow, t.writeNow, t.writevNow
		}
		t.raw, t.readFn, t.writeFn, t.writevFn = raw, readFn, writeFn, writevFn
	}
	t.acquire()
	t.smallBuffer()
	return t
}

// flushFirst is what a session's br reads from: the connection, after the
// replies held back by Flush (see deferred) have been written, so that the
// session never waits for its client with replies the client may be waiting for.
type flushFirst struct{ t *connTransport }

func (f flushFirst) Read(p []byte) (int, error) {
	if f.t.deferred {
		if err := f.t.writeOut(); err != nil {
			return 0, err
		}
	}
	return f.t.sockRead(p)
}

// batchReplyBytes is the largest reply written with one write syscall: a
// reply that outgrows buffer_size moves, up to this size, into a buffer of
// batchPool and goes out at Flush in one write, instead of one write per
// buffer-full (a 10 KB lc_get reply took three with a 4 KiB buffer; each
// write on loopback costs a few µs of faed's CPU, measured by
// BenchmarkReplyWrite and make bench scenario 3). Longer replies stream out
// in 64 KiB writes. Memory: one batch buffer per reply being written, back
// in the pool at Flush.
const batchReplyBytes = 64 << 10

var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, batchReplyBytes); return &b }}

// beginCall resets the per-call state and sets the read deadline for the request:
// io_timeout from now, or none when io_timeout is 0. Either way it replaces the
// deadline of the idle wait (session_timeout or the drain grace), which must not
// cut a request that has started (REVIEW §2.B1). With lazy deadlines it is
// armed only if a read of the request has to wait.
func (t *connTransport) beginCall() {
	t.read, t.writing = 0, false
	if t.raw != nil {
		t.rdl, t.rdlRel, t.rdlSet = time.Time{}, t.ioTimeout > 0, false
		return
	}
	var deadline time.Time
	if t.ioTimeout > 0 {
		deadline = time.Now().Add(t.ioTimeout)
	}
	t.wantRead(deadline)
}

// limit shortens p to what the current call may still read: at most maxBytes in
// all and, framed, no further than the end of the current frame.
func (t *connTransport) limit(p []byte) ([]byte, error) {
	if left := t.maxBytes - t.read; len(p) > left {
		if left <= 0 {
			return nil, thrift.NewTTransportExceptionFromError(errMessageTooLarge{t.maxBytes})
		}
		p = p[:left]
	}
	if !t.framed {
		return p, nil
	}
	if err := t.nextFrame(); err != nil {
		return nil, err
	}
	if int64(len(p)) > t.frameLeft {
		p = p[:t.frameLeft]
	}
	return p, nil
}

// nextFrame reads the length of the next frame once the current one is read.
func (t *connTransport) nextFrame() error {
	if t.frameLeft > 0 {
		return nil
	}
	head, err := t.br.Peek(4)
	if err != nil {
		return thrift.NewTTransportExceptionFromError(err)
	}
	t.frameLeft = 4 + int64(binary.BigEndian.Uint32(head))
	return nil
}

// checkUnversionedHead rejects at once an unframed binary-protocol request that
// starts with an unversioned method-name length over maxBytes (such as an HTTP
// request sent to the RPC port: "GET " reads as 1.2 GB), instead of waiting for
// those bytes until io_timeout. Versioned heads (top bit set) pass.
func (t *connTransport) checkUnversionedHead() error {
	head, err := t.br.Peek(4)
	if err != nil {
		return nil // the protocol reports it
	}
	if n := int32(binary.BigEndian.Uint32(head)); n >= 0 && int(n) > t.maxBytes {
		return thrift.NewTTransportExceptionFromError(errMessageTooLarge{t.maxBytes})
	}
	return nil
}

// buffered returns the next n bytes of the request when they are in br and
// within the call's maxBytes, without consuming them; nil otherwise (and
// always when framed, whose frame accounting Read keeps).
func (t *connTransport) buffered(n int) []byte {
	if t.framed || t.br.Buffered() < n || t.read+n > t.maxBytes {
		return nil
	}
	b, _ := t.br.Peek(n)
	return b
}

// consume takes n bytes that buffered returned.
func (t *connTransport) consume(n int) {
	t.br.Discard(n)
	t.read += n
}

func (t *connTransport) Read(p []byte) (int, error) {
	p, err := t.limit(p)
	if err != nil {
		return 0, err
	}
	n, err := t.br.Read(p)
	t.read += n
	if t.framed {
		t.frameLeft -= int64(n)
	}
	if err != nil {
		return n, thrift.NewTTransportExceptionFromError(err)
	}
	return n, nil
}

func (t *connTransport) Write(p []byte) (int, error) {
	if t.small == nil {
		t.smallBuffer()
	}
	if !t.writing {
		t.writing = true
		if t.raw != nil {
			t.wdl, t.wdlRel, t.wdlSet = time.Time{}, t.ioTimeout > 0, false
		} else if t.ioTimeout > 0 {
			t.wantWrite(time.Now().Add(t.ioTimeout))
		}
	}
	if t.writeRef(p) {
		return len(p), nil
	}
	if len(t.wbuf)+len(p) > cap(t.wbuf) {
		if err := t.makeRoom(len(p)); err != nil {
			return 0, err
		}
		if len(p) > cap(t.wbuf) { // wbuf is empty: p goes out as it is
			n, err := t.sockWrite(p)
			if err != nil {
				return n, thrift.NewTTransportExceptionFromError(err)
			}
			return n, nil
		}
	}
	t.wbuf = append(t.wbuf, p...)
	return len(p), nil
}

// makeRoom makes room for n more bytes of the reply: in a batch buffer while
// the reply stays within batchReplyBytes, else by writing out what is buffered.
func (t *connTransport) makeRoom(n int) error {
	if t.batch == nil && len(t.wbuf)+n <= batchReplyBytes {
		t.batch = batchPool.Get().(*[]byte)
		t.wbuf = append((*t.batch)[:0], t.wbuf...)
		return nil
	}
	return t.writeOut()
}

// writeOut writes what is buffered and empties the buffer (back to the
// session's own, the batch buffer returned to its pool).
func (t *connTransport) writeOut() error {
	var err error
	if len(t.refs) > 0 {
		err = t.writeVectored()
	} else if len(t.wbuf) > 0 {
		_, err = t.sockWrite(t.wbuf)
	}
	if t.batch != nil {
		*t.batch = t.wbuf[:0]
		batchPool.Put(t.batch)
		t.batch = nil
	}
	t.wbuf = t.small[:0]
	t.deferred = false
	if err != nil {
		return thrift.NewTTransportExceptionFromError(err)
	}
	return nil
}

// Flush writes the reply out, unless the next request is already in br and
// the reply still fits the buffer it is in and holds no value by reference:
// it is then held back (deferred) and goes out with the replies after it, one
// write for a pipelined batch.
func (t *connTransport) Flush(context.Context) error {
	if len(t.refs) == 0 && t.br.Buffered() > 0 && len(t.wbuf) < cap(t.wbuf) {
		t.deferred = true
		return nil
	}
	return t.writeOut()
}

// flushDeferred writes replies held back by Flush; the session calls it when
// it ends, so that a client pipelining calls gets every answer given.
func (t *connTransport) flushDeferred() {
	if t.deferred {
		t.writeOut()
	}
}

func (t *connTransport) ReadByte() (byte, error) {
	if t.read >= t.maxBytes {
		return 0, thrift.NewTTransportExceptionFromError(errMessageTooLarge{t.maxBytes})
	}
	if t.framed {
		if err := t.nextFrame(); err != nil {
			return 0, err
		}
		t.frameLeft--
	}
	b, err := t.br.ReadByte()
	if err != nil {
		return 0, thrift.NewTTransportExceptionFromError(err)
	}
	t.read++
	return b, nil
}

// WriteByte writes c: the binary protocol's field heads and stops, one
// call a field, so it appends straight to the reply buffer when there is
// room, and otherwise writes through one, a field of t's: a []byte{c} of its
// own escaped to the heap, an allocation a field.
func (t *connTransport) WriteByte(c byte) error {
	if t.writing && len(t.wbuf) < cap(t.wbuf) {
		t.wbuf = append(t.wbuf, c)
		return nil
	}
	t.one[0] = c
	_, err := t.Write(t.one[:])
	return err
}

func (t *connTransport) WriteString(s string) (int, error) {
	if t.writing && t.writeRefString(s) {
		return len(s), nil
	}
	if !t.writing || len(t.wbuf)+len(s) > cap(t.wbuf) {
		return t.Write([]byte(s))
	}
	t.wbuf = append(t.wbuf, s...)
	return len(s), nil
}

func (t *connTransport) Close() error           { return t.conn.Close() }
func (t *connTransport) Open() error            { return nil }
func (t *connTransport) IsOpen() bool           { return true }
func (t *connTransport) RemainingBytes() uint64 { return ^uint64(0) }
