package engine

import (
	"bufio"
	"encoding/binary"
	"errors"
	"net"

	"github.com/apache/thrift/lib/go/thrift"
)

// Protocol detection, rpc.protocol "auto" (new in this fae): each session's
// first call decides, from its first bytes, the protocol and transport of the
// whole session, as the auto protocol and auto transport of Envoy's Thrift
// proxy do (source/extensions/filters/network/thrift_proxy/
// auto_protocol_impl.cc, auto_transport_impl.cc), so that PHP (buffered
// binary), Python and Java (framed) clients share one port:
//
//   - strict binary: 0x80 0x01, the high half of the version word
//     (TBinaryProtocol VERSION_1 = 0x80010000);
//   - compact: 0x82 (COMPACT_PROTOCOL_ID), then a byte whose low 5 bits are
//     the version, 1;
//   - framed: a 4-byte big-endian frame length, then one of the two above.
//
// No frame length begins 0x80 or 0x82 (that is over 2 GiB, and
// max_message_bytes is at most 1 GiB), so the three cannot be confused.
// Detection peeks at most 6 bytes the session has buffered anyway and reads
// nothing twice; it runs once per session, on its first call.
//
// What cannot be detected: non-strict binary, the old format without a
// version, which begins with the method name's length (TBinaryProtocol with
// strict_write off; Thrift's own libraries write strict binary by default).
// Its first four bytes read as well as a frame length, so a session that
// begins neither strict binary nor compact, framed or not, is refused
// (RefusedProtocol): when its first bytes parse as a non-strict binary call,
// buffered or framed, the call is answered with a TApplicationException
// INVALID_PROTOCOL whose message begins "faed: rpc.protocol auto"
// (ProtocolMismatchMessage), in strict binary, then the connection is closed;
// any other bytes close it unanswered. Such clients need a port with
// rpc.protocol binary (which reads both, as the original fae).
const ProtocolAuto = "auto"

// ProtocolMismatchMessage is the message of the TApplicationException
// INVALID_PROTOCOL that a faed with rpc.protocol auto answers a non-strict
// binary call with.
const ProtocolMismatchMessage = "faed: rpc.protocol auto reads strict binary (with a version header) or compact, " +
	"framed or not; this call is non-strict binary: make the client write strict binary, " +
	"or call a faed port with rpc.protocol binary"

// errUndetected ends a session whose first bytes are none of the wires auto detects.
var errUndetected = errors.New("first bytes neither strict binary nor compact, framed or not")

// Wire bytes (Apache Thrift: TBinaryProtocol VERSION_1, TCompactProtocol
// COMPACT_PROTOCOL_ID and COMPACT_VERSION).
const (
	binaryVersionHigh0 = 0x80
	binaryVersionHigh1 = 0x01
	compactProtocolID  = 0x82
	compactVersion     = 1
	compactVersionMask = 0x1f
)

// nonStrictMaxName bounds the method name of a non-strict binary call that
// an auto session answers (the IDL's longest is under 30 bytes); a longer
// one is closed unanswered.
const nonStrictMaxName = 128

// wire is a session's protocol and transport.
type wire struct{ compact, framed bool }

// index is w's protocol as an index of Server.protocols: 0 binary, 1 compact.
func (w wire) index() int {
	if w.compact {
		return 1
	}
	return 0
}

func (w wire) String() string {
	s := "binary"
	if w.compact {
		s = "compact"
	}
	if w.framed {
		return s + " framed"
	}
	return s + " buffered"
}

// detectWire names the wire of the call br begins with, from at most its
// first 6 bytes, peeked, never consumed. The wait for them is the caller's
// read deadline (io_timeout, armed by beginCall). The error is the peek's
// (EOF, timeout), or errUndetected.
func detectWire(br *bufio.Reader) (wire, error) {
	head, err := br.Peek(2)
	if err != nil {
		return wire{}, err
	}
	if isMessageStart(head) {
		return wire{compact: head[0] == compactProtocolID}, nil
	}
	if head, err = br.Peek(6); err != nil {
		return wire{}, err
	}
	if isMessageStart(head[4:]) {
		return wire{compact: head[4] == compactProtocolID, framed: true}, nil
	}
	return wire{}, errUndetected
}

// isMessageStart reports whether b (2 bytes) begins a strict binary or a compact message.
func isMessageStart(b []byte) bool {
	switch b[0] {
	case binaryVersionHigh0:
		return b[1] == binaryVersionHigh1
	case compactProtocolID:
		return b[1]&compactVersionMask == compactVersion
	}
	return false
}

// wireOf is the wire of a session of cfg with a fixed protocol (not auto).
func wireOf(cfg *Config) wire {
	return wire{compact: cfg.Protocol == "compact", framed: cfg.Framed}
}

// sessionWire is the wire of the call t's connection begins: the configured
// one, or with rpc.protocol auto the detected one (see detectWire).
func (s *Server) sessionWire(t *connTransport) (wire, error) {
	if !s.auto {
		return s.wire, nil
	}
	return detectWire(t.br)
}

// refuseUndetected answers the first call of an auto session whose bytes are
// none of the wires detected with ProtocolMismatchMessage when they are a
// non-strict binary call (buffered, else framed), and counts and logs the
// refusal. The caller closes conn.
func (s *Server) refuseUndetected(conn net.Conn, br *bufio.Reader, remote string) {
	s.Stats.RefusedProtocol.Add(1)
	for _, framed := range []bool{false, true} {
		off := 0
		if framed {
			off = 4
		}
		name, seq, ok := nonStrictCall(br, off)
		if !ok {
			continue
		}
		exc := thrift.NewTApplicationException(thrift.INVALID_PROTOCOL, ProtocolMismatchMessage)
		err := s.writeException(conn, wire{framed: framed}, name, seq, exc)
		s.callLogger().Warn("connection refused: non-strict binary on an rpc.protocol auto port",
			"remote", remote, "method", name, "framed", framed, "answer_err", err)
		return
	}
	head, _ := br.Peek(min(br.Buffered(), 8))
	s.callLogger().Warn("connection closed: rpc.protocol auto found no thrift protocol in its first bytes",
		"remote", remote, "first_bytes", head)
}

// nonStrictCall parses the header of a non-strict binary call at offset off
// of the bytes br has received already (it never waits for more: a client
// writes a call's header in one write): the method name's length
// (1..nonStrictMaxName bytes), the name (printable ASCII), the message type
// (CALL or ONEWAY) and the seqid. Nothing is consumed; ok is false when the
// bytes are no such header.
func nonStrictCall(br *bufio.Reader, off int) (name string, seq int32, ok bool) {
	b, _ := br.Peek(br.Buffered())
	if len(b) < off+4 {
		return "", 0, false
	}
	n := binary.BigEndian.Uint32(b[off:])
	if n < 1 || n > nonStrictMaxName || off+4+int(n)+5 > len(b) { // the name, its type byte and seqid
		return "", 0, false
	}
	end := off + 4 + int(n) + 5
	raw := b[off+4 : off+4+int(n)]
	for _, c := range raw {
		if c <= ' ' || c > '~' {
			return "", 0, false
		}
	}
	if typ := thrift.TMessageType(b[end-5]); typ != thrift.CALL && typ != thrift.ONEWAY {
		return "", 0, false
	}
	return string(raw), int32(binary.BigEndian.Uint32(b[end-4:])), true
}
