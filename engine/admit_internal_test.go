package engine

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// TestForeignKind: HTTP request lines and TLS handshake records are named;
// the first bytes of every Thrift message faed accepts are not: strict binary
// (0x80 0x01), compact (0x82), frame lengths and unversioned name lengths up to
// the largest max_message_bytes (1 GiB).
func TestForeignKind(t *testing.T) {
	for head, want := range map[string]string{
		"GET / HTTP/1.1": foreignHTTP, "POST /x": foreignHTTP, "HEAD /": foreignHTTP, "PUT /a": foreignHTTP,
		"DELETE /": foreignHTTP, "OPTIONS *": foreignHTTP, "PATCH /": foreignHTTP, "CONNECT h:1": foreignHTTP,
		"TRACE /": foreignHTTP, "PRI * HTTP/2.0": foreignHTTP,
		"\x16\x03\x01\x02\x00": foreignTLS, "\x16\x03\x03\x00\x10": foreignTLS,
		"\x80\x01\x00\x01": "", "\x82\x21\x00\x04": "", "GETX": "", "Get ": "",
	} {
		if got := foreignKind([]byte(head)); got != want {
			t.Errorf("foreignKind(%q) = %q, want %q", head, got, want)
		}
	}
	for _, n := range []uint32{0, 4, 1 << 20, 16 << 20, 1 << 30} { // a frame or unversioned name length
		head := binary.BigEndian.AppendUint32(nil, n)
		if got := foreignKind(head); got != "" {
			t.Errorf("length %d read as %q", n, got)
		}
	}
}

// TestOverloadBounds: waiters max_outstanding_sessions/10 (none without
// accept_wait), refusers max(64, max_outstanding_sessions/2), and the
// message names the limit and the wait.
func TestOverloadBounds(t *testing.T) {
	c := Config{MaxOutstandingSessions: 2000, AcceptWait: 100 * time.Millisecond}
	if c.AcceptWaiters() != 200 || c.MaxRefusers() != 1000 || c.ClientFiles() != 3200 {
		t.Errorf("limit 2000: waiters %d refusers %d files %d, want 200 1000 3200", c.AcceptWaiters(), c.MaxRefusers(), c.ClientFiles())
	}
	c = Config{MaxOutstandingSessions: 5}
	if c.AcceptWaiters() != 0 || c.MaxRefusers() != 64 {
		t.Errorf("limit 5, no accept_wait: waiters %d refusers %d, want 0 64", c.AcceptWaiters(), c.MaxRefusers())
	}
	want := "faed overloaded: 2000 sessions (rpc.max_outstanding_sessions) busy, waited 100ms"
	if got := OverloadMessage(2000, 100*time.Millisecond); got != want {
		t.Errorf("OverloadMessage = %q, want %q", got, want)
	}
}

// TestDetectWire: the first bytes of each wire rpc.protocol auto detects,
// and what it cannot: non-strict binary, HTTP, a bad compact version, a
// frame of neither protocol; short input is the peek's error.
func TestDetectWire(t *testing.T) {
	for _, c := range []struct {
		head string
		want wire
		err  error
	}{
		{"\x80\x01\x00\x01\x00\x00\x00\x04ping", wire{}, nil},
		{"\x82\x21\x01\x04ping", wire{compact: true}, nil},
		{"\x00\x00\x00\x10\x80\x01\x00\x01", wire{framed: true}, nil},
		{"\x00\x00\x00\x10\x82\x21\x01\x04", wire{compact: true, framed: true}, nil},
		{"\x00\x00\x00\x04ping\x01", wire{}, errUndetected},             // non-strict binary
		{"\x00\x00\x00\x10\x00\x00\x00\x04ping", wire{}, errUndetected}, // framed non-strict binary
		{"\x82\x22\x01\x04ping", wire{}, errUndetected},                 // compact version 2
		{"\x80\x02\x00\x01\x00\x00", wire{}, errUndetected},             // binary version 2
		{"GET / HTTP/1.1\r\n", wire{}, errUndetected},                   // (sniffForeign sees it first)
		{"\x00\x00\x00\x10\x82\x3f\x01\x04", wire{}, errUndetected},     // framed, compact version 31
		{"\x80", wire{}, io.EOF},                                        // too short
		{"\x00\x00\x00\x10\x80", wire{}, io.EOF},                        // too short for a frame
	} {
		br := bufio.NewReaderSize(strings.NewReader(c.head), 64)
		got, err := detectWire(br)
		if got != c.want || !errors.Is(err, c.err) {
			t.Errorf("detectWire(%q) = %v, %v; want %v, %v", c.head, got, err, c.want, c.err)
		}
		if br.Buffered() != len(c.head) {
			t.Errorf("detectWire(%q) consumed bytes: %d left buffered", c.head, br.Buffered())
		}
	}
}

// TestNonStrictCall: a non-strict binary call header is parsed at offset 0
// or 4 (framed) of the bytes received; names with control bytes, a zero or over-long length, a
// message type other than CALL and ONEWAY are no call.
func TestNonStrictCall(t *testing.T) {
	for _, c := range []struct {
		head string
		off  int
		name string
		seq  int32
		ok   bool
	}{
		{"\x00\x00\x00\x04ping\x01\x00\x00\x00\x07\x0c", 0, "ping", 7, true},
		{"\x00\x00\x00\x04ping\x04\x00\x00\x01\x00", 0, "ping", 256, true},
		{"\x00\x00\x00\x14\x00\x00\x00\x04ping\x01\x00\x00\x00\x07", 4, "ping", 7, true},
		{"\x00\x00\x00\x04pi\x00g\x01\x00\x00\x00\x07", 0, "", 0, false},
		{"\x00\x00\x00\x04ping\x02\x00\x00\x00\x07", 0, "", 0, false},
		{"\x00\x00\x00\x00\x01\x00\x00\x00\x07", 0, "", 0, false},
		{"\x00\x00\x01\x00ping\x01\x00\x00\x00\x07", 0, "", 0, false},
		{"\x00\x00\x00\x04ping\x01\x00\x00", 0, "", 0, false},
	} {
		br := bufio.NewReaderSize(strings.NewReader(c.head), 256)
		br.Peek(len(c.head)) // received; nonStrictCall reads only what is
		name, seq, ok := nonStrictCall(br, c.off)
		if name != c.name || seq != c.seq || ok != c.ok {
			t.Errorf("nonStrictCall(%q, %d) = %q, %d, %v; want %q, %d, %v", c.head, c.off, name, seq, ok, c.name, c.seq, c.ok)
		}
	}
}

// TestPeerWire: an auto node is called in binary buffered; the others in their own.
func TestPeerWire(t *testing.T) {
	for _, c := range []struct {
		cfg    Config
		proto  string
		framed bool
	}{
		{Config{Protocol: ProtocolAuto, Framed: true}, "binary", false},
		{Config{Protocol: "compact", Framed: true}, "compact", true},
		{Config{Protocol: "binary"}, "binary", false},
	} {
		if p, f := c.cfg.PeerWire(); p != c.proto || f != c.framed {
			t.Errorf("%+v: PeerWire = %s %v, want %s %v", c.cfg, p, f, c.proto, c.framed)
		}
	}
}
