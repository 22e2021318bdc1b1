package main_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

// TestShutdownCancelsRdCall: an rd_call of a command that does not block,
// waiting on a frozen Redis whose io_timeout is longer than
// shutdown_timeout, is cancelled when the drain times out (Close cancels
// every call in flight), pipelined or not: faed exits within
// shutdown_timeout and ShutdownGrace, not at io_timeout or servant close's
// grace. (A change that ran such calls on a ctx without Done, to spare a
// select, broke this; a review's test, kept.)
func TestShutdownCancelsRdCall(t *testing.T) {
	for _, pipeline := range []bool{true, false} {
		t.Run(fmt.Sprintf("pipeline=%v", pipeline), func(t *testing.T) {
			srv := testenv.StartRedis(t)
			m := allModes[0]
			dir := t.TempDir()
			f := startFaedIn(t, dir, m.config(dir, `shutdown_timeout: "500ms"`,
				rdSection(fmt.Sprintf(`io_timeout: "20s", pipeline: %v`, pipeline), rdPool{"p", []string{srv.Addr()}})))
			c := f.dial(t, m)
			defer c.Close()
			k := kvKey(t, "k")
			rdWant(t, c, "p", "SET", []string{k, "v"}, "OK")
			srv.Freeze()
			t.Cleanup(srv.Thaw)
			go c.RdCall(context.Background(), ctx(), "GET", "p", []string{k})
			// The GET is in flight once its bytes wait, unread, in the frozen
			// server's socket.
			testenv.Eventually(t, 5*time.Second, "the GET queued at the frozen Redis", func() bool {
				_, unread, _ := testenv.ServerSockets(srv.Port)
				return unread > 0
			})
			sig := time.Now()
			code := f.stop(syscall.SIGTERM, 30*time.Second)
			if exit := time.Since(sig); exit > 3*time.Second {
				t.Errorf("faed exited (code %d) %s after SIGTERM; want within shutdown_timeout (500ms) + ShutdownGrace (2s): the rd_call in flight was not cancelled", code, exit)
			}
		})
	}
}
