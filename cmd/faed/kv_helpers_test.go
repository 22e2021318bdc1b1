package main_test

import (
	"errors"
	"fmt"
	"hash/crc32"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/testenv"
)

// Helpers of the memcache and Redis tests. Keys start with "kvtest:" and are
// unique per run: other tests use the same shared servers at the same time.

var kvSeq atomic.Int64

// kvKey is a fresh key for test t.
func kvKey(t testing.TB, name string) string {
	return fmt.Sprintf("kvtest:%s:%s:%d.%d", strings.ReplaceAll(t.Name(), "/", "."), name, time.Now().UnixNano(), kvSeq.Add(1))
}

// mcSrv is one server line of a memcache section.
type mcSrv struct{ pool, addr string }

// mcSection is a servants.memcache section; extra is added inside it.
func mcSection(strategy string, replicas int, extra string, servers ...mcSrv) string {
	var b strings.Builder
	for _, s := range servers {
		host, port, _ := strings.Cut(s.addr, ":")
		fmt.Fprintf(&b, "{ host: %q, port: %s, pool: %q }\n", host, port, s.pool)
	}
	return fmt.Sprintf(`memcache: {
            servers: [ %s ]
            hash_strategy: %q
            replica_num: %d
            %s
        }`, b.String(), strategy, replicas, extra)
}

// rdPool is one pool of a redis section.
type rdPool struct {
	name  string
	addrs []string
}

// rdSection is a servants.redis section; extra is added inside it.
func rdSection(extra string, pools ...rdPool) string {
	var b strings.Builder
	for _, p := range pools {
		var s []string
		for _, a := range p.addrs {
			s = append(s, fmt.Sprintf("{ addr: %q }", a))
		}
		fmt.Fprintf(&b, "{ name: %q, servers: [ %s ] }\n", p.name, strings.Join(s, ", "))
	}
	return fmt.Sprintf(`redis: {
            pools: [ %s ]
            %s
        }`, b.String(), extra)
}

// wantErr fails unless err is a TApplicationException whose message matches re.
func wantErr(t testing.TB, what string, err error, re string) {
	t.Helper()
	var ae thrift.TApplicationException
	if !errors.As(err, &ae) || !regexp.MustCompile(re).MatchString(err.Error()) {
		t.Errorf("%s: error %v (%T), want a TApplicationException matching %s", what, err, err, re)
	}
}

// phpStandardIndex is PHP memcache's standard strategy, written out here: bits
// 16..30 of crc32(key), 0 taken as 1, modulo the number of servers.
func phpStandardIndex(key string, n int) int {
	h := (crc32.ChecksumIEEE([]byte(key)) >> 16) & 0x7fff
	if h == 0 {
		h = 1
	}
	return int(h % uint32(n))
}

// load is callers sessions calling op in a loop, recording every outcome, while
// a test stops and restarts a backend.
type load struct {
	ok, failed atomic.Int64
	maxFail    atomic.Int64   // longest failed call since reset, ns
	slowFail   atomic.Int64   // failed calls over slowFailure since reset
	calls      []atomic.Int64 // calls made, per session
	lastProbe  atomic.Int64   // when the last failure other than "circuit open" ended, Unix ns
	lastOpen   atomic.Int64   // when the last call refused with "circuit open" started, Unix ns
	lastOK     atomic.Int64   // when the last answered call started, Unix ns
	mu         sync.Mutex
	errs       map[string]int // error texts since reset
	stop       chan struct{}
	wg         sync.WaitGroup
}

// startLoad runs op on each of the sessions until l.halt. op returns a call's
// error; a declared exception (a cache miss) counts as an answer.
func startLoad(sessions []*client, op func(c *client, worker, i int) error) *load {
	l := &load{errs: map[string]int{}, stop: make(chan struct{}), calls: make([]atomic.Int64, len(sessions))}
	for w, c := range sessions {
		l.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				start := time.Now()
				err := op(c, w, i)
				var miss *rpc.TCacheMissed
				if err == nil || errors.As(err, &miss) {
					l.ok.Add(1)
					storeMax(&l.lastOK, start.UnixNano())
				} else {
					l.record(err, start, time.Now())
				}
				l.calls[w].Add(1)
			}
		})
	}
	return l
}

// record counts a call that started at start and failed with err at end.
func (l *load) record(err error, start, end time.Time) {
	l.failed.Add(1)
	storeMax(&l.maxFail, int64(end.Sub(start)))
	if end.Sub(start) > slowFailure {
		l.slowFail.Add(1)
	}
	if strings.Contains(err.Error(), "circuit open") {
		storeMax(&l.lastOpen, start.UnixNano())
	} else {
		storeMax(&l.lastProbe, end.UnixNano())
	}
	l.mu.Lock()
	l.errs[err.Error()]++
	l.mu.Unlock()
}

// storeMax stores v into a unless a holds more already.
func storeMax(a *atomic.Int64, v int64) {
	for {
		m := a.Load()
		if v <= m || a.CompareAndSwap(m, v) {
			return
		}
	}
}

// slowFailure is the longest a failure may take to count as fast, while a
// backend is down and its breaker open.
const slowFailure = 250 * time.Millisecond

