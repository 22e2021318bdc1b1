package main_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

// refusedCount reads fae_connections_refused_total{reason=reason}.
func refusedCount(t *testing.T, f *faed, reason string) float64 {
	t.Helper()
	return scrape(t, f.httpAddr)[`fae_connections_refused_total{reason="`+reason+`"}`]
}

// TestOverloadEveryMode: the refusal is answered in the session's protocol and
// transport, with the call's method name and seqid (the generated Go client
// checks both and would report a mismatch, not the exception), on TCP and
// unix sockets.
func TestOverloadEveryMode(t *testing.T) {
	for _, m := range allModes {
		t.Run(m.String(), func(t *testing.T) {
			dir := t.TempDir()
			f := startFaedIn(t, dir, m.config(dir, "max_outstanding_sessions: 1\naccept_wait: \"0s\"", ""))
			live := f.dial(t, m)
			if _, err := live.Ping(bg, ctx()); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				refused := f.dial(t, m)
				_, err := refused.LcGet(bg, ctx(), "k")
				wantErrContains(t, "lc_get past the limit", err, "faed overloaded: 1 sessions (rpc.max_outstanding_sessions) busy, waited 0s")
				// The connection is closed after the answer.
				if _, err := refused.Ping(bg, ctx()); err == nil {
					t.Error("a second call on a refused connection succeeded")
				}
			}
			if _, err := live.Ping(bg, ctx()); err != nil {
				t.Fatalf("the admitted session after the refusals: %v", err)
			}
			if n := refusedCount(t, f, "overloaded"); n != 2 {
				t.Errorf("refused overloaded = %v, want 2", n)
			}
		})
	}
}

// TestOverloadUnanswered: overloaded connections that send no call are closed
// unanswered after 100 ms (overloaded_no_call); past the refusal places
// (max(64, max_outstanding_sessions/10)) they are closed at once
// (overloaded_dropped). Each connection is counted once; no goroutine or
// connection piles up; the admitted session goes on.
func TestOverloadUnanswered(t *testing.T) {
	m := allModes[0]
	dir := t.TempDir()
	f := startFaedIn(t, dir, m.config(dir, "max_outstanding_sessions: 1\naccept_wait: \"0s\"", ""))
	live := f.dial(t, m)
	if _, err := live.Ping(bg, ctx()); err != nil {
		t.Fatal(err)
	}
	const n = 400
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := net.DialTimeout("tcp", f.rpcAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	start := time.Now()
	for i, c := range conns { // every one is closed by faed, none answered
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if b, err := io.ReadAll(c); len(b) != 0 || err != nil && !strings.Contains(err.Error(), "reset") {
			t.Fatalf("connection %d: read %q, %v; want closed unanswered", i, b, err)
		}
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("the %d connections closed after %s", n, el)
	}
	noCall, dropped := refusedCount(t, f, "overloaded_no_call"), refusedCount(t, f, "overloaded_dropped")
	if noCall+dropped != n || noCall < 64 || dropped == 0 {
		t.Errorf("no_call %v + dropped %v, want %d in all, at least 64 no_call (the refusal places) and some dropped", noCall, dropped, n)
	}
	// The log is written asynchronously, and the per-call log is throttled
	// (20 lines, then a rate): whichever kind comes first may use up the
	// burst, so only one kind is sure to be logged; the counts above have both.
	testenv.Eventually(t, 5*time.Second, "a log line for the unanswered refusals", func() bool {
		return strings.Contains(f.out.String(), "connection closed unanswered: faed overloaded and no call header read") ||
			strings.Contains(f.out.String(), "connection closed unanswered: faed overloaded and already answering")
	})
	if _, err := live.Ping(bg, ctx()); err != nil {
		t.Fatalf("the admitted session: %v", err)
	}
}

// TestAllowFrom: with rpc.allow_from ["127.0.0.1/32"], a TCP client from
// 127.0.0.2 (loopback too, on Linux) is closed at accept, logged and counted;
// one from 127.0.0.1 and a unix-socket client (governed by the socket's mode)
// are served.
func TestAllowFrom(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "faed.sock")
	f := startFaedIn(t, dir, fmt.Sprintf(`{
    http_listen_addr: "127.0.0.1:0"
    rpc: { listen_addr: ["127.0.0.1:0", %q], allow_from: ["127.0.0.1/32", "10.0.0.0/8"], unix_socket_mode: "0600" }
    servants: { lcache: { max_items: 10 } }
}`, sock))
	addrs := strings.Split(f.rpcAddr, ",")
	_, port, _ := net.SplitHostPort(addrs[0])
	f.rpcAddr, f.unix = "127.0.0.1:"+port, false
	m := allModes[0]
	if _, err := f.dial(t, m).Ping(bg, ctx()); err != nil {
		t.Fatalf("from 127.0.0.1: %v", err)
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	for range 3 {
		c, err := d.Dial("tcp", f.rpcAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte{0x80, 0x01, 0x00, 0x01, 0, 0, 0, 4, 'p', 'i', 'n', 'g', 0, 0, 0, 1, 0})
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if b, err := io.ReadAll(c); len(b) != 0 {
			t.Fatalf("from 127.0.0.2: read %q (%v), want closed at accept", b, err)
		}
	}
	if n := refusedCount(t, f, "not_allowed"); n != 3 {
		t.Errorf("refused not_allowed = %v, want 3", n)
	}
	testenv.Eventually(t, 5*time.Second, "the refusal logged", func() bool {
		return strings.Contains(f.out.String(), `msg="connection refused: not in rpc.allow_from" remote=127.0.0.2:`)
	})
	if got := scrape(t, f.httpAddr); got["fae_sessions_total"] != 1 || got["fae_engine_calls_total"] != 1 {
		t.Errorf("sessions %v, calls %v: want 1 each (the refused ones never reached the processor)",
			got["fae_sessions_total"], got["fae_engine_calls_total"])
	}
	f.rpcAddr, f.unix = sock, true
	if _, err := f.dial(t, m).Ping(bg, ctx()); err != nil {
		t.Fatalf("unix socket client: %v", err)
	}
}

// TestForeignBytes: an HTTP request (net/http) and a TLS handshake
// (crypto/tls) on the Thrift port are closed at once, not after io_timeout,
// logged and counted by kind, in a session and in an overloaded connection
// alike; Thrift clients go on.
func TestForeignBytes(t *testing.T) {
	m := allModes[0]
	dir := t.TempDir()
	f := startFaedIn(t, dir, m.config(dir, "io_timeout: \"10s\"\nmax_outstanding_sessions: 1\naccept_wait: \"0s\"", ""))
	httpc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	tryHTTP := func() {
		start := time.Now()
		resp, err := httpc.Get("http://" + f.rpcAddr + "/engine/stat")
		if err == nil {
			resp.Body.Close()
			t.Fatalf("HTTP GET on the Thrift port: %s, want the connection closed", resp.Status)
		}
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("HTTP GET closed after %s, want at once (io_timeout 10s)", el)
		}
	}
	tryTLS := func() {
		start := time.Now()
		d := &net.Dialer{Timeout: 5 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", f.rpcAddr, &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			c.Close()
			t.Fatal("TLS handshake with the Thrift port succeeded")
		}
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("TLS handshake closed after %s, want at once (io_timeout 10s)", el)
		}
	}
	ended := func(n float64) {
		testenv.Eventually(t, 5*time.Second, "the session ended", func() bool {
			got := scrape(t, f.httpAddr)
			return got[`fae_session_ends_total{reason="refused"}`] == n && got["fae_sessions"] == 0
		})
	}
	tryHTTP() // sessions: the slot is free
	ended(1)
	tryTLS()
	ended(2)
	live := f.dial(t, m)
	if _, err := live.Ping(bg, ctx()); err != nil {
		t.Fatal(err)
	}
	tryHTTP() // overloaded connections: the one slot is taken
	tryTLS()
	if _, err := live.Ping(bg, ctx()); err != nil {
		t.Fatalf("a Thrift session after the HTTP and TLS connections: %v", err)
	}
	got := scrape(t, f.httpAddr)
	for key, want := range map[string]float64{
		`fae_connections_refused_total{reason="http"}`:       2,
		`fae_connections_refused_total{reason="tls"}`:        2,
		`fae_connections_refused_total{reason="overloaded"}`: 0,
		`fae_session_ends_total{reason="refused"}`:           2,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
	for _, line := range []string{`msg="connection closed: http request on the thrift port"`,
		`msg="connection closed: tls handshake on the thrift port"`} {
		if strings.Count(f.out.String(), line) != 2 {
			t.Errorf("want 2 log lines %s", line)
		}
	}
}

