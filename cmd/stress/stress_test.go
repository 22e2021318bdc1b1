package main

import (
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
	"github.com/fae-go/fae/peer"
)

// wantStat waits until faed's counters grew from before by exactly want
// (faed counts a session when it accepts it, which may come a moment after
// the tool's connect returned), failing after 5 s with the last figures.
func wantStat(t *testing.T, n *node, before, want stat) {
	t.Helper()
	var got stat
	defer func() {
		if got != want {
			t.Logf("faed counted %d calls and %d sessions, the tool %d and %d", got.Calls, got.Sessions, want.Calls, want.Sessions)
		}
	}()
	testenv.Eventually(t, 5*time.Second, "faed's counts to equal the tool's", func() bool {
		st := n.stat(t)
		got = stat{st.Calls - before.Calls, st.Sessions - before.Sessions}
		return got == want
	})
}

// TestCountsEqualFaeds: the calls and sessions the tool reports are exactly
// those faed counts (/engine/stat calls_total, sessions_total) for the same
// run, in php-fpm mode, with kept connections and in open loop.
func TestCountsEqualFaeds(t *testing.T) {
	n := startNode(t, "faed", "", "", "")
	for _, tc := range []struct {
		name                  string
		args                  []string
		calls, sessions, conn int64
	}{
		{"php-fpm", []string{"-x", "15", "-c", "8", "-n", "50", "-loop", "2"}, 400 * 2 * 5, 400, 400},
		{"keepalive", []string{"-x", "6", "-c", "4", "-n", "100", "-keepalive"}, 800, 400, 4},
		{"open loop", []string{"-x", "2", "-rate", "500", "-c", "8", "-d", "1s"}, 500, 500, 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := n.stat(t)
			r := stress(t, append(tc.args, "-addr", n.Addr(), "-json", "-erroff")...)
			if r.code != 0 {
				t.Fatalf("exit status %d", r.code)
			}
			if r.rep.Calls != tc.calls || r.rep.Sessions != tc.sessions || r.rep.Conns != tc.conn {
				t.Errorf("report: %d calls, %d sessions, %d conns; want %d, %d, %d",
					r.rep.Calls, r.rep.Sessions, r.rep.Conns, tc.calls, tc.sessions, tc.conn)
			}
			wantErrors(t, r.rep, nil)
			wantStat(t, n, before, stat{r.rep.Calls, r.rep.Conns})
		})
	}
}

// TestOneNode: TCP and the unix socket of one node, and the compact
// protocol over the framed transport; the text report and progress lines.
func TestOneNode(t *testing.T) {
	n := startNode(t, "faed", "", "", "")
	for _, addr := range []string{n.Addr(), n.Sock} {
		before := n.stat(t)
		r := stress(t, "-addr", addr, "-x", "3", "-c", "4", "-n", "25", "-json")
		if r.code != 0 || r.rep.Sessions != 100 || r.rep.Calls != 200 {
			t.Errorf("%s: exit status %d, %d sessions, %d calls; want 0, 100, 200", addr, r.code, r.rep.Sessions, r.rep.Calls)
		}
		wantStat(t, n, before, stat{200, 100})
	}

	c := startNode(t, "faed-compact", `protocol: "compact", framed: true`, "", "")
	r := stress(t, "-addr", c.Sock, "-protocol", "compact", "-framed", "-x", "2", "-c", "2", "-d", "1500ms", "-neatstat=false")
	if r.code != 0 {
		t.Errorf("compact framed: exit status %d", r.code)
	}
	for _, re := range []string{
		`(?m)^stress: 1 node\(s\) \[` + regexp.QuoteMeta(c.Sock) + ` \(compact, framed\)\]; closed loop, c 2; a connection per session; 1 round\(s\) of \[ping\] per session$`,
		`(?m)^1s c:2 sessions:\d+ calls:\d+ calls/s:\d+ sessions/s:\d+ p99:\d+\.\d{3}ms errs:0 conns:\d go:\d+$`,
		`(?m)^Elapsed: 1\.5\d*s, calls: \{\d+, [\d.]+/s\}, sessions: \{\d+, [\d.]+/s\}, conns: \d+, errors: \{conn:0, io:0, timeout:0, call:0\}$`,
		`(?m)^Latency per call \(ms\): p50 [\d.]+ p90 [\d.]+ p99 [\d.]+ p99\.9 [\d.]+ max [\d.]+$`,
	} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("output lacks a line matching %s", re)
		}
	}
}

