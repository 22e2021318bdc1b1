package chaos

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

// TestLogDiskFull: faed logging to a full disk (-log /dev/full: every write
// fails with ENOSPC), every call traced (profiler_rate 10000) so each call
// writes a log record: calls keep being served, and the records are dropped
// and counted (/engine/stat "log").
func TestLogDiskFull(t *testing.T) {
	r := newRow(t, "log on a full disk")
	rpcAddr, httpAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	var port int
	fmt.Sscanf(rpcAddr, "127.0.0.1:%d", &port)
	conf := strings.Replace(nodeConf(port, 1, "", "", "profiler_rate: 10000"), `http_listen_addr: "127.0.0.1:0"`,
		fmt.Sprintf("http_listen_addr: %q", httpAddr), 1)
	n := startNodeAt(t, "faed", rpcAddr, httpAddr, conf, "-log", "/dev/full", "-level", "debug")
	baseline(t, n, r)
	d := pick(2*time.Second, 20*time.Second)
	r.Load = fmt.Sprintf("stress -c 4 -d %s (ping, id_next, lcache), every call traced", d)
	r.Faults = "-log /dev/full (ENOSPC on every write)"
	before := dropped(n)
	rep := runLoad(t, "log full", "-addr", n.addr, "-c", "4", "-d", d.String(), "-x", fmt.Sprint(xPing|xIDNext|xLcache))
	var after int64
	testenv.Eventually(t, 10*time.Second, "log records dropped and counted", func() bool {
		after = dropped(n)
		return after > before
	})
	r.Failed = fmt.Sprintf("%s; log records dropped: %d", rep, after-before)
	r.Recover = "– (never interrupted)"
	if rep.failed() != 0 {
		t.Errorf("calls failed with the log on a full disk: %s: %s", rep, rep.firsts())
	}
	if rep.Calls < 100 {
		t.Errorf("only %d calls served", rep.Calls)
	}
	if _, err := n.dial().Ping(bg, ctx()); err != nil {
		t.Errorf("ping after the load: %v", err)
	}
	checkLeaks(t, n, r)
}

// dropped is the log records faed dropped, over its log streams.
func dropped(n *node) int64 {
	var sum int64
	for _, s := range n.stat().Log {
		sum += s.Records
	}
	return sum
}