// TestAllowFromPeerWarning: two faeds in one cluster (the test services'
// ZooKeeper, a root of this test's own); the one whose rpc.allow_from leaves
// out the other's address warns, naming it; the one whose list covers the
// other does not.
func TestAllowFromPeerWarning(t *testing.T) {
	root := fmt.Sprintf("/fae-test-allow-%d-%d", os.Getpid(), time.Now().UnixNano())
	conf := func(allow string) string {
		return fmt.Sprintf(`{
    http_listen_addr: "127.0.0.1:0"
    etcd_servers: ["127.0.0.1:12181"]
    peer: { root: %q }
    rpc: { listen_addr: "127.0.0.1:0", allow_from: [%q] }
    servants: { idgen_worker_id: %d }
}`, root, allow, len(allow)%32)
	}
	strict := startFaedIn(t, t.TempDir(), conf("10.0.0.0/8"))
	open := startFaedIn(t, t.TempDir(), conf("127.0.0.0/8"))
	testenv.Eventually(t, 20*time.Second, "the warning naming the other member", func() bool {
		return strings.Contains(strict.out.String(), `msg="cluster members outside rpc.allow_from: their forwarded calls will be refused" outside=`+open.rpcAddr)
	})
	testenv.Eventually(t, 20*time.Second, "the open node sees the strict one", func() bool {
		body, _ := httpGet(t, "http://"+open.httpAddr+"/engine/peers")
		return strings.Contains(body, strict.rpcAddr)
	})
	if strings.Contains(open.out.String(), "outside rpc.allow_from") {
		t.Errorf("the node allowing 127.0.0.0/8 warned:\n%s", open.out.String())
	}
}
