package engine

import (
	"encoding/binary"
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
