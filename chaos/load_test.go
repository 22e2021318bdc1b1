package chaos

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

// The stress tool's -x bits (cmd/stress/calls.go).
const (
	xPing     = 2
	xIDNext   = 4
	xLcache   = 8
	xMemcache = 16
	xMongo    = 32
	xMySQL    = 64
	xRedis    = 128
)

// stressReport is the part of the stress tool's -json report the cases read.
type stressReport struct {
	ElapsedS float64 `json:"elapsed_s"`
	Calls    int64   `json:"calls"`
	Sessions int64   `json:"sessions"`
	Latency  struct {
		P99 float64 `json:"p99_ms"`
		Max float64 `json:"max_ms"`
	} `json:"latency"`
	SessionLatency struct {
		P50 float64 `json:"p50_ms"`
		P99 float64 `json:"p99_ms"`
		Max float64 `json:"max_ms"`
	} `json:"session_latency"`
	Errors map[string]struct {
		Count int64  `json:"count"`
		First string `json:"first"`
	} `json:"errors"`
}

// failed is the number of errors of every kind.
func (r *stressReport) failed() int64 {
	var n int64
	for _, e := range r.Errors {
		n += e.Count
	}
	return n
}

// String is "calls N, failed M (kind k, …)".
func (r *stressReport) String() string {
	var kinds []string
	for k, e := range r.Errors {
		if e.Count > 0 {
			kinds = append(kinds, fmt.Sprintf("%s %d", k, e.Count))
		}
	}
	sort.Strings(kinds)
	s := fmt.Sprintf("%d calls, %d failed", r.Calls, r.failed())
	if len(kinds) > 0 {
		s += " (" + strings.Join(kinds, ", ") + ")"
	}
	return s
}

// firsts is the first message of each kind that occurred.
func (r *stressReport) firsts() string {
	var s []string
	for k, e := range r.Errors {
		if e.Count > 0 {
			s = append(s, k+": "+e.First)
		}
	}
	sort.Strings(s)
	return strings.Join(s, "; ")
}

// load is one stress process running in the background.
type load struct {
	t    *testing.T
	desc string
	cmd  *exec.Cmd
	out  *testenv.SyncBuffer
	errs *testenv.SyncBuffer
	done chan struct{}
	rep  *stressReport
}

// startLoad runs the stress binary with args (plus -json -erroff), until
// stop (it is also stopped when the test ends).
func startLoad(t *testing.T, desc string, args ...string) *load {
	t.Helper()
	l := &load{t: t, desc: desc, out: new(testenv.SyncBuffer), errs: new(testenv.SyncBuffer), done: make(chan struct{})}
	l.cmd = exec.Command(stressBin, append([]string{"-json", "-erroff"}, args...)...)
	l.cmd.Stdout, l.cmd.Stderr = l.out, l.errs
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { l.cmd.Wait(); close(l.done) }()
	t.Cleanup(func() { l.cmd.Process.Kill(); <-l.done })
	return l
}

// runLoad runs stress to its end (args must bound it) and returns its report.
func runLoad(t *testing.T, desc string, args ...string) *stressReport {
	t.Helper()
	return startLoad(t, desc, args...).wait(5 * time.Minute)
}

// stop interrupts the load (the tool then reports) and returns its report.
func (l *load) stop() *stressReport {
	l.t.Helper()
	l.cmd.Process.Signal(syscall.SIGINT)
	return l.wait(30 * time.Second)
}

// wait waits up to timeout for the load to end and returns its report.
func (l *load) wait(timeout time.Duration) *stressReport {
	l.t.Helper()
	if l.rep != nil {
		return l.rep
	}
	select {
	case <-l.done:
	case <-time.After(timeout):
		l.cmd.Process.Kill()
		l.t.Fatalf("stress (%s) did not end within %s", l.desc, timeout)
	}
	var rep stressReport
	if err := json.Unmarshal([]byte(l.out.String()), &rep); err != nil {
		l.t.Fatalf("stress (%s) report %q: %v; stderr %s", l.desc, l.out.String(), err, tail(l.errs.String(), 2000))
	}
	l.rep = &rep
	return l.rep
}
