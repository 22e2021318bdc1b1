package engine

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
)

// session is one client connection carrying calls one after another.
type session struct {
	srv   *Server
	conn  net.Conn
	addr  netip.Addr // the client's IP (ClientAddr); zero for a unix-socket client
	trans *connTransport
	// ctx is the ctx of every call of the session (one per session, not per call,
	// so a call pays nothing for it); it carries the session for WatchClient and is
	// cancelled with a cause when the session ends or Close closes it.
	ctx    context.Context
	cancel context.CancelCauseFunc

	mu   sync.Mutex // guards idle and the read deadline while idle
	idle bool
	// waitEnd and idleEnd are the deadlines of the idle wait (idleTimes);
	// written by the session goroutine only, under mu.
	waitEnd, idleEnd time.Time
	// armedWait is the short wait's deadline while the connection has it
	// (armIdle); zero once another read deadline replaced it. Session
	// goroutine only.
	armedWait time.Time
	calls     int64
	watch     *watch          // the WatchClient watch of the running call; session goroutine only
	raw       syscall.RawConn // conn's, for WatchClient; set on first use
	gone      atomic.Bool     // WatchClient saw the client leave during a call
}

// sessionKey is the ctx key under which a session's ctx carries the session.
type sessionKey struct{}

// newSession registers conn; nil when the server is shutting down.
func (s *Server) newSession(conn net.Conn) *session {
	sess := &session{srv: s, conn: conn, addr: clientAddr(conn)}
	sess.ctx, sess.cancel = context.WithCancelCause(context.WithValue(context.Background(), sessionKey{}, sess))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown.Load() {
		conn.Close()
		return nil
	}
	s.sessions[sess] = struct{}{}
	s.Stats.SessionsActive.Add(1)
	s.Stats.Sessions.Add(1)
	return sess
}

// remoteName is conn's client for log lines: its address, or "unix:" and the
// socket's path for an unnamed unix-socket client.
func remoteName(conn net.Conn) string {
	remote := conn.RemoteAddr().String()
	if remote == "" || remote == "@" {
		remote = "unix:" + conn.LocalAddr().String()
	}
	return remote
}

// remote is the session's client for log lines (remoteName), made only when
// a line is logged.
func (sess *session) remote() string { return remoteName(sess.conn) }

// close cancels the session's ctx with cause and closes its connection, which
// ends a read or write in progress.
func (sess *session) close(cause error) {
	sess.cancel(cause)
	sess.conn.Close()
}

// drain makes an idle session stop waiting for its next call after DrainIdleGrace.
func (sess *session) drain() {
	sess.mu.Lock()
	if sess.idle {
		sess.conn.SetReadDeadline(time.Now().Add(DrainIdleGrace))
	}
	sess.mu.Unlock()
}

// waitCall waits for the first byte of the next call, bounded by session_timeout
// (or DrainIdleGrace during Shutdown). With lazy deadlines (deadline.go) the
// wait's deadlines are computed and armed only if its first read must wait
// (armIdle).
func (sess *session) waitCall(t *connTransport) error {
	if t.br.Buffered() > 0 {
		return nil // a pipelined call, read already: no idle wait
	}
	sess.mu.Lock()
	sess.idle = true
	if t.raw != nil {
		t.rdlSet = false
	} else {
		sess.idleTimes(time.Now())
		sess.conn.SetReadDeadline(sess.waitEnd)
	}
	sess.mu.Unlock()

	_, err := t.br.Peek(1)
	if errors.Is(err, os.ErrDeadlineExceeded) && !sess.waitEnd.Equal(sess.idleEnd) {
		err = sess.waitIdle(t, sess.idleEnd)
	}

	sess.mu.Lock()
	sess.idle = false
	sess.mu.Unlock()
	return err
}

// idleTimes sets the deadlines of an idle wait beginning at now: idleEnd,
// the whole wait's (idleDeadline), and waitEnd, the first, short wait's
// (IdleRelease, when the transport's buffers are pooled). Called with mu held.
func (sess *session) idleTimes(now time.Time) {
	sess.idleEnd = sess.idleDeadline(now)
	sess.waitEnd = sess.idleEnd
	if sess.trans.bufs != nil { // first a short wait with the buffers (the next call is usually there by then)
		if soon := now.Add(IdleRelease); sess.waitEnd.IsZero() || soon.Before(sess.waitEnd) {
			sess.waitEnd = soon
		}
	}
}

