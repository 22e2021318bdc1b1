package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
)

// What happens to a connection accepted while max_outstanding_sessions are
// live (new in this fae; the original left new connections in the kernel's
// listen backlog, where PHP's connect succeeded and its first call hung until
// its own timeout, and TSocketPool then marked the node dead for 60 s):
//
//  1. It waits in faed up to rpc.accept_wait for a session slot, if fewer than
//     max_outstanding_sessions/10 connections wait already (AcceptWaiters).
//  2. Otherwise, or once the wait is over, it is refused: its first call's
//     message header is read (at most OverloadHeaderBytes bytes, within
//     OverloadReadWait) and answered, in the session's protocol (with
//     rpc.protocol auto, the one its first bytes show), with the
//     call's name and seqid, by a TApplicationException INTERNAL_ERROR whose
//     message begins "faed overloaded:"; then the connection is closed. At
//     most MaxRefusers refusals run at once; past that a connection is closed
//     at once, unanswered.
//
// The accept loop itself never waits: the listen backlog is never the queue.
const (
	// OverloadReadWait bounds the wait for an overloaded connection's first
	// call header; a connection that sends none within it is closed
	// unanswered (Stats.RefusedOverloadNoCall). 100 ms, so that with the
	// default accept_wait a refused client is told within about 200 ms.
	OverloadReadWait = 100 * time.Millisecond
	// OverloadHeaderBytes bounds what a refusal reads: the frame length and the
	// message header (version, method name, seqid). A longer header (a method
	// name over about 1000 bytes: no method of the IDL) is not answered.
	OverloadHeaderBytes = 1024
	// refuseBufferSize is the read buffer of one refusal, in bytes.
	refuseBufferSize = 256
)

// AcceptWaiters is how many connections at most wait for a session slot at
// once: max_outstanding_sessions/10 (the bound), 0 when accept_wait is
// 0. Each waiter holds a goroutine and its connection, no buffer.
func (c *Config) AcceptWaiters() int {
	if c.AcceptWait <= 0 {
		return 0
	}
	return c.MaxOutstandingSessions / 10
}

// MaxRefusers is how many overloaded connections at most are being answered
// at once: max_outstanding_sessions/2, at least 64. Each holds a goroutine, its
// connection and a 256-byte buffer (about 10 KB) for at most
// OverloadReadWait, so refusals run at 5 × max_outstanding_sessions a second
// or more, in under 10 MB per 2,000 sessions. /10 (the waiters' bound) closed
// most of a storm of 10,000 connections unanswered (TestOverloadStorm).
func (c *Config) MaxRefusers() int {
	return max(64, c.MaxOutstandingSessions/2)
}

// ClientFiles is how many client connections (file descriptors) faed may hold
// at once: sessions, waiters and refusals. The open-file limit should exceed
// it, with room for listeners, logs and backend connections.
func (c *Config) ClientFiles() int {
	return c.MaxOutstandingSessions + c.AcceptWaiters() + c.MaxRefusers()
}