// TestCluster: with -zk the tool reads the members faed registered under
// -root (read-only) and spreads the sessions round-robin over them, each in
// the protocol and transport its record advertises.
func TestCluster(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	const root = "/fae/stress"
	zkConf := fmt.Sprintf(`etcd_servers: [%q]
    peer: { root: %q, session_timeout: "2s" }`, z.Addr(), root)
	var nodes []*node
	for i, rpc := range []string{"", "", `protocol: "compact", framed: true`} {
		nodes = append(nodes, startNode(t, fmt.Sprintf("node%d", i), rpc, zkConf, fmt.Sprintf("idgen_worker_id: %d", i+1)))
	}
	var cfg peer.Config
	cfg.SetDefaults()
	cfg.Root = root
	reg, err := peer.New([]string{z.Addr()}, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	testenv.Eventually(t, 30*time.Second, "3 members registered", func() bool { return len(reg.Members()) == 3 })

	before := make([]stat, len(nodes))
	for i, n := range nodes {
		before[i] = n.stat(t)
	}
	r := stress(t, "-zk", z.Addr(), "-root", root, "-x", "2", "-c", "6", "-n", "20", "-json", "-erroff")
	if r.code != 0 || r.rep.Sessions != 120 {
		t.Fatalf("exit status %d, %d sessions; want 0, 120", r.code, r.rep.Sessions)
	}
	for i, n := range nodes {
		wantStat(t, n, before[i], stat{40, 40})
	}
	if !strings.Contains(r.stderr, nodes[2].Addr()+" (compact, framed)") {
		t.Errorf("banner does not name node2 as compact framed:\n%s", r.stderr)
	}
}

// TestStallOpenVersusClosed: faed frozen (SIGSTOP) for 1.1 s in the middle
// of a 2.5 s run. In open loop every session due during the stall waits for
// it, and its latency counts from when it was due: a session due x into the
// stall takes stall − x, so about stall/run of the calls are delayed, and
// p99 is the stall minus 1 % of the run (a 1 s freeze would give about
// 0.98 s; 1.1 s puts p99 over 1 s with a margin). In closed loop only the
// c calls in flight see the stall, among thousands: p99 stays at
// milliseconds and only max shows it.
func TestStallOpenVersusClosed(t *testing.T) {
	n := startNode(t, "faed", "", "", "")
	const stall = 1100 * time.Millisecond
	run := func(args ...string) *Report {
		p := startStress(t, append(args, "-addr", n.Addr(), "-x", "2", "-c", "16", "-d", "2500ms", "-json", "-erroff")...)
		p.waitFor(t, "calls/s:") // a second has passed: the load is steady
		n.Freeze()
		time.Sleep(stall) // the stall under test, not a synchronisation
		n.Thaw()
		r := p.wait(t)
		if r.code != 0 {
			t.Fatalf("exit status %d", r.code)
		}
		return r.rep
	}
	open := run("-rate", "1000")
	if open.Latency.P99 < 1000 || open.Latency.Max < float64(stall/time.Millisecond) {
		t.Errorf("open loop: p99 %.3f ms, max %.3f ms; want p99 ≥ 1000 ms and max ≥ %d ms", open.Latency.P99, open.Latency.Max, stall/time.Millisecond)
	}
	if open.Sessions != 2500 {
		t.Errorf("open loop: %d sessions, want the 2500 due", open.Sessions)
	}
	closed := run()
	if closed.Latency.P99 > 200 || closed.Latency.Max < float64(stall/time.Millisecond) {
		t.Errorf("closed loop: p99 %.3f ms, max %.3f ms; want p99 ≤ 200 ms (the stall hidden) and max ≥ %d ms",
			closed.Latency.P99, closed.Latency.Max, stall/time.Millisecond)
	}
}

// TestSignal: SIGINT ends an unbounded-looking run at once with the report.
func TestSignal(t *testing.T) {
	n := startNode(t, "faed", "", "", "")
	p := startStress(t, "-addr", n.Addr(), "-x", "2", "-c", "4", "-d", "1h", "-json")
	p.waitFor(t, "calls/s:")
	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGINT)
	r := p.wait(t)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("stress took %s to stop after SIGINT", took)
	}
	if r.code != 0 || r.rep.Calls == 0 || r.rep.ElapsedS > 60 {
		t.Errorf("exit status %d, %d calls in %.1f s; want 0, some, about a second", r.code, r.rep.Calls, r.rep.ElapsedS)
	}
	wantErrors(t, r.rep, nil)
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-x", "0"}, {"-x", "256"}, {"-protocol", "json"}, {"-n", "0"}, {"-loop", "0"}, {"-c1", "20", "-c2", "10"},
		{"-rate", "100", "-c2", "50"}, {"-zk", "127.0.0.1:1", "-addr", "127.0.0.1:2"}, {"-payload", "-1"}, {"extra"},
		{"-zk", "nohostport"}, {"-zk", "127.0.0.1:1", "-root", "relative"},
	} {
		if r := stress(t, args...); r.code != 2 || !strings.Contains(r.stderr, "stress: ") {
			t.Errorf("%q: exit status %d, want 2 and a message", args, r.code)
		}
	}
}