// loadSnapshot is what a load saw between two resets.
type loadSnapshot struct {
	ok, failed int64
	maxFail    time.Duration  // the slowest failed call
	slowFail   int64          // failed calls over slowFailure
	errs       map[string]int // error texts
}

// reset zeroes the counters and returns what they held.
func (l *load) reset() loadSnapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := loadSnapshot{ok: l.ok.Swap(0), failed: l.failed.Swap(0), maxFail: time.Duration(l.maxFail.Swap(0)),
		slowFail: l.slowFail.Swap(0), errs: l.errs}
	l.errs = map[string]int{}
	return s
}

// reopened reports whether, after after, a call the open breaker let through
// failed (a probe), and the breaker then refused a call again.
func (l *load) reopened(after time.Time) bool {
	probe := l.lastProbe.Load()
	return probe > after.UnixNano() && l.lastOpen.Load() > probe
}

// settle returns once every session has finished two calls more than when it
// was called, so that each has made a call that started after it was called.
func (l *load) settle(t testing.TB) {
	t.Helper()
	from := make([]int64, len(l.calls))
	for w := range l.calls {
		from[w] = l.calls[w].Load()
	}
	testenv.Eventually(t, 10*time.Second, "every session to make a new call", func() bool {
		for w := range l.calls {
			if l.calls[w].Load() < from[w]+2 {
				return false
			}
		}
		return true
	})
}

func (l *load) halt() {
	close(l.stop)
	l.wg.Wait()
}

// restartUnderLoad stops srv while 16 sessions call op, and checks that: the
// calls fail fast with typed errors (every error text matches errRE) and the
// breaker opens ("circuit open") after failure_allowance, and opens again after
// a failed probe once retry (the breaker's retry_interval) has passed; and that
// within retry and a second of slack after srv is back calls succeed, and then
// the next 500 calls all do.
func restartUnderLoad(t *testing.T, f *faed, srv *testenv.Server, retry time.Duration, errRE string, op func(c *client, worker, i int) error) {
	sessions := make([]*client, 16)
	for i := range sessions {
		sessions[i] = f.dial(t, allModes[0])
	}
	l := startLoad(sessions, op)
	defer l.halt()
	testenv.Eventually(t, 5*time.Second, "calls succeeding before the stop", func() bool { return l.ok.Load() > 200 })
	if s := l.reset(); len(s.errs) > 0 {
		t.Fatalf("errors before the stop: %v", s.errs)
	}

	srv.Stop()
	stopped := time.Now()
	testenv.Eventually(t, 5*time.Second, "the breaker to open", func() bool { return l.openErrors() > 0 })
	l.reset()
	down := time.Now()
	// A whole open period, then a failed probe and the breaker open again.
	testenv.Eventually(t, 2*retry+5*time.Second, "a failed probe after retry_interval and the breaker open again",
		func() bool { return l.reopened(down.Add(retry)) })
	checkDown(t, l.reset(), time.Since(down), errRE)
	// A call answered before the stop may be counted a moment late (a
	// descheduled session): what must not be is a call started after it answered.
	if last := time.Unix(0, l.lastOK.Load()); last.After(stopped) {
		t.Errorf("a call started %s after the server stopped was answered", last.Sub(stopped))
	}

	srv.Start()
	up := time.Now()
	testenv.Eventually(t, retry+time.Second, "calls succeeding after the restart", func() bool { return l.ok.Load() > 0 })
	t.Logf("first success %s after the restart (retry_interval %s)", time.Since(up).Round(time.Millisecond), retry)
	l.settle(t) // calls that started before the breaker closed may still fail
	l.reset()
	testenv.Eventually(t, 10*time.Second, "500 calls after the recovery", func() bool { return l.ok.Load()+l.failed.Load() >= 500 })
	if s := l.reset(); s.failed > 0 || s.ok == 0 {
		t.Errorf("after recovery: %d successes, %d failures %v", s.ok, s.failed, s.errs)
	}
}

// checkDown checks what a load saw while its server was down for d: only
// failures, all fast, all with a message matching errRE.
func checkDown(t *testing.T, down loadSnapshot, d time.Duration, errRE string) {
	t.Helper()
	typed := regexp.MustCompile(errRE)
	for msg := range down.errs {
		if !typed.MatchString(msg) {
			t.Errorf("while down, untyped error %q (want %s)", msg, errRE)
		}
	}
	for msg := range down.errs {
		t.Logf("while down, e.g.: %s", msg)
		break
	}
	t.Logf("while down for %s: %d calls answered, %d failed, the slowest failure in %s",
		d, down.ok, down.failed, down.maxFail.Round(time.Microsecond))
	if down.failed == 0 {
		t.Errorf("while the server was down: %d calls answered, %d failed", down.ok, down.failed)
	}
	// Fast failures: one call descheduled on a loaded 2-core machine may take
	// longer, but not more than 1% of them (a breaker that let calls wait for
	// io_timeout would make most of them slow).
	if down.slowFail*100 > down.failed {
		t.Errorf("%d of %d failed calls took over %s while the server was down (the slowest %s); want fast failures",
			down.slowFail, down.failed, slowFailure, down.maxFail)
	}
}

// openErrors counts "circuit open" errors since the last reset.
func (l *load) openErrors() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for msg, c := range l.errs {
		if strings.Contains(msg, "circuit open") {
			n += c
		}
	}
	return n
}