// AllowPrefixes parses AllowFrom (which Validate checked); nil = everyone.
func (c *Config) AllowPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range c.AllowFrom {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// Allows reports whether a TCP client at ip may call, by rpc.allow_from (an
// empty list allows everyone). An IPv4-mapped IPv6 address is taken as IPv4.
func (c *Config) Allows(ip netip.Addr) bool {
	return allowed(c.AllowPrefixes(), ip)
}

func allowed(prefixes []netip.Prefix, ip netip.Addr) bool {
	if len(prefixes) == 0 {
		return true
	}
	ip = ip.Unmap()
	for _, p := range prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// admit applies rpc.allow_from to a connection just accepted: false when it is
// refused (closed, counted in RefusedNotAllowed, logged through the throttle).
// Unix-socket clients always pass: the socket file's mode governs them.
func (s *Server) admit(conn net.Conn) bool {
	if len(s.allow) == 0 {
		return true
	}
	ta, ok := conn.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return true
	}
	ip, _ := netip.AddrFromSlice(ta.IP)
	if allowed(s.allow, ip) {
		return true
	}
	s.Stats.RefusedNotAllowed.Add(1) // before the close: a client that sees it closed sees it counted
	conn.Close()
	s.callLogger().Warn("connection refused: not in rpc.allow_from", "remote", ta.String(),
		"allow_from", s.Config.AllowFrom)
	return false
}

// overflow takes a connection accepted while every session slot is taken: it
// waits for a slot if a waiter place is free, else it is refused.
func (s *Server) overflow(conn net.Conn) {
	select {
	case s.waiters <- struct{}{}:
		go s.waitSlot(conn)
	default:
		s.refuse(conn, 0, true)
	}
}

// waitSlot waits up to accept_wait for a session slot and serves the session,
// or refuses the connection. It runs on a goroutine of its own, holding a
// waiter place until the wait ends.
func (s *Server) waitSlot(conn net.Conn) {
	timer := time.NewTimer(s.Config.AcceptWait)
	defer timer.Stop()
	s.Stats.AcceptWaiting.Add(1)
	release := func() {
		s.Stats.AcceptWaiting.Add(-1)
		<-s.waiters
	}
	select {
	case s.sem <- struct{}{}:
		release()
		timer.Stop()
		s.Stats.AcceptWaited.Add(1)
		if sess := s.newSession(conn); sess != nil {
			s.sessionWorker(sess) // and the sessions after it (workers.go)
		} else {
			<-s.sem
		}
	case <-timer.C:
		release()
		s.refuse(conn, s.Config.AcceptWait, false)
	case <-s.done:
		release()
		conn.Close()
	}
}

// refuse answers conn's first call with "faed overloaded:" and closes it, on a
// new goroutine when spawn is set, if fewer than MaxRefusers refusals run;
// else it closes conn at once (RefusedOverloadDropped).
func (s *Server) refuse(conn net.Conn, waited time.Duration, spawn bool) {
	select {
	case s.refusers <- struct{}{}:
	default:
		s.Stats.RefusedOverloadDropped.Add(1) // before the close, as RefusedNotAllowed
		conn.Close()
		s.callLogger().Warn("connection closed unanswered: faed overloaded and already answering as many refused connections as it may",
			"remote", remoteName(conn), "max_outstanding_sessions", s.Config.MaxOutstandingSessions,
			"refusing", cap(s.refusers))
		return
	}
	if spawn {
		go s.answerOverloaded(conn, waited)
	} else {
		s.answerOverloaded(conn, waited)
	}
}

// OverloadMessage is the message of the TApplicationException an overloaded
// faed answers a refused connection's first call with.
func OverloadMessage(maxSessions int, waited time.Duration) string {
	return fmt.Sprintf("faed overloaded: %d sessions (rpc.max_outstanding_sessions) busy, waited %s",
		maxSessions, waited.Round(time.Millisecond))
}

// answerOverloaded reads the header of conn's first call and answers it with
// OverloadMessage, then closes conn and frees its refuser place.
func (s *Server) answerOverloaded(conn net.Conn, waited time.Duration) {
	defer func() { <-s.refusers }()
	defer conn.Close()
	remote := remoteName(conn)
	conn.SetDeadline(time.Now().Add(OverloadReadWait))
	t := newConnTransport(conn, refuseBufferSize, 0, OverloadHeaderBytes, false)
	head, err := t.br.Peek(4)
	if err == nil {
		if kind := foreignKind(head); kind != "" {
			s.countForeign(kind, remote)
			return
		}
	}
	w, err := s.sessionWire(t)
	if errors.Is(err, errUndetected) {
		s.refuseUndetected(conn, t.br, remote)
		return
	}
	var name string
	var seq int32
	if err == nil {
		name, seq, err = s.readCallHeader(t, w)
	}
	if err != nil {
		s.Stats.RefusedOverloadNoCall.Add(1)
		s.callLogger().Warn("connection closed unanswered: faed overloaded and no call header read",
			"remote", remote, "max_outstanding_sessions", s.Config.MaxOutstandingSessions, "err", err)
		return
	}
	exc := thrift.NewTApplicationException(thrift.INTERNAL_ERROR, OverloadMessage(s.Config.MaxOutstandingSessions, waited))
	if err := s.writeException(conn, w, name, seq, exc); err != nil {
		s.Stats.RefusedOverloadNoCall.Add(1)
		s.callLogger().Warn("connection closed: faed overloaded, its answer not written", "remote", remote, "err", err)
		return
	}
	s.Stats.RefusedOverload.Add(1)
	s.callLogger().Warn("connection refused: faed overloaded", "remote", remote, "method", name,
		"max_outstanding_sessions", s.Config.MaxOutstandingSessions, "waited", waited.Round(time.Millisecond))
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.CloseWrite() // FIN after the answer, even if unread call bytes make Close send a reset
	}
}

