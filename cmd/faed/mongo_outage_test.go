package main_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/fae-go/fae/internal/testenv"
	"github.com/fae-go/fae/pool"
)

// mgOutcome is one call of the outage test.
type mgOutcome struct {
	caller     int
	start, end time.Time
	err        error
}

// mgLoad runs callers sessions, each calling mg_upsert_id in a loop, and records every outcome.
type mgLoad struct {
	mu   sync.Mutex
	outs []mgOutcome
	stop chan struct{}
	wg   sync.WaitGroup
}

func startMgLoad(t *testing.T, f *faed, callers int) *mgLoad {
	l := &mgLoad{stop: make(chan struct{})}
	change := bs(t, bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}})
	for i := 0; i < callers; i++ {
		c := f.dial(t, allModes[0])
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				case <-time.After(2 * time.Millisecond): // gentle on a shared machine
				}
				start := time.Now()
				_, err := c.MgUpsertID(bg, ctx(), "default", "load", 0, int32(i), change)
				l.mu.Lock()
				l.outs = append(l.outs, mgOutcome{i, start, time.Now(), err})
				l.mu.Unlock()
			}
		}()
	}
	t.Cleanup(l.end)
	return l
}

func (l *mgLoad) end() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// since returns the outcomes of the calls that started at or after t0 (and before t1 unless zero).
func (l *mgLoad) since(t0, t1 time.Time) []mgOutcome {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []mgOutcome
	for _, o := range l.outs {
		if !o.start.Before(t0) && (t1.IsZero() || o.end.Before(t1)) {
			out = append(out, o)
		}
	}
	return out
}

// succeeded is the number of callers with a successful call started at or after t0.
func (l *mgLoad) succeeded(t0 time.Time) int {
	ok := map[int]bool{}
	for _, o := range l.since(t0, time.Time{}) {
		if o.err == nil {
			ok[o.caller] = true
		}
	}
	return len(ok)
}

// TestMongoServerKilledUnderLoad: 16 callers against a FerretDB the test owns.
// While it is down, calls fail fast with errors naming the server, and after
// failure_allowance failures the breaker opens and refuses calls at once; after
// the restart every caller succeeds again within retry_interval + a few seconds.
func TestMongoServerKilledUnderLoad(t *testing.T) {
	const allowance, retry, callers = 3, 2 * time.Second, 16
	fdb := testenv.StartFerretDB(t)
	f, _ := startFaedSession(t, mgSection(fmt.Sprintf(`connect_timeout: "300ms"
 io_timeout: "2s"
 heartbeat_interval: 1
 breaker: { failure_allowance: %d, retry_interval: %q }`, allowance, retry), mgServer("default", fdb.Addr(), "fae_outage")))
	load := startMgLoad(t, f, callers)

	t0 := time.Now()
	testenv.Eventually(t, 10*time.Second, "every caller to succeed while the server is up", func() bool {
		return load.succeeded(t0) == callers
	})
	up := load.since(t0, time.Time{})
	for _, o := range up {
		if o.err != nil {
			t.Fatalf("caller %d while the server is up: %v", o.caller, o.err)
		}
	}

	stopping := time.Now() // the server stops answering during Stop, which waits for its exit
	fdb.Stop()
	stopped := time.Now()
	addr := fdb.Addr()
	var firstOpen time.Time // when the first refusal of the open breaker was answered
	testenv.Eventually(t, 10*time.Second, "the breaker to open", func() bool {
		firstOpen = firstRefusal(load.since(stopping, time.Time{}), addr)
		return !firstOpen.IsZero()
	})
	// At least one half-open probe while still down: a call past retry_interval
	// that the breaker let through, failed, and a refusal after it.
	testenv.Eventually(t, retry+10*time.Second, "a failed probe and the breaker open again", func() bool {
		return reopened(load.since(firstOpen.Add(retry), time.Time{}), addr)
	})
	restart := time.Now()
	checkMgOutage(t, load.since(stopping, restart), stopped, addr, allowance)

	fdb.Start()
	back := time.Now()
	testenv.Eventually(t, retry+5*time.Second, "every caller to succeed after the restart", func() bool {
		return load.succeeded(back) == callers
	})
	t.Logf("up: %d calls; Stop took %s; down %s: %d calls; all %d callers back %s after the restart",
		len(up), stopped.Sub(stopping).Round(time.Millisecond), restart.Sub(stopping).Round(time.Millisecond),
		len(load.since(stopping, restart)), callers, time.Since(back).Round(time.Millisecond))
	load.end()
}

