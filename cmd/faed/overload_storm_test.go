package main_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

// The overload storm: client processes (this test binary, re-run as
// TestOverloadStormClient) first fill max_outstanding_sessions with sessions
// that stay, then open many more connections at once, each making one call,
// while the admitted sessions keep calling. Default: limit 200, 1,200
// connections from 2 processes (seconds). FAE_OVERLOAD_BIG=1: the issue's
// measure, limit 2,000 and 12,000 connections from 2 processes (README,
// "Overload, who may call, foreign bytes").
const stormClientEnv = "FAE_OVERLOAD_STORM_CLIENT" // "addr admitted storm" for a client process

// stormResult is what one client process reports, as a JSON line.
type stormResult struct {
	Outcomes      map[string]int `json:"outcomes"`       // storm connections by outcome
	ToldMs        []float64      `json:"told_ms"`        // per refused connection: dial start to answer or close, ms
	AfterMs       []float64      `json:"after_ms"`       // per refused connection: connected to answer or close, ms
	ConnectMs     []float64      `json:"connect_ms"`     // per storm connection: the TCP connect, ms
	AdmittedCalls int64          `json:"admitted_calls"` // calls on the admitted sessions during the storm
	AdmittedFails int64          `json:"admitted_fails"`
	FirstFail     string         `json:"first_fail"`
}

func TestOverloadStorm(t *testing.T) {
	// Per process: limit/2 admitted sessions, perProc storm connections,
	// inflight of them connecting at once.
	limit, perProc, inflight := 200, 500, 50
	if os.Getenv("FAE_OVERLOAD_BIG") != "" {
		limit, perProc, inflight = 2000, 5000, 200
	}
	// Connections each process opens at once: 50 (200 big) unless
	// FAE_OVERLOAD_INFLIGHT says otherwise; 0 = all at once, where the
	// kernel's SYN queue and the clients' own CPU dominate the figures.
	if v, ok := os.LookupEnv("FAE_OVERLOAD_INFLIGHT"); ok {
		inflight, _ = strconv.Atoi(v)
	}
	m := allModes[0]
	dir := t.TempDir()
	f := startFaedIn(t, dir, m.config(dir, fmt.Sprintf("max_outstanding_sessions: %d\nsession_timeout: \"300s\"", limit), ""))
	var procs []*stormProc
	for range 2 {
		procs = append(procs, startStormClient(t, fmt.Sprintf("%s %d %d %d", f.rpcAddr, limit/2, perProc, inflight)))
	}
	for _, p := range procs {
		p.expect(t, "ready")
	}
	sampleStop := testenv.SampleRSS(f.cmd.Process.Pid) // faed's RSS through the storm
	start := time.Now()
	for _, p := range procs {
		io.WriteString(p.stdin, "go\n")
	}
	var all stormResult
	all.Outcomes = map[string]int{}
	for _, p := range procs {
		line := p.expect(t, "{")
		var r stormResult
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("client result %q: %v", line, err)
		}
		for k, v := range r.Outcomes {
			all.Outcomes[k] += v
		}
		all.ToldMs = append(all.ToldMs, r.ToldMs...)
		all.AfterMs = append(all.AfterMs, r.AfterMs...)
		all.ConnectMs = append(all.ConnectMs, r.ConnectMs...)
		all.AdmittedCalls += r.AdmittedCalls
		all.AdmittedFails += r.AdmittedFails
		if all.FirstFail == "" {
			all.FirstFail = r.FirstFail
		}
	}
	elapsed := time.Since(start)
	rssBase, rssPeak := sampleStop()
	got := scrape(t, f.httpAddr)
	slices.Sort(all.ToldMs)
	slices.Sort(all.AfterMs)
	slices.Sort(all.ConnectMs)
	t.Logf("limit %d, %d admitted sessions, %d storm connections from 2 processes (connecting at once per process: %d, 0 = all) in %s",
		limit, limit, 2*perProc, inflight, elapsed.Round(time.Millisecond))
	t.Logf("storm outcomes %v; told (dial start to answer or close) p50 %.1f ms, p99 %.1f ms, max %.1f ms; connect p50 %.1f ms, p99 %.1f ms, max %.1f ms",
		all.Outcomes, pct(all.ToldMs, 50), pct(all.ToldMs, 99), pct(all.ToldMs, 100),
		pct(all.ConnectMs, 50), pct(all.ConnectMs, 99), pct(all.ConnectMs, 100))
	t.Logf("told after the connect: p50 %.1f ms, p99 %.1f ms, max %.1f ms", pct(all.AfterMs, 50), pct(all.AfterMs, 99), pct(all.AfterMs, 100))
	t.Logf("admitted sessions: %d calls during the storm, %d failed %s", all.AdmittedCalls, all.AdmittedFails, all.FirstFail)
	t.Logf("faed RSS: %d MiB before, %d MiB peak; refused: overloaded %v, no_call %v, dropped %v; waited %v",
		rssBase>>20, rssPeak>>20, got[`fae_connections_refused_total{reason="overloaded"}`],
		got[`fae_connections_refused_total{reason="overloaded_no_call"}`], got[`fae_connections_refused_total{reason="overloaded_dropped"}`],
		got["fae_accept_waited_total"])

	if all.AdmittedFails != 0 || all.AdmittedCalls == 0 {
		t.Errorf("admitted sessions: %d calls, %d failed (%s); want calls, none failed", all.AdmittedCalls, all.AdmittedFails, all.FirstFail)
	}
	if n := all.Outcomes["overloaded"] + all.Outcomes["closed"]; n != 2*perProc {
		t.Errorf("storm: %v; want every one of %d connections refused (answered or closed)", all.Outcomes, 2*perProc)
	}
	if inflight > 0 && all.Outcomes["overloaded"] < perProc {
		t.Errorf("storm: %d of %d answered \"faed overloaded\", want most", all.Outcomes["overloaded"], 2*perProc)
	}
	if p := pct(all.AfterMs, 99); p > 200*raceSlowdown() {
		t.Errorf("refused clients told %.1f ms after their connect at the 99th percentile, want ≤ %v ms", p, 200*raceSlowdown())
	}
	if grew := rssPeak - rssBase; grew > 128<<20 {
		t.Errorf("faed RSS grew %d MiB in the storm, want ≤ 128 MiB", grew>>20)
	}
	if got["fae_sessions"] != float64(limit) {
		t.Errorf("fae_sessions = %v after the storm, want the %d admitted", got["fae_sessions"], limit)
	}
}

