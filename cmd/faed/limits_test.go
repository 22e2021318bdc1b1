package main_test

import (
	"encoding/binary"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

// TestSessionTimeout: a session idle longer than rpc.session_timeout is closed;
// io_timeout does not cut an idle session.
func TestSessionTimeout(t *testing.T) {
	m := allModes[0]
	dir := t.TempDir()
	f := startFaedIn(t, dir, m.config(dir, `session_timeout: "300ms"`+"\n"+`io_timeout: "100ms"`, ""))
	c := f.dial(t, m)
	if _, err := c.Ping(bg, ctx()); err != nil {
		t.Fatal(err)
	}
	// Idle past io_timeout, within session_timeout: waits out a timeout on purpose.
	time.Sleep(200 * time.Millisecond)
	if _, err := c.Ping(bg, ctx()); err != nil {
		t.Fatalf("call after 200ms idle (io_timeout 100ms, session_timeout 300ms): %v", err)
	}
	idleFrom := time.Now()
	testenv.Eventually(t, 5*time.Second, "the idle timeout in the log", func() bool {
		return strings.Contains(f.out.String(), "session idle timeout")
	})
	if el := time.Since(idleFrom); el < 300*time.Millisecond {
		t.Errorf("session closed after %s idle, before session_timeout 300ms", el)
	}
	if _, err := c.Ping(bg, ctx()); err == nil {
		t.Fatal("call on a session closed by session_timeout succeeded")
	}
}

// TestIOTimeout: a request that starts but does not finish within rpc.io_timeout
// ends its session; other sessions go on.
func TestIOTimeout(t *testing.T) {
	m := allModes[0]
	dir := t.TempDir()
	f := startFaedIn(t, dir, m.config(dir, `session_timeout: "0s"`+"\n"+`io_timeout: "300ms"`, ""))
	conn := f.dialRaw(t)
	// The start of a binary-protocol call to ping, then silence.
	if _, err := conn.Write([]byte{0x80, 0x01, 0x00, 0x01, 0, 0, 0, 4, 'p', 'i'}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(conn); err != nil {
		t.Fatalf("read: %v (want EOF from faed closing the session)", err)
	}
	if el := time.Since(start); el < 250*time.Millisecond || el > 3*time.Second {
		t.Errorf("session closed after %s, want about io_timeout 300ms", el)
	}
	testenv.Eventually(t, 5*time.Second, "the io timeout in the log", func() bool {
		return strings.Contains(f.out.String(), `reason="io timeout"`)
	})
	if _, err := f.dial(t, m).Ping(bg, ctx()); err != nil {
		t.Fatal(err)
	}
}

// TestMessageSizeCap: lengths over rpc.max_message_bytes end the session before
// anything that large is allocated; the daemon goes on serving.
func TestMessageSizeCap(t *testing.T) {
	for _, m := range []mode{allModes[0], allModes[2]} { // binary buffered, binary framed
		t.Run(m.String(), func(t *testing.T) {
			dir := t.TempDir()
			f := startFaedIn(t, dir, m.config(dir, `max_message_bytes: 1048576`, ""))

			// A real client sending a value over the cap fails; one under it works.
			c := f.dial(t, m)
			if _, err := c.LcSet(bg, ctx(), "big", make([]byte, 2<<20)); err == nil {
				t.Error("lc_set of 2 MiB with max_message_bytes 1 MiB succeeded")
			}
			if ok, err := f.dial(t, m).LcSet(bg, ctx(), "ok", make([]byte, 512<<10)); err != nil || !ok {
				t.Errorf("lc_set of 512 KiB: %v", err)
			}

			// Raw garbage length prefixes: 4 GiB frames, 4 GiB and 2 GiB strings.
			var payloads [][]byte
			if m.framed {
				payloads = append(payloads, []byte{0xff, 0xff, 0xff, 0xff, 0x80, 0x01}, []byte{0x7f, 0xff, 0xff, 0xff, 0x80, 0x01})
			} else {
				for _, n := range []uint32{0xffffffff, 0x7fffffff} {
					p := []byte{0x80, 0x01, 0x00, 0x01}
					payloads = append(payloads, binary.BigEndian.AppendUint32(p, n)) // method name length
					// lc_set with a huge binary value (field 3, type string)
					q := []byte{0x80, 0x01, 0x00, 0x01, 0, 0, 0, 6}
					q = append(q, "lc_set"...)
					q = append(q, 0, 0, 0, 1, 11, 0, 3)
					payloads = append(payloads, binary.BigEndian.AppendUint32(q, n))
				}
			}
			for _, p := range payloads {
				conn := f.dialRaw(t)
				conn.Write(p)
				conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				io.ReadAll(conn) // faed ends the session
			}
			if rss := rssBytes(t, f.cmd.Process.Pid); rss > 300<<20 {
				t.Errorf("faed RSS %d MiB after huge length prefixes: it allocated them", rss>>20)
			}
			if _, err := f.dial(t, m).Ping(bg, ctx()); err != nil {
				t.Fatalf("ping after bad frames: %v", err)
			}
			testenv.Eventually(t, 5*time.Second, "the oversize reason in the log", func() bool {
				return strings.Contains(f.out.String(), `reason=oversize`)
			})
		})
	}
}

// TestMalformedInput: garbage ends only its own session; an unknown method is
// answered with UNKNOWN_METHOD and its session goes on.
func TestMalformedInput(t *testing.T) {
	m := allModes[0]
	dir := t.TempDir()
	f := startFaedIn(t, dir, m.config(dir, `io_timeout: "300ms"`, ""))
	good := f.dial(t, m)
	for _, junk := range [][]byte{
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),                                            // HTTP: closed at once
		{0x7f, 0xff, 0xff, 0xff, 'p', 'i', 'n', 'g'},                                           // a 2 GiB unversioned name length
		{0x80, 0x01, 0x00, 0x01, 0, 0, 0, 4, 'p', 'i', 'n', 'g', 0, 0, 0, 1, 0x42, 0x42, 0x42}, // bad field type
		{0x80, 0x01, 0x00, 0x01, 0, 0, 0, 4, 'p', 'i', 'n', 'g', 0, 0, 0},                      // truncated: io_timeout ends it
	} {
		conn := f.dialRaw(t)
		conn.Write(junk)
		start := time.Now()
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(conn); err != nil {
			t.Errorf("junk %q: %v, want the session closed by faed", junk, err)
		}
		if el := time.Since(start); el > 3*time.Second {
			t.Errorf("junk %q: session closed after %s", junk, el)
		}
	}

	conn := f.dialRaw(t)
	unknown := []byte{0x80, 0x01, 0x00, 0x01, 0, 0, 0, 7, 'n', 'o', 's', 'u', 'c', 'h', 'm', 0, 0, 0, 1, 0}
	conn.Write(unknown)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	n, err := conn.Read(buf)
	if err != nil || !strings.Contains(string(buf[:n]), "Unknown function nosuchm") {
		t.Fatalf("unknown method: read %q, %v; want an UNKNOWN_METHOD exception", buf[:n], err)
	}
	conn.Write(unknown) // the session is still open
	if n, err := conn.Read(buf); err != nil || !strings.Contains(string(buf[:n]), "Unknown function") {
		t.Fatalf("second call on the same session: %q, %v", buf[:n], err)
	}

	if _, err := good.Ping(bg, ctx()); err != nil {
		t.Fatalf("a good session after junk on others: %v", err)
	}
	for _, reason := range []string{`reason=oversize`, `reason="protocol error"`, `reason="io timeout"`,
		`msg="connection closed: http request on the thrift port"`} {
		testenv.Eventually(t, 5*time.Second, reason+" in the log", func() bool { return strings.Contains(f.out.String(), reason) })
	}
}

// TestMaxSessions: past rpc.max_outstanding_sessions faed goes on accepting
// (the listen backlog is never the queue): a new connection waits up to
// rpc.accept_wait for a slot and is served if one frees; with every waiter
// place taken (max_outstanding_sessions/10) one is answered "faed overloaded:"
// at once; one whose wait runs out is answered so after accept_wait. The
// admitted sessions are unaffected, and each outcome is counted.
func TestMaxSessions(t *testing.T) {
	m := allModes[0]
	dir := t.TempDir()
	f := startFaedIn(t, dir, m.config(dir, "max_outstanding_sessions: 10\naccept_wait: \"700ms\"", ""))
	live := make([]*client, 10)
	for i := range live {
		live[i] = f.dial(t, m)
		if _, err := live[i].Ping(bg, ctx()); err != nil {
			t.Fatal(err)
		}
	}
	// The 11th waits (1 waiter place = 10/10): it is served when a live session ends.
	waiter := f.dial(t, m)
	done := make(chan error, 1)
	go func() { _, err := waiter.Ping(bg, ctx()); done <- err }()
	testenv.Eventually(t, 5*time.Second, "the 11th connection accepted and waiting", func() bool {
		return scrape(t, f.httpAddr)["fae_accept_waiting"] == 1
	})
	// The 12th finds no waiter place: told at once.
	start := time.Now()
	_, err := f.dial(t, m).Ping(bg, ctx())
	wantErrContains(t, "12th connection, 10 live and 1 waiting", err,
		"faed overloaded: 10 sessions (rpc.max_outstanding_sessions) busy, waited 0s")
	if el := time.Since(start); el > time.Second {
		t.Errorf("12th connection told after %s, want at once", el)
	}
	live[0].Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the waiting connection once a session ended: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting connection not served after a session ended")
	}
	// Full again (9 live + the waiter): the next one waits accept_wait, then is told.
	start = time.Now()
	_, err = f.dial(t, m).Ping(bg, ctx())
	wantErrContains(t, "a connection whose wait ran out", err, "faed overloaded: 10 sessions", "waited 700ms")
	if el := time.Since(start); el < 650*time.Millisecond || el > 3*time.Second {
		t.Errorf("told after %s, want about accept_wait 700ms", el)
	}
	for i, c := range append(live[1:], waiter) {
		if _, err := c.Ping(bg, ctx()); err != nil {
			t.Errorf("admitted session %d after the refusals: %v", i, err)
		}
	}
	got := scrape(t, f.httpAddr)
	for key, want := range map[string]float64{
		`fae_connections_refused_total{reason="overloaded"}`:         2,
		`fae_connections_refused_total{reason="overloaded_no_call"}`: 0,
		`fae_connections_refused_total{reason="overloaded_dropped"}`: 0,
		`fae_accept_waited_total`:                                    1,
		`fae_sessions_total`:                                         11,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
	if !strings.Contains(f.out.String(), "connection refused: faed overloaded") {
		t.Error("no log line for the refusals")
	}
}

func rssBytes(t *testing.T, pid int) int64 {
	rss := testenv.RSS(pid)
	if rss == 0 {
		t.Fatalf("no RSS for process %d", pid)
	}
	return rss
}