// readCallHeader reads a call's frame length (framed) and message header in
// wire w: at most OverloadHeaderBytes bytes, nothing allocated by a length read.
func (s *Server) readCallHeader(t *connTransport, w wire) (string, int32, error) {
	if w.framed {
		head, err := t.br.Peek(4)
		if err != nil {
			return "", 0, err
		}
		if n := binary.BigEndian.Uint32(head); n > uint32(s.Config.MaxMessageBytes) {
			return "", 0, errMessageTooLarge{s.Config.MaxMessageBytes}
		}
		t.br.Discard(4)
		t.read += 4
	}
	name, _, seq, err := s.refuseProtocols[w.index()].GetProtocol(t).ReadMessageBegin(context.Background())
	return name, seq, err
}

// writeException writes, in one write, the EXCEPTION reply to call name/seq
// with exc, in wire w.
func (s *Server) writeException(conn net.Conn, w wire, name string, seq int32, exc thrift.TApplicationException) error {
	ctx := context.Background()
	buf := thrift.NewTMemoryBufferLen(128 + len(name) + len(exc.Error()))
	if w.framed {
		buf.Write([]byte{0, 0, 0, 0})
	}
	p := s.refuseProtocols[w.index()].GetProtocol(buf)
	p.WriteMessageBegin(ctx, name, thrift.EXCEPTION, seq)
	exc.Write(ctx, p)
	p.WriteMessageEnd(ctx)
	p.Flush(ctx)
	b := buf.Bytes()
	if w.framed {
		binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	}
	_, err := conn.Write(b)
	return err
}

// Foreign protocols recognised on the Thrift port by a session's first four
// bytes. None of them can begin a Thrift message faed accepts: read as a frame
// length or an unversioned method-name length, an upper-case ASCII letter first
// gives over 1 GiB (max_message_bytes is at most 1 GiB), and 0x16 0x03 gives
// 369 MB, no method name; strict binary begins 0x80, compact 0x82.
const (
	foreignHTTP = "http request on the thrift port"
	foreignTLS  = "tls handshake on the thrift port"
)

// httpMethods are the first four bytes of HTTP/1.x requests (RFC 9110 §9, and
// PATCH) and of the HTTP/2 connection preface ("PRI * HTTP/2.0").
var httpMethods = []string{"GET ", "POST", "HEAD", "PUT ", "DELE", "OPTI", "PATC", "CONN", "TRAC", "PRI "}

// foreignKind names the foreign protocol whose bytes head begins with, or "".
// head has at least 4 bytes. TLS: a handshake record, type 22 (0x16) version
// 3.x (RFC 8446 §5.1; SSL 3.0 to TLS 1.3 all send 0x03 first).
func foreignKind(head []byte) string {
	if head[0] == 0x16 && head[1] == 0x03 {
		return foreignTLS
	}
	if head[0] < 'A' || head[0] > 'Z' {
		return ""
	}
	for _, m := range httpMethods {
		if string(head[:4]) == m {
			return foreignHTTP
		}
	}
	return ""
}

// countForeign counts and logs a connection closed for the foreign protocol kind.
func (s *Server) countForeign(kind, remote string) {
	if kind == foreignTLS {
		s.Stats.RefusedTLS.Add(1)
	} else {
		s.Stats.RefusedHTTP.Add(1)
	}
	s.callLogger().Warn("connection closed: "+kind, "remote", remote)
}

// sniffForeign peeks at a session's first bytes (the first call has begun:
// io_timeout bounds the wait) and names a foreign protocol, or "".
func (t *connTransport) sniffForeign() string {
	head, err := t.br.Peek(4)
	if err != nil {
		return "" // too short for either: the protocol reports it
	}
	return foreignKind(head)
}
