// Package chaos is fae's chaos suite (issue 11): real faed processes under
// load from the stress tool while a fault is injected for real — a backend
// killed with -9 or frozen with SIGSTOP, ZooKeeper stopped, a peer killed,
// SIGTERM under load, the log on a full disk, a connection storm — each
// expectation an assertion. It prints one table at the end: case, load,
// faults, calls failed, time to recover, goroutines and connections (open
// file descriptors) of faed before and after. make test runs the fast subset
// (seconds per case); FAE_CHAOS=full (make chaos) runs every case at its full
// duration and writes the table to chaos/results/<date>.md.
//
// Each case owns the servers it harms (internal/testenv); the shared servers
// of contrib/test-services serve only the backends a case leaves alone.
package chaos

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/faedtest"
	"github.com/fae-go/fae/internal/testenv"
)

// faedBin and stressBin are the binaries under test, built by TestMain
// (without -race: the suite measures behaviour under load; cmd/faed's tests
// run faed with -race).
var faedBin, stressBin string

// full is FAE_CHAOS=full: every case at its full duration (make chaos).
var full = os.Getenv("FAE_CHAOS") == "full"

// pick is fast in the fast subset, long in the full run.
func pick[T any](fast, long T) T {
	if full {
		return long
	}
	return fast
}

func TestMain(m *testing.M) {
	dir := faedtest.BuildMains("fae-chaos-", map[string]*string{"/cmd/faed": &faedBin, "/cmd/stress": &stressBin})
	start := time.Now()
	code := m.Run()
	os.RemoveAll(dir)
	if len(rows) > 0 {
		mode := "fast subset (make test)"
		if full {
			mode = "full run (make chaos, FAE_CHAOS=full)"
		}
		head := fmt.Sprintf("Chaos suite, %s, %s, %s\n\n", mode, time.Now().UTC().Format("2006-01-02 15:04 MST"),
			time.Since(start).Round(time.Second))
		fmt.Print("\n" + head)
		writeTable(os.Stdout)
		if full {
			if err := writeResults(head); err != nil {
				fmt.Fprintln(os.Stderr, err)
				code = 1
			}
		}
	}
	os.Exit(code)
}

// row is one line of the table: a case and what it measured.
type row struct {
	Case    string
	Load    string
	Faults  string
	Failed  string // calls failed, by kind
	Recover string // time from the restore (or the fault) until the expectation held again
	GoB     int    // faed's goroutines before the fault and after recovery
	GoA     int
	ConnB   int // faed's open file descriptors (sockets, listeners, logs) before and after
	ConnA   int
	Result  string // ok, or FAIL
}

var (
	rowsMu sync.Mutex
	rows   []*row
)

// newRow starts the table's row of the case t: it is added when the case
// ends, its result FAIL when any of its assertions failed.
func newRow(t *testing.T, name string) *row {
	r := &row{Case: name, GoB: -1, GoA: -1, ConnB: -1, ConnA: -1}
	t.Cleanup(func() {
		r.Result = "ok"
		if t.Failed() {
			r.Result = "FAIL"
		}
		if t.Skipped() {
			r.Result = "skipped"
		}
		rowsMu.Lock()
		rows = append(rows, r)
		rowsMu.Unlock()
	})
	return r
}

func num(n int) string {
	if n < 0 {
		return "–"
	}
	return fmt.Sprint(n)
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func writeTable(w io.Writer) {
	fmt.Fprintln(w, "| case | load | faults injected | calls failed | time to recover | goroutines before → after | connections (fds) before → after | result |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	rowsMu.Lock()
	defer rowsMu.Unlock()
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s → %s | %s → %s | %s |\n", cell(r.Case), cell(r.Load), cell(r.Faults),
			cell(r.Failed), cell(r.Recover), num(r.GoB), num(r.GoA), num(r.ConnB), num(r.ConnA), r.Result)
	}
}

// writeResults writes the table to results/<date>.md (chaos/results in the
// repository).
func writeResults(head string) error {
	if err := os.MkdirAll("results", 0o755); err != nil {
		return err
	}
	path := filepath.Join("results", time.Now().UTC().Format("2006-01-02")+".md")
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprint(f, "# "+head)
	writeTable(f)
	fmt.Fprintf(f, "\nGoroutines from faed's /engine/runtime; connections are faed's open file descriptors (/proc/<pid>/fd).\n")
	fmt.Printf("chaos: table written to chaos/%s\n", path)
	return nil
}

// baseline records n's goroutines and descriptors in r, with no session
// open but the test's own and its peers' (forwarded calls).
func baseline(t *testing.T, n *node, r *row) {
	t.Helper()
	n.base = n.stat().RPC.Active
	r.GoB, r.ConnB = n.goroutines(), n.fds()
}

// waitIdle waits until n has no session left but those the test holds.
func waitIdle(t *testing.T, n *node) {
	t.Helper()
	want := max(n.held, n.base)
	testenv.Eventually(t, 15*time.Second, fmt.Sprintf("%s to have at most %d sessions after the load", n.name, want),
		func() bool { return n.stat().RPC.Active <= want })
}

// Slack of the leak check: goroutines and descriptors a healthy faed may
// hold more after a case than before it (pool connections re-dialled to
// their idle size, a backend health check in flight).
const (
	goSlack = 12
	fdSlack = 8
)

// checkLeaks waits (up to 15 s) for n to come back to the baseline of r,
// within the slack, and records what it found.
func checkLeaks(t *testing.T, n *node, r *row) {
	t.Helper()
	waitIdle(t, n)
	checkBack(t, n, r)
}

// checkBack is checkLeaks without waiting for the sessions to end.
func checkBack(t *testing.T, n *node, r *row) {
	t.Helper()
	back := testenv.Poll(15*time.Second, func() bool {
		r.GoA, r.ConnA = n.goroutines(), n.fds()
		return r.GoA <= r.GoB+goSlack && r.ConnA <= r.ConnB+fdSlack
	})
	if !back {
		t.Errorf("leak: goroutines %d → %d (slack %d), descriptors %d → %d (slack %d)", r.GoB, r.GoA, goSlack, r.ConnB, r.ConnA, fdSlack)
	}
}

func round(d time.Duration) string { return d.Round(time.Millisecond).String() }
