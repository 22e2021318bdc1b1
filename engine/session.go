package engine

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
)

// session is one client connection carrying calls one after another.
type session struct {
	srv    *Server
	conn   net.Conn
	remote string

	mu    sync.Mutex // guards idle and the read deadline while idle
	idle  bool
	calls int64
}

// newSession registers conn; nil when the server is shutting down.
func (s *Server) newSession(conn net.Conn) *session {
	remote := conn.RemoteAddr().String()
	if remote == "" || remote == "@" {
		remote = "unix:" + conn.LocalAddr().String()
	}
	sess := &session{srv: s, conn: conn, remote: remote}
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

// drain makes an idle session stop waiting for its next call after DrainIdleGrace.
func (sess *session) drain() {
	sess.mu.Lock()
	if sess.idle {
		sess.conn.SetReadDeadline(time.Now().Add(DrainIdleGrace))
	}
	sess.mu.Unlock()
}

// waitCall waits for the first byte of the next call, bounded by session_timeout
// (or DrainIdleGrace during Shutdown).
func (sess *session) waitCall(t *connTransport) error {
	cfg := &sess.srv.Config
	sess.mu.Lock()
	sess.idle = true
	var deadline time.Time
	if cfg.SessionTimeout > 0 {
		deadline = time.Now().Add(cfg.SessionTimeout)
	}
	if sess.srv.shutdown.Load() {
		if d := time.Now().Add(DrainIdleGrace); deadline.IsZero() || d.Before(deadline) {
			deadline = d
		}
	}
	sess.conn.SetReadDeadline(deadline)
	sess.mu.Unlock()

	_, err := t.br.Peek(1)

	sess.mu.Lock()
	sess.idle = false
	sess.mu.Unlock()
	return err
}

func (s *Server) serveSession(sess *session) {
	log := s.Logger
	start := time.Now()
	var reason string
	defer func() {
		if r := recover(); r != nil {
			s.Stats.EndPanic.Add(1)
			reason = "panic"
			log.Error("session panic", "remote", sess.remote, "panic", r, "stack", string(debug.Stack()))
		}
		sess.conn.Close()
		s.mu.Lock()
		delete(s.sessions, sess)
		s.mu.Unlock()
		s.Stats.SessionsActive.Add(-1)
		<-s.sem
		log.Debug("session end", "remote", sess.remote, "calls", sess.calls, "elapsed", time.Since(start), "reason", reason)
	}()

	cfg := &s.Config
	t := newConnTransport(sess.conn, cfg.BufferSize, cfg.IOTimeout, cfg.MaxMessageBytes)
	var trans thrift.TTransport = t
	if cfg.Framed {
		trans = thrift.NewTFramedTransportConf(t, s.tconf)
	}
	proto := s.protocol.GetProtocol(trans)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	for {
		if err := sess.waitCall(t); err != nil {
			reason = s.endIdle(sess, err)
			return
		}
		t.beginCall()
		if !cfg.Framed && cfg.Protocol == "binary" {
			if err := t.checkUnversionedHead(); err != nil {
				reason = s.endCall(sess, err)
				return
			}
		}
		ok, err := s.Processor.Process(ctx, proto, proto)
		if !ok {
			if isUnknownMethod(err) { // answered with UNKNOWN_METHOD; the session goes on
				s.Stats.Calls.Add(1)
				s.Stats.CallErrors.Add(1)
				sess.calls++
				s.callLog.log(log, slog.LevelWarn, "unknown method", "remote", sess.remote, "err", err)
				continue
			}
			reason = s.endCall(sess, err)
			return
		}
		s.Stats.Calls.Add(1)
		sess.calls++
		if err != nil && !isDeclared(err) {
			s.Stats.CallErrors.Add(1)
			s.callLog.log(log, slog.LevelWarn, "call failed", "remote", sess.remote, "err", err)
		}
	}
}

// endIdle classifies an error while waiting for the next call.
func (s *Server) endIdle(sess *session, err error) string {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		s.Stats.EndEOF.Add(1)
		return "eof"
	case errors.Is(err, os.ErrDeadlineExceeded) && s.shutdown.Load():
		s.Stats.EndDrained.Add(1)
		return "drained"
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.Stats.EndIdleTimeout.Add(1)
		s.Logger.Info("session idle timeout", "remote", sess.remote, "session_timeout", s.Config.SessionTimeout)
		return "idle timeout"
	}
	s.Stats.EndTransport.Add(1)
	s.Logger.Warn("session read failed", "remote", sess.remote, "err", err)
	return "transport error"
}

// endCall classifies the error that made a call end its session.
func (s *Server) endCall(sess *session, err error) string {
	var tooLarge errMessageTooLarge
	var reason string
	switch {
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
	s.endLog.log(s.Logger, slog.LevelWarn, "session ended by a bad call", "remote", sess.remote, "reason", reason,
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
