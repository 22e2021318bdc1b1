package engine

import (
	"errors"
	"net"
	"os"
	"time"
)

// Lazy deadlines. A session's transport made with its connection's
// syscall.RawConn reads and writes the socket itself (non-blocking, as
// net.Conn does) and arms the poller's deadline of a read or a write only
// when that read or write must wait: the deadline a wait would have is kept
// (rdl, wdl: the idle wait's, the request's io_timeout, the reply's
// io_timeout) and set on the connection at the first EAGAIN. An io_timeout
// counts from that first wait (rdlRel, wdlRel), not from the request's first
// byte or the reply's first write, a few microseconds sooner: so a call that
// never waits reads the clock only for its idle wait (time.Now is 70 ns on
// the bench machine, and a call made three reads of it). A request that is
// all there when its call begins and a
// reply that fits the socket's send buffer, nearly all of them, thus arm no
// timer: faed armed three per call before (idle wait, request, reply), some
// 9% of its CPU per noop (pprof of make bench scenario 1 at c=64,
// runtime_pollSetDeadline). No wait is ever longer than before: a read or
// write that waits always waits under its own deadline.
//
// A deadline left on the connection by an earlier phase (the idle wait's,
// WatchClient's deadline in the past that woke its watch, Shutdown's drain
// grace) may have passed when the next read or write begins: the poller then
// refuses the read before trying it, and the transport arms its own deadline
// and reads again.

// sockRead reads into p from the connection (see Lazy deadlines).
func (t *connTransport) sockRead(p []byte) (int, error) {
	if t.raw == nil {
		return t.conn.Read(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	t.rp = p
	defer func() { t.rp = nil }()
	for {
		err := t.raw.Read(t.readFn)
		if err == nil {
			return t.rn, t.rerr
		}
		if !t.rdlSet && errors.Is(err, os.ErrDeadlineExceeded) {
			t.armRead() // an earlier phase's deadline: read again under this one's
			continue
		}
		return 0, renameOp(err, "read")
	}
}

// sockWrite writes p to the connection (see Lazy deadlines).
func (t *connTransport) sockWrite(p []byte) (int, error) {
	if t.raw == nil {
		return t.conn.Write(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	t.wp, t.wn, t.werr = p, 0, nil
	defer func() { t.wp = nil }()
	for {
		err := t.raw.Write(t.writeFn)
		if err == nil {
			return t.wn, t.werr
		}
		if !t.wdlSet && errors.Is(err, os.ErrDeadlineExceeded) {
			t.armWrite()
			continue
		}
		return t.wn, renameOp(err, "write")
	}
}

// sockWritev writes iov, the reply's buffers, in writev(2) calls on the
// connection (see Lazy deadlines): one, unless the socket takes part of it.
func (t *connTransport) sockWritev() error {
	all := t.setIovecs()
	defer func() { clear(all); t.wiov = all[:0] }() // no pointers into the reply kept
	t.werr = nil
	for {
		err := t.raw.Write(t.writevFn)
		if err == nil {
			return t.werr
		}
		if !t.wdlSet && errors.Is(err, os.ErrDeadlineExceeded) {
			t.armWrite()
			continue
		}
		return renameOp(err, "write")
	}
}

// wantRead makes d the deadline of the reads of the call that begins; it is
// armed when a read must wait (the idle wait's: session.waitCall).
func (t *connTransport) wantRead(d time.Time) {
	if t.raw == nil {
		t.conn.SetReadDeadline(d)
		return
	}
	t.rdl, t.rdlRel, t.rdlSet = d, false, false
}

// wantWrite makes d the deadline of the writes of the reply that begins.
func (t *connTransport) wantWrite(d time.Time) {
	if t.raw == nil {
		t.conn.SetWriteDeadline(d)
		return
	}
	t.wdl, t.wdlRel, t.wdlSet = d, false, false
}

// armRead sets rdl on the connection; in the idle wait, the session
// computes it (session.armIdle).
func (t *connTransport) armRead() {
	switch {
	case t.sess == nil:
		if t.rdlRel {
			t.rdl, t.rdlRel = time.Now().Add(t.ioTimeout), false
		}
		t.conn.SetReadDeadline(t.rdl)
	case t.sess.idle: // idle is written only by this goroutine
		t.sess.armIdle()
	default:
		if t.rdlRel {
			t.rdl, t.rdlRel = time.Now().Add(t.ioTimeout), false
		}
		t.conn.SetReadDeadline(t.rdl)
		t.sess.armedWait = time.Time{}
	}
	t.rdlSet = true
}

// armWrite sets wdl on the connection.
func (t *connTransport) armWrite() {
	if t.wdlRel {
		t.wdl, t.wdlRel = time.Now().Add(t.ioTimeout), false
	}
	t.conn.SetWriteDeadline(t.wdl)
	t.wdlSet = true
}

// renameOp gives an error of the RawConn ("raw-read") the operation net.Conn
// names ("read"), so that log lines read as before.
func renameOp(err error, op string) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op != op {
		c := *oe
		c.Op = op
		return &c
	}
	return err
}

// opError wraps a system call's error as net.Conn does.
func (t *connTransport) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: t.conn.LocalAddr().Network(), Source: t.conn.LocalAddr(), Addr: t.conn.RemoteAddr(),
		Err: os.NewSyscallError(op, err)}
}