// firstRefusal is when the first of outs refused by the open breaker ended (zero: none).
func firstRefusal(outs []mgOutcome, addr string) (first time.Time) {
	for _, o := range outs {
		if mgOutageKind(o.err, addr) == "circuit open" && (first.IsZero() || o.end.Before(first)) {
			first = o.end
		}
	}
	return first
}

// reopened reports whether outs hold a failed call the breaker let through
// (a probe) and a refusal that started after it ended.
func reopened(outs []mgOutcome, addr string) bool {
	var probeEnd time.Time
	for _, o := range outs {
		if k := mgOutageKind(o.err, addr); k != "ok" && k != "circuit open" && (probeEnd.IsZero() || o.end.Before(probeEnd)) {
			probeEnd = o.end
		}
	}
	return !probeEnd.IsZero() && slices.ContainsFunc(outs, func(o mgOutcome) bool {
		return mgOutageKind(o.err, addr) == "circuit open" && o.start.After(probeEnd)
	})
}

// errText is how a faed error of method (mg_<method>) reaches a Thrift client.
func errText(method, s string) string { return "Internal error processing mg_" + method + ": " + s }

// checkMgOutage checks the calls made from the server's stop on; it was gone at stopped.
func checkMgOutage(t *testing.T, down []mgOutcome, stopped time.Time, addr string, allowance int) {
	t.Helper()
	var firstOpen time.Time // when the first refusal of the open breaker was answered
	var openTimes []time.Duration
	kinds := map[string]int{}
	for _, o := range down {
		kind := mgOutageKind(o.err, addr)
		kinds[kind]++
		switch {
		case o.start.Before(stopped): // sent while FerretDB was shutting down: any answer
		case kind == "ok":
			t.Errorf("caller %d succeeded while the server was down", o.caller)
		case kind == "circuit open":
			openTimes = append(openTimes, o.end.Sub(o.start))
			if firstOpen.IsZero() || o.end.Before(firstOpen) {
				firstOpen = o.end
			}
		case kind == "unexpected":
			t.Errorf("caller %d: unexpected error while down: %v", o.caller, o.err)
		case o.end.Sub(o.start) > 1500*time.Millisecond:
			t.Errorf("caller %d failed after %s, want about connect_timeout (300ms): %v", o.caller, o.end.Sub(o.start), o.err)
		}
	}
	t.Logf("while down: %v", kinds)
	// The failures that opened the breaker started before the first refusal was answered.
	if failedBefore := countMg(down, func(o mgOutcome) bool {
		k := mgOutageKind(o.err, addr)
		return k != "ok" && k != "circuit open" && o.start.Before(firstOpen)
	}); failedBefore < allowance {
		t.Errorf("breaker opened after %d failures, want at least failure_allowance %d", failedBefore, allowance)
	}
	slices.Sort(openTimes)
	n := len(openTimes)
	if n == 0 {
		t.Fatal("no call was refused by the open breaker")
	}
	// An open breaker answers without I/O; the bounds leave room for a loaded
	// 2-core machine running the race detector (seen: a max over 300ms).
	if n < len(down)/2 || openTimes[n/2] > 50*time.Millisecond || openTimes[n-1] > time.Second {
		t.Errorf("%d of %d calls refused by the open breaker, median %s, max %s; want most, fast", n, len(down), openTimes[n/2], openTimes[n-1])
	}
}

