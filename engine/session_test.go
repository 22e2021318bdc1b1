package engine_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/testenv"
)

// TestIOTimeoutZeroSlowRequest: with io_timeout 0 a request whose first byte
// arrives before the idle wait's deadline and whose other bytes arrive after it is
// served (REVIEW §2.B1). The deadline is session_timeout, or DrainIdleGrace for a
// session that finished a call during Shutdown.
func TestIOTimeoutZeroSlowRequest(t *testing.T) {
	for _, drain := range []bool{false, true} {
		t.Run(map[bool]string{false: "session_timeout", true: "drain grace"}[drain], func(t *testing.T) {
			leakCheck(t)
			started, release := make(chan struct{}), make(chan struct{})
			h := &handler{ping: func(context.Context) (string, error) {
				close(started)
				<-release
				return "pong", nil
			}}
			ts := startServer(t, "tcp", h, func(c *engine.Config) {
				c.IOTimeout, c.SessionTimeout = 0, 200*time.Millisecond
				if drain {
					c.SessionTimeout = 0
				}
			})
			conn := ts.dialRaw(t)
			r := newReplyReader(conn, false)
			shutdown := make(chan error, 1)
			if drain { // a call in flight when Shutdown begins; its session then waits DrainIdleGrace
				if _, err := conn.Write(pingRequest(t, false, 1)); err != nil {
					t.Fatal(err)
				}
				<-started
				go func() { shutdown <- ts.Shutdown(bg) }()
				testenv.Eventually(t, 5*time.Second, "the drain to begin", func() bool { return ts.listenerClosed() })
				close(release)
				var res rpc.FunServantPingResult
				if _, _, err := r.read(&res); err != nil || res.GetSuccess() != "pong" {
					t.Fatalf("ping in flight = %q, %v", res.GetSuccess(), err)
				}
			}
			req := noopRequest(t, false, 2, 42)
			if _, err := conn.Write(req[:1]); err != nil {
				t.Fatal(err)
			}
			// The rest arrives after the idle deadline (200 or 250 ms): time-based on purpose.
			time.Sleep(400 * time.Millisecond)
			if _, err := conn.Write(req[1:]); err != nil {
				t.Fatal(err)
			}
			if x := noopResult(t, r); x != 42 {
				t.Errorf("noop = %d, want 42", x)
			}
			if n := ts.Stats.EndIOTimeout.Load(); n != 0 {
				t.Errorf("EndIOTimeout = %d with io_timeout 0", n)
			}
			if drain {
				if err := <-shutdown; err != nil {
					t.Errorf("Shutdown = %v", err)
				}
			}
		})
	}
}

// TestIOTimeout: a request that starts and then stalls ends its session after
// io_timeout; an idle session is not cut by io_timeout.
func TestIOTimeout(t *testing.T) {
	leakCheck(t)
	ts := startServer(t, "tcp", &handler{}, func(c *engine.Config) {
		c.IOTimeout, c.SessionTimeout = 100*time.Millisecond, 0
	})
	idle := ts.dialRaw(t)
	stalled := ts.dialRaw(t)
	req := noopRequest(t, false, 1, 7)
	if _, err := stalled.Write(req[:len(req)-2]); err != nil {
		t.Fatal(err)
	}
	if el := readClosed(t, stalled, 5*time.Second); el < 80*time.Millisecond || el > 3*time.Second {
		t.Errorf("stalled request ended after %s, want about io_timeout 100ms", el)
	}
	if n := ts.Stats.EndIOTimeout.Load(); n != 1 {
		t.Errorf("EndIOTimeout = %d, want 1", n)
	}
	// idle has waited longer than io_timeout by now, and is still served.
	if _, err := idle.Write(req); err != nil {
		t.Fatal(err)
	}
	if x := noopResult(t, newReplyReader(idle, false)); x != 7 {
		t.Errorf("noop on the idle session = %d", x)
	}
	if !strings.Contains(ts.log.String(), `reason="io timeout"`) {
		t.Errorf("no io timeout line in the log:\n%s", ts.log)
	}
}

// TestSessionTimeout: a session idle for session_timeout is closed, and counted.
func TestSessionTimeout(t *testing.T) {
	leakCheck(t)
	ts := startServer(t, "unix", &handler{}, func(c *engine.Config) {
		c.IOTimeout, c.SessionTimeout = 0, 150*time.Millisecond
	})
	c := ts.dial(t)
	if _, err := c.Noop(bg, 1); err != nil {
		t.Fatal(err)
	}
	if el := readClosed(t, c.conn, 5*time.Second); el < 100*time.Millisecond || el > 3*time.Second {
		t.Errorf("idle session closed after %s, want about session_timeout 150ms", el)
	}
	testenv.Eventually(t, 5*time.Second, "the idle timeout counted", func() bool { return ts.Stats.EndIdleTimeout.Load() == 1 })
}