// armIdle computes the idle wait's deadlines and sets the first on the
// connection, when a read of the wait must wait (lazy deadlines): under mu,
// so that it never overwrites the grace Shutdown's drain sets (once Shutdown
// has begun, idleDeadline has the grace). A session whose next call is
// there already pays for neither. The short wait's deadline (IdleRelease)
// stays armed for the waits that begin at least IdleRelease/2 before it
// (armedWait), so that a session whose calls come that close together arms
// no timer per call; session_timeout and the drain grace are armed exactly.
func (sess *session) armIdle() {
	sess.mu.Lock()
	now := time.Now()
	sess.idleTimes(now)
	short := !sess.waitEnd.Equal(sess.idleEnd) && !sess.srv.shutdown.Load()
	if short && sess.armedWait.Sub(now) >= IdleRelease/2 {
		sess.waitEnd = sess.armedWait // on the connection already, sooner than idleEnd
	} else {
		sess.conn.SetReadDeadline(sess.waitEnd)
		sess.armedWait = time.Time{}
		if short {
			sess.armedWait = sess.waitEnd
		}
	}
	sess.trans.rdl, sess.trans.rdlRel = sess.waitEnd, false
	sess.mu.Unlock()
}

// IdleRelease is how long a session waits for its next call holding its read
// and reply buffers; past it, it gives them back (idleBuffers) and waits
// without them. A session whose calls come closer together than this never
// pays for the buffer-less wait (a peek system call more per call). With
// lazy deadlines the wait is IdleRelease/2 to IdleRelease (see armIdle).
const IdleRelease = 50 * time.Millisecond

// idleDeadline is the read deadline of a wait for the next call starting at
// now: session_timeout, or sooner the drain grace once Shutdown has begun;
// zero for none. Called with mu held.
func (sess *session) idleDeadline(now time.Time) time.Time {
	var deadline time.Time
	if t := sess.srv.Config.SessionTimeout; t > 0 {
		deadline = now.Add(t)
	}
	if sess.srv.shutdown.Load() {
		if d := now.Add(DrainIdleGrace); deadline.IsZero() || d.Before(deadline) {
			deadline = d
		}
	}
	return deadline
}

// waitIdle goes on waiting for the next call after the short wait, until
// deadline (the wait's own, set again: Shutdown may have begun meanwhile):
// its buffers given back when nothing is left in them, taking a read buffer
// again when bytes or the end of the stream come.
func (sess *session) waitIdle(t *connTransport, deadline time.Time) error {
	sess.mu.Lock()
	if sess.srv.shutdown.Load() {
		deadline = sess.idleDeadline(time.Now())
	}
	sess.conn.SetReadDeadline(deadline) // armed now: waitReadable waits under it
	t.rdl, t.rdlRel, t.rdlSet = deadline, false, true
	sess.armedWait = time.Time{}
	sess.mu.Unlock()
	if t.release() {
		err := waitReadable(sess.rawConn())
		t.acquire()
		if err != nil {
			return err
		}
	}
	_, err := t.br.Peek(1)
	return err
}

func (s *Server) serveSession(sess *session) {
	start := time.Now()
	var reason string
	defer func() {
		if r := recover(); r != nil {
			s.Stats.EndPanic.Add(1)
			reason = "panic"
			s.callLogger().Error("session panic", "remote", sess.remote(), "panic", r, "stack", string(debug.Stack()))
		}
		sess.stopWatch()
		released := false
		if sess.trans != nil {
			sess.trans.flushDeferred()
			released = sess.trans.release() // back to the pool for the next session (unless bytes are left in them)
		}
		sess.close(endCause(reason))
		s.mu.Lock()
		delete(s.sessions, sess)
		s.mu.Unlock()
		if released && reason != "panic" { // a panic may have left the protocol objects mid-message
			sess.trans.recycle()
		}
		if s.Logger.Enabled(context.Background(), slog.LevelDebug) { // no boxed arguments unless logged
			s.Logger.Debug("session end", "remote", sess.remote(), "calls", sess.calls, "elapsed", time.Since(start), "reason", reason)
		}
		<-s.sem
		s.Stats.SessionsActive.Add(-1) // last: Wait returns once every session got here
	}()

	cfg := &s.Config
	var t *connTransport
	if watchSupported && sess.rawConn() != nil { // waitReadable can wait without a buffer
		t = newPooledConnTransport(sess.conn, sess.rawConn(), s.idleBufs, cfg.IOTimeout, cfg.MaxMessageBytes, s.wire.framed)
	} else {
		t = newConnTransport(sess.conn, cfg.BufferSize, cfg.IOTimeout, cfg.MaxMessageBytes, s.wire.framed)
	}
	sess.trans = t
	t.sess = sess
	var sp sessionProtocol
	if !s.auto {
		sp = s.newSessionProtocol(t, s.wire)
	}
	for first := true; ; first = false {
		if err := sess.waitCall(t); err != nil {
			reason = s.endIdle(sess, err)
			return
		}
		t.beginCall()
		if first {
			if reason = s.firstCall(sess, t, &sp); reason != "" {
				return
			}
		}
		if sp.checkHead {
			if err := t.checkUnversionedHead(); err != nil {
				reason = s.endCall(sess, err)
				return
			}
		}
		sp.out.counted, sp.out.exception = false, false
		ok, err := s.Processor.Process(sess.ctx, sp.in, sp.out)
		sess.stopWatch() // in case the servant did not
		if !ok && !isUnknownMethod(err) {
			reason = s.endCall(sess, err)
			return
		}
		s.countCall(sess, err, sp.out.counted)
	}
}