// pct is the p-th percentile of a sorted slice.
var pct = testenv.Percentile

// raceSlowdown is the factor a bound on time is loosened by under -race.
func raceSlowdown() float64 {
	if raceEnabled {
		return 5
	}
	return 1
}

// stormProc is one client process.
type stormProc struct {
	stdin io.WriteCloser
	out   *bufio.Scanner
}

func startStormClient(t *testing.T, spec string) *stormProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestOverloadStormClient$", "-test.v")
	cmd.Env = append(os.Environ(), stormClientEnv+"="+spec)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	return &stormProc{stdin: stdin, out: sc}
}

// expect returns the client's next output line that starts with prefix.
func (p *stormProc) expect(t *testing.T, prefix string) string {
	t.Helper()
	for p.out.Scan() {
		if line := p.out.Text(); strings.HasPrefix(line, prefix) {
			return line
		}
	}
	t.Fatalf("client process ended before %q: %v", prefix, p.out.Err())
	return ""
}

// TestOverloadStormClient is a storm client process (TestOverloadStorm runs
// it); skipped otherwise.
func TestOverloadStormClient(t *testing.T) {
	spec := os.Getenv(stormClientEnv)
	if spec == "" {
		t.Skip("a client process of TestOverloadStorm")
	}
	var addr string
	var admitted, storm, inflight int
	fmt.Sscan(spec, &addr, &admitted, &storm, &inflight)
	if inflight <= 0 {
		inflight = storm
	}
	slots := make(chan struct{}, inflight)
	f := &faed{rpcAddr: addr}
	m := allModes[0]
	sessions := make([]*client, admitted)
	for i := range sessions {
		c, err := f.tryDial(m)
		if err == nil {
			_, err = c.Ping(bg, ctx())
		}
		if err != nil {
			fmt.Printf("admitted session %d: %v\n", i, err)
			os.Exit(1)
		}
		sessions[i] = c
	}
	fmt.Println("ready")
	for b := make([]byte, 1); b[0] != '\n'; { // "go"
		if _, err := os.Stdin.Read(b); err != nil {
			os.Exit(1)
		}
	}

	var res stormResult
	var calls, fails atomic.Int64
	var firstFail atomic.Value
	done := make(chan struct{})
	var checkers sync.WaitGroup
	for w := range 4 {
		// The admitted sessions keep calling through the storm: worker w calls the
		// sessions i ≡ w (mod 4), so no two workers share a client (admitted is a
		// multiple of 4).
		checkers.Add(1)
		go func() {
			defer checkers.Done()
			for i := w; ; i += 4 {
				if i >= len(sessions) {
					i = w
				}
				select {
				case <-done:
					return
				default:
				}
				if _, err := sessions[i].Ping(bg, ctx()); err != nil {
					fails.Add(1)
					firstFail.CompareAndSwap(nil, err.Error())
				}
				calls.Add(1)
			}
		}()
	}
	type one struct {
		outcome       string
		told, connect float64
	}
	results := make(chan one, storm)
	for range storm {
		go func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			t0 := time.Now()
			c, err := f.tryDial(m)
			if err != nil {
				results <- one{outcome: "dial"}
				return
			}
			connected := time.Since(t0)
			_, err = c.Ping(bg, ctx())
			c.Close()
			o := one{told: ms(time.Since(t0)), connect: ms(connected)}
			switch {
			case err == nil:
				o.outcome = "served"
			case strings.Contains(err.Error(), "faed overloaded:"):
				o.outcome = "overloaded"
			case errors.Is(err, io.EOF) || strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "reset"):
				o.outcome = "closed"
			default:
				o.outcome = "other: " + err.Error()
			}
			results <- o
		}()
	}
	res.Outcomes = map[string]int{}
	for range storm {
		o := <-results
		res.Outcomes[o.outcome]++
		if o.outcome == "overloaded" || o.outcome == "closed" {
			res.ToldMs = append(res.ToldMs, o.told)
			res.AfterMs = append(res.AfterMs, o.told-o.connect)
		}
		if o.outcome != "dial" {
			res.ConnectMs = append(res.ConnectMs, o.connect)
		}
	}
	close(done)
	checkers.Wait()
	for _, c := range sessions { // every admitted session once more after the storm
		if _, err := c.Ping(bg, ctx()); err != nil {
			fails.Add(1)
			firstFail.CompareAndSwap(nil, err.Error())
		}
		calls.Add(1)
	}
	res.AdmittedCalls, res.AdmittedFails = calls.Load(), fails.Load()
	if s, ok := firstFail.Load().(string); ok {
		res.FirstFail = s
	}
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
	io.Copy(io.Discard, os.Stdin) // the admitted sessions stay until the test ends
	// Unreferenced, the sessions' sockets would be closed by the net
	// package's finalizers at this process's next collection, while the test
	// still counts them in fae_sessions (it saw 100 or 150 of the 200, at
	// random, most often under go test -count=N).
	runtime.KeepAlive(sessions)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
