package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/testenv"
)

// engineCalls reads /engine/stat's rpc.calls_total and rpc.calls_failed.
func engineCalls(t *testing.T, httpAddr string) (calls, failed int64) {
	t.Helper()
	body, code := httpGet(t, "http://"+httpAddr+"/engine/stat")
	if code != 200 {
		t.Fatalf("/engine/stat: %d %s", code, body)
	}
	var st struct {
		RPC struct {
			Calls  int64 `json:"calls_total"`
			Failed int64 `json:"calls_failed"`
		} `json:"rpc"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/engine/stat: %v\n%s", err, body)
	}
	return st.RPC.Calls, st.RPC.Failed
}

// scrape reads /metrics and returns each sample's value by its name and
// labels, as in the exposition: `fae_calls_total{method="ping",outcome="ok"}`.
func scrape(t *testing.T, httpAddr string) map[string]float64 {
	t.Helper()
	body, code := httpGet(t, "http://"+httpAddr+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	out := map[string]float64{}
	for name, fam := range fams {
		for _, m := range fam.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+`"`+l.GetValue()+`"`)
			}
			key := name
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[key] = m.Gauge.GetValue()
			case m.Histogram != nil:
				out[key+"_count"] = float64(m.Histogram.GetSampleCount())
			case m.Summary != nil:
				out[key+"_count"] = float64(m.Summary.GetSampleCount())
			}
		}
	}
	return out
}

// TestCountersExact: N pings and M refused calls from a test client add
// exactly N+M calls to /engine/stat and fae_engine_calls_total, exactly N
// ok pings and M failed ones to fae_calls_total, and N observations to the
// ping latency histogram: a call refused for its Context is counted, not
// timed (the original's TODO doubted its own counters).
func TestCountersExact(t *testing.T) {
	f, c := startFaedSession(t, "")
	if _, err := c.Ping(bg, ctx()); err != nil { // the session is open and served
		t.Fatal(err)
	}
	calls0, failed0 := engineCalls(t, f.httpAddr)
	m0 := scrape(t, f.httpAddr)

	const n, bad = 137, 11
	for i := 0; i < n; i++ {
		if _, err := c.Ping(bg, ctx()); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < bad; i++ {
		_, err := c.Ping(bg, &rpc.Context{Rid: 0, Reason: "x"})
		wantErrContains(t, "ping with rid 0", err, "rid")
	}
	// The engine counts a call when its reply is flushed, before the client
	// can read it: no wait is needed.
	calls1, failed1 := engineCalls(t, f.httpAddr)
	m1 := scrape(t, f.httpAddr)

	if got := calls1 - calls0; got != n+bad {
		t.Errorf("/engine/stat calls_total grew by %d, want %d", got, n+bad)
	}
	if got := m1["fae_engine_calls_total"] - m0["fae_engine_calls_total"]; got != n+bad {
		t.Errorf("fae_engine_calls_total grew by %v, want %d", got, n+bad)
	}
	okKey := `fae_calls_total{method="ping",outcome="ok"}`
	if got := m1[okKey] - m0[okKey]; got != n {
		t.Errorf("%s grew by %v, want %d", okKey, got, n)
	}
	var failedPings float64
	for k, v := range m1 {
		if strings.HasPrefix(k, `fae_calls_total{method="ping",`) && k != okKey {
			failedPings += v - m0[k]
		}
	}
	if failedPings != bad {
		t.Errorf("fae_calls_total{method=\"ping\"} outcomes other than ok grew by %v, want %d", failedPings, bad)
	}
	if got := failed1 - failed0; got != bad {
		t.Errorf("/engine/stat calls_failed grew by %d, want %d", got, bad)
	}
	if got := m1["fae_engine_call_errors_total"] - m0["fae_engine_call_errors_total"]; got != bad {
		t.Errorf("fae_engine_call_errors_total grew by %v, want %d", got, bad)
	}
	hist := `fae_call_duration_seconds{method="ping"}_count`
	if _, ok := m1[hist]; !ok {
		t.Fatalf("no %s in /metrics", hist)
	}
	if got := m1[hist] - m0[hist]; got != n {
		t.Errorf("%s grew by %v, want %d", hist, got, n)
	}
}

// pprofRE finds the pprof address in faed's "faed started" line.
var pprofRE = regexp.MustCompile(`msg="faed started".* pprof=("")?(\S*)`)

// TestPprof: pprof_listen_addr serves Go's profiles on its own loopback
// listener; the HTTP API does not, and neither does the RPC port.
func TestPprof(t *testing.T) {
	m := allModes[0]
	dir := t.TempDir()
	f := startFaedIn(t, dir, strings.Replace(m.config(dir, "", ""), "{", `{
    pprof_listen_addr: "127.0.0.1:0"`, 1))
	mt := pprofRE.FindStringSubmatch(f.out.String())
	if mt == nil || mt[2] == "" {
		t.Fatalf("no pprof address in the start line:\n%s", f.out.String())
	}
	addr := mt[2]
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("pprof on %s, want loopback", addr)
	}
	body, code := httpGet(t, "http://"+addr+"/debug/pprof/goroutine?debug=1")
	if code != 200 || !strings.Contains(body, "goroutine profile:") {
		t.Fatalf("/debug/pprof/goroutine: %d %.200s", code, body)
	}
	if body, code := httpGet(t, "http://"+addr+"/debug/pprof/heap?debug=1"); code != 200 || !strings.Contains(body, "heap profile") {
		t.Fatalf("/debug/pprof/heap: %d %.200s", code, body)
	}
	if body, code := httpGet(t, "http://"+f.httpAddr+"/debug/pprof/"); code != 404 {
		t.Errorf("the HTTP API serves /debug/pprof/: %d %.200s", code, body)
	}
}

// TestPprofOffByDefault: without pprof_listen_addr there is no pprof listener.
func TestPprofOffByDefault(t *testing.T) {
	f, _ := startFaedSession(t, "")
	if mt := pprofRE.FindStringSubmatch(f.out.String()); mt == nil || mt[2] != "" {
		t.Fatalf("pprof address %q in the start line, want none:\n%s", mt, f.out.String())
	}
}

// TestMetricsLogfile: every rpc.stats_output_interval faed appends a JSON
// line of its main figures to metrics_logfile (relative to its working
// directory, as the original), and a last one when it stops; the calls in it
// are exact.
func TestMetricsLogfile(t *testing.T) {
	m := allModes[0]
	dir := t.TempDir()
	conf := strings.Replace(m.config(dir, `stats_output_interval: "300ms"`, ""), "{", `{
    metrics_logfile: "figures/metrics.log"`, 1)
	f := startFaedIn(t, dir, conf)
	c := f.dial(t, m)
	const n = 25
	for i := 0; i < n; i++ {
		if _, err := c.Ping(bg, ctx()); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "figures", "metrics.log")
	type line struct {
		Time string `json:"time"`
		RPC  struct {
			Calls    int64 `json:"calls_total"`
			Sessions int64 `json:"sessions_active"`
		} `json:"rpc"`
		Servant struct {
			Methods map[string]struct {
				Calls int64 `json:"calls"`
			} `json:"methods"`
		} `json:"servant"`
	}
	read := func() []line {
		fh, err := os.Open(path)
		if err != nil {
			return nil
		}
		defer fh.Close()
		var lines []line
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var l line
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Fatalf("%s: a line is not JSON: %v\n%s", path, err, sc.Text())
			}
			lines = append(lines, l)
		}
		return lines
	}
	// Two lines written after the pings: both must count every call.
	var after []line
	testenv.Eventually(t, 10*time.Second, "two metrics lines after the calls", func() bool {
		after = after[:0]
		for _, l := range read() {
			if l.RPC.Calls >= n {
				after = append(after, l)
			}
		}
		return len(after) >= 2
	})
	for _, l := range after {
		if _, err := time.Parse(time.RFC3339, l.Time); err != nil {
			t.Errorf("time %q: %v", l.Time, err)
		}
		if l.RPC.Calls != n || l.Servant.Methods["ping"].Calls != n || l.RPC.Sessions != 1 {
			t.Errorf("line %+v: want calls_total %d, ping calls %d, 1 session", l, n, n)
		}
	}
}

// TestMetricsLogfileAtStop: a faed stopped before its first interval still
// leaves one line, written at exit, with every call in it.
func TestMetricsLogfileAtStop(t *testing.T) {
	m := allModes[0]
	dir := t.TempDir()
	conf := strings.Replace(m.config(dir, `stats_output_interval: "1h"`, ""), "{", `{
    metrics_logfile: "metrics.log"`, 1)
	f := startFaedIn(t, dir, conf)
	c := f.dial(t, m)
	const n = 7
	for i := 0; i < n; i++ {
		if _, err := c.Ping(bg, ctx()); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "metrics.log")
	if b, err := os.ReadFile(path); err != nil || len(b) != 0 {
		t.Fatalf("%s before the stop: %q %v, want an empty file", path, b, err)
	}
	if code := f.stop(syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	var l struct {
		RPC struct {
			Calls int64 `json:"calls_total"`
		} `json:"rpc"`
	}
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &l) != nil || l.RPC.Calls != n {
		t.Fatalf("%s after the stop: %q, want one JSON line with calls_total %d", path, b, n)
	}
}

// TestPostEngineStop: POST /engine/stop drains and stops faed as SIGTERM
// does (exit 0); a GET changes nothing.
func TestPostEngineStop(t *testing.T) {
	f, c := startFaedSession(t, "")
	if body, code := httpGet(t, "http://"+f.httpAddr+"/engine/stop"); code != 405 || !strings.Contains(body, "POST only") {
		t.Fatalf("GET /engine/stop: %d %s, want 405", code, body)
	}
	if _, err := c.Ping(bg, ctx()); err != nil {
		t.Fatalf("ping after GET /engine/stop: %v", err)
	}
	resp, err := http.Post("http://"+f.httpAddr+"/engine/stop", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"stopping"`) {
		t.Fatalf("POST /engine/stop: %d %s", resp.StatusCode, body)
	}
	select {
	case <-f.done:
	case <-time.After(10 * time.Second):
		t.Fatal("faed still running 10s after POST /engine/stop")
	}
	if f.exitCode != 0 {
		t.Fatalf("exit %d after POST /engine/stop, want 0", f.exitCode)
	}
	for _, want := range []string{`msg="stop requested" by="POST /engine/stop"`, `msg=draining`, `msg="faed stopped"`} {
		if !strings.Contains(f.out.String(), want) {
			t.Errorf("output lacks %s", want)
		}
	}
}

// TestTraceStream: with profiler_rate 10000 every call is traced; the trace
// stream goes to log.trace_file, rotated with the log's settings, and not
// into the main log; /svt/stat counts the calls by reason and the traced
// calls.
func TestTraceStream(t *testing.T) {
	m := allModes[0]
	dir := t.TempDir()
	conf := strings.Replace(m.config(dir, "", "profiler_rate: 10000\n        profiler_max_body_size: 8"), "{", `{
    log: { trace_file: "traces/trace.log" }`, 1)
	f := startFaedIn(t, dir, conf)
	c := f.dial(t, m)
	rid := time.Now().UnixNano()
	for i := 0; i < 3; i++ {
		if _, err := c.IDNextWithTag(bg, &rpc.Context{Rid: rid, Reason: "shop.buy.42", UID: 9}, 5); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "traces", "trace.log")
	want := fmt.Sprintf("rid=%d reason=shop.buy.42 uid=9", rid)
	testenv.Eventually(t, 5*time.Second, "3 records of the rid in "+path, func() bool {
		b, _ := os.ReadFile(path)
		return strings.Count(string(b), want) == 3
	})
	b, _ := os.ReadFile(path)
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if strings.Contains(l, want) && (!strings.Contains(l, "method=id.nextag") || !strings.Contains(l, `args="tag=5"`)) {
			t.Errorf("trace record %q: want method id.nextag and args tag=5", l)
		}
	}
	if strings.Contains(f.out.String(), want) {
		t.Error("the traced calls are in the main log too")
	}
	body, _ := httpGet(t, "http://"+f.httpAddr+"/svt/stat")
	var st struct {
		Reasons []struct {
			Reason string `json:"reason"`
			Calls  int64  `json:"calls"`
		} `json:"reasons"`
		Traces map[string]int64 `json:"traces"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range st.Reasons {
		if r.Reason == "shop.buy.?" && r.Calls == 3 {
			found = true
		}
	}
	if !found || st.Traces["traced_rid"] < 3 {
		t.Errorf("/svt/stat reasons %+v traces %v: want shop.buy.? with 3 calls, at least 3 traced", st.Reasons, st.Traces)
	}
}

// TestTraceStreamInMainLog: without log.trace_file the trace records go into
// the main log, marked stream=trace, whatever the log's level.
func TestTraceStreamInMainLog(t *testing.T) {
	m := allModes[0]
	dir := t.TempDir()
	f := startFaedIn(t, dir, m.config(dir, "", "profiler_rate: 10000"))
	resp, err := http.Post("http://"+f.httpAddr+"/engine/loglevel", "application/x-www-form-urlencoded",
		strings.NewReader("level=warn"))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST /engine/loglevel level=warn: %v %v", resp, err)
	}
	resp.Body.Close()
	c := f.dial(t, m)
	rid := time.Now().UnixNano()
	if _, err := c.Ping(bg, &rpc.Context{Rid: rid, Reason: "r"}); err != nil {
		t.Fatal(err)
	}
	waitLog(t, f, fmt.Sprintf(`level=INFO msg=call stream=trace method=ping rid=%d `, rid), 1)
}
