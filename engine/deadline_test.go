package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/testenv"
)

// TestLazyDeadlinesStale: a deadline left on a session's connection by an
// earlier phase never cuts a later one (lazy deadlines): after a call that
// watched its client (WatchClient's stop wakes the watch with a read deadline
// in the past), the next request, already in the socket, is read and answered
// although session_timeout (IdleRelease, so that the idle wait has one
// deadline) would end the session on the first timeout it saw.
//
// With a session_timeout longer than IdleRelease, the idle wait keeps its
// short deadline armed across calls (armedWait): a watch that changed the
// read deadline must make it arm it again.
func TestLazyDeadlinesStale(t *testing.T) {
	for _, c := range []struct {
		network        string
		sessionTimeout time.Duration
	}{{"tcp", engine.IdleRelease}, {"unix", engine.IdleRelease}, {"tcp", 2 * time.Second}} {
		network, sessionTimeout := c.network, c.sessionTimeout
		t.Run(fmt.Sprintf("%s/session_timeout=%s", network, sessionTimeout), func(t *testing.T) {
			leakCheck(t)
			stopped, written := make(chan struct{}, 1), make(chan struct{}, 1)
			h := &handler{ping: func(ctx context.Context) (string, error) {
				_, stop := engine.WatchClient(ctx)
				// A backend wait that lasts until the watch runs (its start
				// delay passed), so that stop wakes it with a read deadline in
				// the past; the checks below fail if it never runs.
				if !testenv.Poll(5*time.Second, func() bool { return len(goroutines("(*watch).run")) == 1 }) {
					t.Error("the watch never started")
				}
				stop()
				stopped <- struct{}{}
				<-written // the next request is in the socket before this call ends
				return "pong", nil
			}}
			ts := startServer(t, network, h, func(c *engine.Config) { c.IOTimeout, c.SessionTimeout = time.Second, sessionTimeout })
			conn := ts.dialRaw(t)
			r := newReplyReader(conn, false)
			for i := int32(0); i < 3; i++ {
				if _, err := conn.Write(pingRequest(t, false, 2*i)); err != nil {
					t.Fatal(err)
				}
				<-stopped
				if _, err := conn.Write(noopRequest(t, false, 2*i+1, 40+i)); err != nil { // in the socket when the ping ends
					t.Fatal(err)
				}
				written <- struct{}{}
				var res rpc.FunServantPingResult
				if _, _, err := r.read(&res); err != nil || res.GetSuccess() != "pong" {
					t.Fatalf("ping = %q, %v", res.GetSuccess(), err)
				}
				if x := noopResult(t, r); x != 40+i {
					t.Fatalf("noop = %d, want %d", x, 40+i)
				}
			}
			if n := ts.Stats.EndIdleTimeout.Load() + ts.Stats.EndIOTimeout.Load(); n != 0 {
				t.Errorf("sessions ended by a timeout: %d", n)
			}
		})
	}
}

// TestIOTimeoutReplyWrite: io_timeout bounds the writing of a reply whose
// client reads nothing (the write deadline, armed only once the write has to
// wait): the session ends about io_timeout after the reply began, counted in
// EndIOTimeout and logged. Both ways a reply goes out: a large value by
// reference (one writev, writev.go) and many short values copied into the
// reply buffer (writes of batchReplyBytes).
func TestIOTimeoutReplyWrite(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		for _, way := range []string{"by reference", "copied"} {
			t.Run(network+"/"+way, func(t *testing.T) {
				leakCheck(t)
				replying := make(chan time.Time, 1)
				big := strings.Repeat("x", 32<<20) // more than the socket buffers of both ends hold
				short := make([]string, 32<<10)    // 32 MiB of 1 KiB strings, each copied (under refReplyBytes)
				for i := range short {
					short[i] = big[:1<<10]
				}
				h := &handler{
					ping: func(context.Context) (string, error) {
						replying <- time.Now()
						return big, nil
					},
					FunServant: zkChildren{children: func() []string {
						replying <- time.Now()
						return short
					}},
				}
				const ioTimeout = 200 * time.Millisecond
				ts := startServer(t, network, h, func(c *engine.Config) { c.IOTimeout = ioTimeout })
				conn := ts.dialRaw(t)
				if rb, ok := conn.(interface{ SetReadBuffer(int) error }); ok {
					rb.SetReadBuffer(4096)
				}
				req := pingRequest(t, false, 1)
				if way == "copied" {
					req = request(t, false, "zk_children", 1, &rpc.FunServantZkChildrenArgs{C: rctx(), Path: "/"})
				}
				if _, err := conn.Write(req); err != nil {
					t.Fatal(err)
				}
				began := <-replying
				testenv.Eventually(t, 10*time.Second, "the session ended by io_timeout", func() bool {
					return ts.Stats.EndIOTimeout.Load() == 1
				})
				if el := time.Since(began); el < ioTimeout*3/4 {
					t.Errorf("the reply write ended after %s, before io_timeout %s", el, ioTimeout)
				}
				// The session counts its end, then logs it: wait for the line.
				testenv.Eventually(t, 5*time.Second, "the io timeout line in the log", func() bool {
					return strings.Contains(ts.log.String(), `reason="io timeout"`)
				})
			})
		}
	}
}

// zkChildren is a servant whose zk_children answers children(); its other
// methods are not implemented.
type zkChildren struct {
	rpc.FunServant
	children func() []string
}

func (z zkChildren) ZkChildren(context.Context, *rpc.Context, string) ([]string, error) {
	return z.children(), nil
}