// TestPipelinedRequests: requests written back to back, before any reply, are all
// served in order, framed and not. Framed, a read of the thrift library's frame
// reader must not take the next request out of the session's buffer.
func TestPipelinedRequests(t *testing.T) {
	for _, framed := range []bool{false, true} {
		t.Run(map[bool]string{false: "buffered", true: "framed"}[framed], func(t *testing.T) {
			leakCheck(t)
			ts := startServer(t, "tcp", &handler{}, func(c *engine.Config) {
				c.Framed, c.SessionTimeout = framed, 0
			})
			conn := ts.dialRaw(t)
			var reqs []byte
			for i := int32(1); i <= 3; i++ {
				reqs = append(reqs, noopRequest(t, framed, i, 100+i)...)
			}
			if _, err := conn.Write(reqs); err != nil {
				t.Fatal(err)
			}
			r := newReplyReader(conn, framed)
			for i := int32(1); i <= 3; i++ {
				if x := noopResult(t, r); x != 100+i {
					t.Errorf("reply %d = %d, want %d", i, x, 100+i)
				}
			}
		})
	}
}

// TestCallLoggerThrottled: the server writes its per-call lines to CallLogger, so
// a throttle there bounds them; the counters stay complete.
func TestCallLoggerThrottled(t *testing.T) {
	leakCheck(t)
	h := &handler{ping: func(context.Context) (string, error) { return "", errors.New("backend down") }}
	calls := new(testenv.SyncBuffer)
	throttled := engine.NewThrottledHandler(slog.NewTextHandler(calls, nil), 0, 3)
	ts := startServerWith(t, "tcp", h, nil, func(s *engine.Server) { s.CallLogger = slog.New(throttled) })
	c := ts.dial(t)
	const n = 20
	for i := 0; i < n; i++ {
		if _, err := c.Ping(bg, rctx()); err == nil || !strings.Contains(err.Error(), "backend down") {
			t.Fatalf("ping = %v, want the handler's error", err)
		}
	}
	// The session counts, then logs, a call after writing its reply.
	testenv.Eventually(t, 5*time.Second, "every line written or suppressed", func() bool { return throttled.Suppressed() == n-3 })
	if got := strings.Count(calls.String(), `msg="call failed"`); got != 3 {
		t.Errorf("%d call-failed lines, want the burst of 3:\n%s", got, calls)
	}
	if got := ts.Stats.CallErrors.Load(); got != n {
		t.Errorf("CallErrors = %d, want %d", got, n)
	}
	if strings.Contains(ts.log.String(), "call failed") {
		t.Error("a per-call line went to Logger instead of CallLogger")
	}
}

// TestUnknownMethodKeepsSession: an unknown method is answered with UNKNOWN_METHOD
// and counted as a call error; the session serves its next call.
func TestUnknownMethodKeepsSession(t *testing.T) {
	leakCheck(t)
	ts := startServer(t, "tcp", &handler{}, nil)
	conn := ts.dialRaw(t)
	req := append(request(t, false, "nosuch", 1, &rpc.FunServantNoopArgs{X: 1}), noopRequest(t, false, 2, 9)...)
	if _, err := conn.Write(req); err != nil {
		t.Fatal(err)
	}
	r := newReplyReader(conn, false)
	var res rpc.FunServantNoopResult
	if _, _, err := r.read(&res); err == nil || !strings.Contains(err.Error(), "Unknown function nosuch") {
		t.Errorf("unknown method reply: %v, want UNKNOWN_METHOD", err)
	}
	if x := noopResult(t, r); x != 9 {
		t.Errorf("next call = %d, want 9", x)
	}
	// The session counts a call after writing its reply.
	testenv.Eventually(t, 5*time.Second, "both calls counted", func() bool { return ts.Stats.Calls.Load() == 2 })
	if e := ts.Stats.CallErrors.Load(); e != 1 {
		t.Errorf("CallErrors %d, want 1 (the unknown method)", e)
	}
}

// TestIdleWithoutBuffers: a session idle past IdleRelease gives its buffers
// back and waits without them; its next call is served, and a client that
// leaves while it waits so is seen at once (an EOF end, not a timeout).
func TestIdleWithoutBuffers(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			ts := startServer(t, network, &handler{}, func(c *engine.Config) { c.SessionTimeout = 0 })
			c := ts.dial(t)
			for i := range int32(3) {
				if x, err := c.Noop(bg, i); err != nil || x != i {
					t.Fatalf("call %d: %d, %v", i, x, err)
				}
				time.Sleep(3 * engine.IdleRelease) // the scenario: idle past IdleRelease, not synchronisation
			}
			c.conn.Close()
			testenv.Eventually(t, 2*time.Second, "the client's leaving seen while idle", func() bool { return ts.Stats.EndEOF.Load() == 1 })
			if n := ts.Stats.EndIdleTimeout.Load(); n != 0 {
				t.Errorf("%d idle timeouts, want none (session_timeout 0)", n)
			}
		})
	}
}