// sessionProtocol is a session's protocol objects, made once per session:
// at its start, or with rpc.protocol auto once its first bytes are seen.
type sessionProtocol struct {
	in        thrift.TProtocol
	out       *replyCounter // in, counting replies
	checkHead bool          // buffered binary: checkUnversionedHead before each call
}

// newSessionProtocol makes the protocol objects of a session in wire w over t.
func (s *Server) newSessionProtocol(t *connTransport, w wire) sessionProtocol {
	t.framed = w.framed
	// Binary unframed over a pooled transport: the objects are bound to t
	// only (the binary protocol and exactBinary keep no state between
	// messages), so they are kept with t for its next sessions (recycle).
	keep := !w.framed && !w.compact && t.bufs != nil
	if keep && t.proto != nil {
		return *t.proto
	}
	var trans thrift.TTransport = t
	if w.framed {
		trans = thrift.NewTFramedTransportConf(t, s.tconf)
	}
	in := withExactBinary(s.protocols[w.index()].GetProtocol(trans), s.Config.MaxMessageBytes, s.methodNames)
	sp := sessionProtocol{in: in, out: &replyCounter{TProtocol: in, stats: &s.Stats}, checkHead: !w.framed && !w.compact}
	if keep {
		t.proto = &sp
	}
	return sp
}

// firstCall looks at the first bytes of a session, once its first call has
// begun: HTTP or TLS bytes end it, and with rpc.protocol auto they choose its
// protocol objects (sp), or end it when they show none (detect.go). It
// returns the reason the session ends, or "".
func (s *Server) firstCall(sess *session, t *connTransport, sp *sessionProtocol) string {
	if kind := t.sniffForeign(); kind != "" {
		s.Stats.EndRefused.Add(1)
		s.countForeign(kind, sess.remote())
		return kind
	}
	if !s.auto {
		return ""
	}
	w, err := detectWire(t.br)
	switch {
	case errors.Is(err, errUndetected):
		s.Stats.EndRefused.Add(1)
		s.refuseUndetected(sess.conn, t.br, sess.remote())
		return "protocol undetected"
	case err != nil:
		return s.endCall(sess, err)
	}
	*sp = s.newSessionProtocol(t, w)
	return ""
}

// replyCounter is a session's output protocol: it counts the call in Stats
// (Calls, and CallErrors when the reply is a TApplicationException) when its
// reply is flushed, before the client can read it, so that a client that has
// its answer finds it counted. One per session; not safe for concurrent use.
type replyCounter struct {
	thrift.TProtocol
	stats     *Stats
	exception bool // the reply being written is an EXCEPTION message
	counted   bool // this call's reply was flushed and counted
}

func (p *replyCounter) WriteMessageBegin(ctx context.Context, name string, typeID thrift.TMessageType, seqID int32) error {
	p.exception = typeID == thrift.EXCEPTION
	return p.TProtocol.WriteMessageBegin(ctx, name, typeID, seqID)
}

func (p *replyCounter) Flush(ctx context.Context) error {
	if !p.counted {
		p.counted = true
		p.stats.Calls.Add(1)
		if p.exception {
			p.stats.CallErrors.Add(1)
		}
	}
	return p.TProtocol.Flush(ctx)
}

