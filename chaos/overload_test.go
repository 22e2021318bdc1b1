package chaos

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

// TestOverload: max_outstanding_sessions L filled by admitted sessions that
// keep calling (two stress processes, -keepalive, open loop: each process
// opens its L/2 sessions in the first second, then pings L/2 times a second
// over them, so the clients do not take the 2 cores from faed), then a storm of 6 L new
// connections from two more stress processes (open loop, each connection
// one ping). Full: L 2,000 and 12,000 connections (the measure);
// fast: L 200 and 1,200. The admitted sessions never fail, every storm
// connection is refused — told "faed overloaded:" or closed — and a probe
// connecting through the storm is told within 200 ms of its connect; stress's
// session latency (from when each connection was due, connect and the
// client's own scheduling included) is shown in the table. faed's RSS stays
// bounded (≤ 128 MiB of growth). cmd/faed's TestOverloadStorm measures the
// same with its own client processes.
func TestOverload(t *testing.T) {
	r := newRow(t, "overload")
	limit, storm, rate := pick(200, 2000), pick(1200, 12000), pick(1000, 2000)
	port := testenv.FreePort(t)
	n := startNode(t, "faed", nodeConf(port, 1, "", fmt.Sprintf(`max_outstanding_sessions: %d, session_timeout: "300s"`, limit), ""))
	var admitted []*load
	for i := range 2 {
		admitted = append(admitted, startLoad(t, fmt.Sprint("admitted", i), "-addr", n.addr, "-keepalive", "-c", fmt.Sprint(limit/2),
			"-rate", fmt.Sprint(limit/2), "-d", "10m", "-x", fmt.Sprint(xPing)))
	}
	testenv.Eventually(t, 30*time.Second, "every slot taken by an admitted session", func() bool { return n.stat().RPC.Active == int64(limit) })
	r.GoB, r.ConnB = n.goroutines(), n.fds()
	rssStop := testenv.SampleRSS(n.pid())
	r.Load = fmt.Sprintf("%d admitted keep-alive sessions pinging %d/s (2 stress processes) + %d new connections at %d/s (2 stress processes, open loop)",
		limit, limit, storm, 2*rate)
	r.Faults = fmt.Sprintf("connection storm against max_outstanding_sessions %d", limit)
	var storms []*load
	probed := make(chan []float64)
	stormDone := make(chan struct{})
	go func() { probed <- probeRefusals(n.addr, stormDone) }()
	for i := range 2 {
		storms = append(storms, startLoad(t, fmt.Sprint("storm", i), "-addr", n.addr, "-rate", fmt.Sprint(rate), "-c", fmt.Sprint(storm/2),
			"-n", "1", "-timeout", "2s", "-x", fmt.Sprint(xPing)))
	}
	sum := summarize(t, storms)
	close(stormDone)
	after := <-probed
	slices.Sort(after)
	st := n.stat().RPC
	checkBack(t, n, r) // the storm over, the admitted sessions still there
	var adm []string
	for _, l := range admitted {
		rep := l.stop()
		adm = append(adm, rep.String())
		if rep.failed() != 0 {
			t.Errorf("admitted sessions (%s) failed: %s: %s", l.desc, rep, rep.firsts())
		}
	}
	rssBase, rssPeak := rssStop()
	grew := rssPeak - rssBase
	r.Failed = fmt.Sprintf("storm: %d sessions, %d told \"faed overloaded:\", %d closed, p99 %.1f ms, max %.1f ms (refused %v); admitted: %s; RSS +%d MiB",
		sum.sessions, sum.told, sum.closed, sum.p99, sum.worst, st.Refused, strings.Join(adm, ", "), grew>>20)
	r.Recover = fmt.Sprintf("told %.1f ms after the connect (p99 of %d probes; max %.1f ms)", testenv.Percentile(after, 99), len(after), testenv.Percentile(after, 100))
	if sum.sessions != int64(storm) || sum.told+sum.closed != int64(storm) {
		t.Errorf("storm: %d sessions, %d told, %d closed; want all %d refused", sum.sessions, sum.told, sum.closed, storm)
	}
	if sum.told < int64(storm)/2 || !strings.Contains(sum.first, "faed overloaded:") {
		t.Errorf("storm: %d of %d told (first %q), want most told \"faed overloaded:\"", sum.told, storm, sum.first)
	}
	if len(after) < minProbes || testenv.Percentile(after, 99) > 200 {
		t.Errorf("refused probes told %.1f ms after their connect at the 99th percentile (%d probes), want ≤ 200 ms", testenv.Percentile(after, 99), len(after))
	}
	if grew > 128<<20 {
		t.Errorf("faed's RSS grew %d MiB in the storm, want ≤ 128 MiB", grew>>20)
	}
}

// stormSum is the storm's stress reports summed.
type stormSum struct {
	sessions, told, closed int64
	p99, worst             float64 // session latency from when due, ms: the largest of the processes'
	first                  string  // the first "faed overloaded:" answer
}

// summarize waits for the storm's loads and sums their reports; a storm
// connection served, or failed otherwise than told or closed, fails t.
func summarize(t *testing.T, storms []*load) stormSum {
	t.Helper()
	var s stormSum
	for _, l := range storms {
		rep := l.wait(2 * time.Minute)
		s.sessions += rep.Sessions
		s.told += rep.Errors["call"].Count
		s.closed += rep.Errors["io"].Count
		if s.first == "" {
			s.first = rep.Errors["call"].First
		}
		s.p99, s.worst = max(s.p99, rep.SessionLatency.P99), max(s.worst, rep.SessionLatency.Max)
		if rep.failed() != rep.Errors["call"].Count+rep.Errors["io"].Count || rep.Calls != rep.Errors["call"].Count {
			t.Errorf("storm %s: %s (%s), want every connection told or closed, none served", l.desc, rep, rep.firsts())
		}
	}
	return s
}

// minProbes is the fewest refused probes the overload case judges by.
const minProbes = 10

// probeRefusals connects to addr one connection after another until done
// and at least minProbes were refused (the admitted sessions still hold every
// slot after the storm; a short storm alone left too few), for 30 s at most,
// each making one ping, and returns, per connection refused ("faed
// overloaded:" or closed), the ms from its connect to the refusal: faed's
// part of the time to tell (cmd/faed's TestOverloadStorm measures the same);
// the stress tool's session latency adds the connect and its own scheduling.
func probeRefusals(addr string, done chan struct{}) []float64 {
	var out []float64
	stop := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-done:
			if len(out) >= minProbes || time.Now().After(stop) {
				return out
			}
		default:
		}
		c, err := dialAddr(addr, 5*time.Second)
		if err != nil {
			continue
		}
		start := time.Now()
		_, err = c.Ping(bg, ctx())
		d := time.Since(start)
		c.Close()
		if err != nil {
			out = append(out, float64(d.Microseconds())/1000)
		}
	}
}
