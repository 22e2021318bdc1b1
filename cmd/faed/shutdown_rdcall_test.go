package main_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
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
			testenv.Eventually(t, 5*time.Second, "the GET queued at the frozen Redis", func() bool { return tcpRecvQueued(srv.Port) > 0 })
			sig := time.Now()
			code := f.stop(syscall.SIGTERM, 30*time.Second)
			if exit := time.Since(sig); exit > 3*time.Second {
				t.Errorf("faed exited (code %d) %s after SIGTERM; want within shutdown_timeout (500ms) + ShutdownGrace (2s): the rd_call in flight was not cancelled", code, exit)
			}
		})
	}
}

// tcpRecvQueued is the bytes received and not yet read on the established
// loopback sockets whose local port is port (rx_queue of /proc/net/tcp).
func tcpRecvQueued(port int) int {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return 0
	}
	defer f.Close()
	want := fmt.Sprintf(":%04X", port)
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		// sl local_address rem_address st tx_queue:rx_queue …; st 01 = ESTABLISHED
		if len(fs) < 5 || !strings.HasSuffix(fs[1], want) || fs[3] != "01" {
			continue
		}
		if _, rx, ok := strings.Cut(fs[4], ":"); ok {
			v, _ := strconv.ParseInt(rx, 16, 64)
			n += int(v)
		}
	}
	return n
}