// countCall counts a call that was answered, unless its reply's flush
// counted it already (counted: see replyCounter), and records and logs its
// failure; an unknown method is answered with
// UNKNOWN_METHOD and its session goes on.
func (s *Server) countCall(sess *session, err error, counted bool) {
	if !counted {
		s.Stats.Calls.Add(1)
	}
	sess.calls++
	if err == nil || isDeclared(err) {
		return
	}
	if !counted {
		s.Stats.CallErrors.Add(1)
	}
	s.Stats.Failures.Add(err.Error())
	switch {
	case sess.gone.Load(): // the client left during the call: counted in ClientGone, nothing to log
	case isUnknownMethod(err):
		s.callLogger().Warn("unknown method", "remote", sess.remote(), "err", err)
	default:
		s.callLogger().Warn("call failed", "remote", sess.remote(), "err", err)
	}
}

// endCause is the cause a session's ctx is cancelled with when it ends for reason
// (Close has cancelled it with ErrShutdown before, which stays the cause).
func endCause(reason string) error {
	switch reason {
	case "eof", "client gone":
		return ErrClientGone
	case "drained", "closed":
		return ErrShutdown
	}
	return errSessionEnded
}

// errSessionEnded is the cause of a session ctx cancelled because the session
// ended for a reason of the server's (a timeout, a bad request).
var errSessionEnded = errors.New("engine: session ended")

// endIdle classifies an error while waiting for the next call.
func (s *Server) endIdle(sess *session, err error) string {
	switch {
	case context.Cause(sess.ctx) == ErrShutdown:
		s.Stats.EndClosed.Add(1)
		return "closed"
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		s.Stats.EndEOF.Add(1)
		return "eof"
	case errors.Is(err, os.ErrDeadlineExceeded) && s.shutdown.Load():
		s.Stats.EndDrained.Add(1)
		return "drained"
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.Stats.EndIdleTimeout.Add(1)
		s.callLogger().Info("session idle timeout", "remote", sess.remote(), "session_timeout", s.Config.SessionTimeout)
		return "idle timeout"
	}
	s.Stats.EndTransport.Add(1)
	s.callLogger().Warn("session read failed", "remote", sess.remote(), "err", err)
	return "transport error"
}

// endCall classifies the error that made a call end its session.
func (s *Server) endCall(sess *session, err error) string {
	var tooLarge errMessageTooLarge
	var reason string
	switch {
	case context.Cause(sess.ctx) == ErrShutdown:
		s.Stats.EndClosed.Add(1)
		return "closed"
	case sess.gone.Load() || errors.Is(err, thrift.ErrAbandonRequest):
		s.Stats.EndEOF.Add(1) // the client left during the call; its reply has nowhere to go
		return "client gone"
	case errors.As(err, &tooLarge), isSizeLimit(err):
		s.Stats.EndOversize.Add(1)
		reason = "oversize"
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.Stats.EndIOTimeout.Add(1)
		reason = "io timeout"
	case isProtocolError(err):
		s.Stats.EndProtocol.Add(1)
		reason = "protocol error"
	default:
		s.Stats.EndTransport.Add(1)
		reason = "transport error"
	}
	s.callLogger().Warn("session ended by a bad call", "remote", sess.remote(), "reason", reason,
		"err", err, "max_message_bytes", s.Config.MaxMessageBytes, "io_timeout", s.Config.IOTimeout)
	return reason
}

// isSizeLimit reports a length (frame, string, container) over MaxMessageBytes,
// found by the Thrift library before it allocates anything.
func isSizeLimit(err error) bool {
	var pe thrift.TProtocolException
	// A TTransportException also satisfies TProtocolException (and TIMED_OUT == SIZE_LIMIT),
	// so check the kind too.
	if errors.As(err, &pe) && pe.TExceptionType() == thrift.TExceptionTypeProtocol && pe.TypeId() == thrift.SIZE_LIMIT {
		return true
	}
	// The framed transport reports an oversize frame only in its text.
	return strings.Contains(err.Error(), "Incorrect frame size")
}

func isUnknownMethod(err error) bool {
	var ae thrift.TApplicationException
	return errors.As(err, &ae) && ae.TypeId() == thrift.UNKNOWN_METHOD
}

func isProtocolError(err error) bool {
	var te thrift.TTransportException
	if errors.As(err, &te) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return false // a protocol exception that wraps a transport failure is a transport failure
	}
	var pe thrift.TProtocolException
	var ae thrift.TApplicationException
	return errors.As(err, &pe) || errors.As(err, &ae)
}

// isDeclared reports whether err is an exception declared in the IDL (such as
// TCacheMissed): a normal outcome, not a call error.
func isDeclared(err error) bool {
	var te thrift.TException
	return errors.As(err, &te) && te.TExceptionType() == thrift.TExceptionTypeCompiled
}