// mgOutageKind is "ok", "circuit open", the kind of a server failure, or "unexpected".
func mgOutageKind(err error, addr string) string {
	if err == nil {
		return "ok"
	}
	at := errText("upsert_id", `mongodb upsert: pool "default", server default (`+addr+"): ")
	if err.Error() == at+"circuit open" {
		return "circuit open"
	}
	at += "server failure: "
	for _, kind := range []string{"server unreachable (no connection within connect_timeout 300ms)",
		"network error", "connections dropped after another call failed"} {
		if strings.HasPrefix(err.Error(), at+kind+": ") {
			return kind
		}
	}
	return "unexpected"
}

func countMg(outs []mgOutcome, match func(mgOutcome) bool) (n int) {
	for _, o := range outs {
		if match(o) {
			n++
		}
	}
	return n
}

// TestMongoServerHangs: a FerretDB the test owns is frozen with SIGSTOP (a real
// hung server: the kernel still accepts connections, nothing answers). Each
// call fails after io_timeout, naming the server, and counts for the breaker
// because the health check (on a connection of its own) fails too; after
// exactly failure_allowance of them the breaker opens and calls are refused
// without waiting for the server. After SIGCONT the first probe, due at most
// retry_interval after the breaker opened, succeeds.
func TestMongoServerHangs(t *testing.T) {
	const allowance, ioTimeout, retry = 2, 500 * time.Millisecond, time.Second
	fdb := testenv.StartFerretDB(t)
	_, c := startFaedSession(t, mgSection(fmt.Sprintf(`connect_timeout: "300ms"
 io_timeout: %q
 breaker: { failure_allowance: %d, retry_interval: %q }`, ioTimeout, allowance, retry), mgServer("default", fdb.Addr(), "fae_hang")))
	count := func() (time.Duration, error) {
		start := time.Now()
		_, err := c.MgCount(bg, ctx(), "default", "t", 0, nil)
		return time.Since(start), err
	}
	if _, err := count(); err != nil {
		t.Fatal(err)
	}
	fdb.Freeze()
	at := fmt.Sprintf(`mongodb count: pool "default", server default (%s): `, fdb.Addr())
	open := errText("count", at+"circuit open")
	if failures := failUntilOpen(t, count, at, open, ioTimeout+pool.HealthCheckTimeout+time.Second, allowance); failures != allowance {
		t.Errorf("the breaker opened after %d failures, want failure_allowance %d", failures, allowance)
	}
	for i := 0; i < 3; i++ { // refused, without waiting for the server
		d, err := count()
		if err == nil || err.Error() != open || d >= ioTimeout {
			t.Errorf("call %d with the breaker open: %v after %s; want %q at once", i, err, d, open)
		}
	}
	fdb.Thaw()
	resumed := time.Now()
	var probes []error // failures other than the open breaker's: failed probes
	testenv.Eventually(t, retry+ioTimeout+5*time.Second, "calls to succeed after SIGCONT", func() bool {
		_, err := count()
		if err != nil && err.Error() != open {
			probes = append(probes, err)
		}
		return err == nil
	})
	back := time.Since(resumed)
	t.Logf("back %s after SIGCONT", back.Round(time.Millisecond))
	if len(probes) != 0 || back > retry+ioTimeout {
		t.Errorf("back %s after SIGCONT after failed probes %v; want the first probe to succeed, within retry_interval %s + io_timeout",
			back, probes, retry)
	}
}

// failUntilOpen calls count until the breaker refuses a call (open) and
// returns how many failed before: each must be a timeout naming the server
// (at), the operation's (io_timeout), the wait for a connection's or the
// server selection's after the driver marked the server unknown
// (connect_timeout), taking at most max.
func failUntilOpen(t *testing.T, count func() (time.Duration, error), at, open string, max time.Duration, allowance int) int {
	t.Helper()
	for failures := 0; ; failures++ {
		d, err := count()
		if err != nil && err.Error() == open {
			return failures
		}
		wantErrContains(t, fmt.Sprintf("call %d to the frozen server", failures+1), err, at+"timeout: timed out ")
		if d > max {
			t.Errorf("call %d failed after %s, want about io_timeout + the health check (at most %s)", failures+1, d, max)
		}
		if failures > allowance {
			t.Fatalf("the breaker is still closed after %d failures, failure_allowance %d", failures+1, allowance)
		}
	}
}
