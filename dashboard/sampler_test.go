package dashboard

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/testenv"
	"github.com/fae-go/fae/metrics"
	"github.com/fae-go/fae/pool"
	"github.com/fae-go/fae/servant"
)

// testSources are the sources of a real servant without backends whose
// every call is slow (call_slow_threshold 1 ns), observed by a real
// metrics.Metrics (its fae_call_duration_seconds histogram).
func testSources(t testing.TB) (Sources, *servant.FunServant, *engine.Stats) {
	t.Helper()
	var cfg servant.Config
	cfg.SetDefaults()
	cfg.CallSlowThreshold = time.Nanosecond
	svt, err := servant.New(cfg, servant.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svt.Close)
	st := new(engine.Stats)
	m := metrics.New(metrics.Sources{Engine: st, Servant: svt})
	t.Cleanup(m.Stop)
	return Sources{Version: "v", BuildID: "b", Engine: st, Servant: svt, Gatherer: m.Registry(), Self: "127.0.0.1:9001"}, svt, st
}

func ping(t testing.TB, svt *servant.FunServant, n int) {
	t.Helper()
	for i := range n {
		if _, err := svt.Ping(context.Background(), &rpc.Context{Rid: int64(i + 1), Reason: "test"}); err != nil {
			t.Fatal(err)
		}
	}
}

// Rates are the counters' deltas over the time between two samples; the
// latency quantiles are over that interval's calls only.
func TestSamplerDeltas(t *testing.T) {
	src, svt, st := testSources(t)
	s := newSampler(src, 10)
	t0 := time.Unix(1_700_000_000, 0)
	s.sample(t0)
	if got := s.since(0); len(got) != 0 {
		t.Fatalf("after the baseline: %d samples, want none", len(got))
	}
	ping(t, svt, 40)
	st.Calls.Add(40)
	st.CallErrors.Add(4)
	st.SessionsActive.Store(3)
	for range 10 {
		svt.Backends.Observe(pool.Op{Backend: "redis", Pool: "p", Server: "s", Name: "GET", Kind: pool.KindOK})
	}
	for _, k := range []pool.Kind{pool.KindMiss, pool.KindMiss, pool.KindTimeout, pool.KindBreakerOpen} {
		svt.Backends.Observe(pool.Op{Backend: "memcache", Pool: "p", Server: "s", Name: "get", Kind: k})
	}
	s.sample(t0.Add(2 * time.Second))
	got := s.since(0)
	if len(got) != 1 {
		t.Fatalf("%d samples, want 1", len(got))
	}
	g := got[0]
	if g.Seq != 1 || g.Time != t0.Add(2*time.Second).UnixMilli() || g.Calls != 20 || g.Failures != 2 || g.Slow != 20 ||
		g.Sessions != 3 || g.Heap == 0 {
		t.Errorf("sample %+v: want seq 1, 20 calls/s, 2 failures/s, 20 slow/s, 3 sessions, heap > 0", g)
	}
	// Quantiles of the 40 pings (their exact values are TestQuantile*'s).
	if !(g.P50 > 0 && g.P99 >= g.P50 && g.P99 < 1000) {
		t.Errorf("p50 %v ms, p99 %v ms: want 0 < p50 ≤ p99 < 1 s", g.P50, g.P99)
	}
	if want := []string{"memcache", "redis"}; strings.Join(s.backends, ",") != strings.Join(want, ",") {
		t.Fatalf("backends %v, want %v", s.backends, want)
	}
	// memcache: 4 ops (2 misses are not failures), redis: 10 ok; per second over 2 s.
	if want := []float64{2, 1, 5, 0}; !equalFloats(g.Backends, want) {
		t.Errorf("backend rates %v, want %v", g.Backends, want)
	}

	// A quiet interval: no calls, so no latency (null in JSON), zero rates.
	s.sample(t0.Add(4 * time.Second))
	q := s.since(1)
	if len(q) != 1 || q[0].Seq != 2 || q[0].Calls != 0 || q[0].Slow != 0 || !math.IsNaN(float64(q[0].P50)) ||
		!equalFloats(q[0].Backends, []float64{0, 0, 0, 0}) {
		t.Fatalf("quiet interval: %+v", q)
	}
	b, err := json.Marshal(q[0])
	if err != nil || !strings.Contains(string(b), `"p50_ms":null`) || !strings.Contains(string(b), `"p99_ms":null`) {
		t.Errorf("JSON of a quiet interval: %s %v; want null quantiles", b, err)
	}
}

func equalFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !near(a[i], b[i]) {
			return false
		}
	}
	return true
}

// The ring keeps the last capacity samples; since gives those after a seq.
func TestSamplerRingBound(t *testing.T) {
	src, _, st := testSources(t)
	s := newSampler(src, 5)
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 13 { // a baseline and 12 samples
		st.Calls.Add(int64(i))
		s.sample(t0.Add(time.Duration(i) * time.Second))
	}
	seqs := func(ss []Sample) (out []uint64) {
		for _, x := range ss {
			out = append(out, x.Seq)
		}
		return out
	}
	for _, c := range []struct {
		since uint64
		want  []uint64
	}{{0, []uint64{8, 9, 10, 11, 12}}, {3, []uint64{8, 9, 10, 11, 12}}, {10, []uint64{11, 12}}, {12, nil}, {99, nil}} {
		if got := seqs(s.since(c.since)); !equalSeqs(got, c.want) {
			t.Errorf("since(%d) = %v, want %v", c.since, got, c.want)
		}
	}
	// Sample 12 covers the 12th second: 12 calls in 1 s.
	if last := s.since(11); len(last) != 1 || last[0].Calls != 12 {
		t.Errorf("last sample %+v: want 12 calls/s", last)
	}
	if len(s.ring) != 5 {
		t.Errorf("ring of %d, want 5", len(s.ring))
	}
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Breaker states are kept per server in a stable order; a server not
// reported is -1; past maxBreakers, servers are counted, not charted.
func TestSamplerBreakers(t *testing.T) {
	src, _, _ := testSources(t)
	var states []BreakerState
	src.Breakers = func() []BreakerState { return states }
	s := newSampler(src, 10)
	t0 := time.Unix(1_700_000_000, 0)
	s.sample(t0)
	states = []BreakerState{{"redis", "p", "a:1", "closed"}, {"redis", "p", "b:1", "open"}}
	s.sample(t0.Add(time.Second))
	states = []BreakerState{{"redis", "p", "b:1", "half-open"}, {"mysql", "m", "c:1", "closed"}}
	s.sample(t0.Add(2 * time.Second))
	got := s.since(0)
	if len(got) != 2 || !equalStates(got[0].Breakers, []int8{0, 2}) || !equalStates(got[1].Breakers, []int8{-1, 1, 0}) {
		t.Fatalf("breakers %v then %v; want [0 2] then [-1 1 0]", got[0].Breakers, got[1].Breakers)
	}
	if len(s.breakers) != 3 || s.breakers[2] != (BreakerKey{"mysql", "m", "c:1"}) {
		t.Fatalf("breaker keys %v", s.breakers)
	}
	states = nil
	for i := range maxBreakers + 5 {
		states = append(states, BreakerState{"redis", "q", "s" + string(rune('a'+i%26)) + time.Duration(i).String(), "closed"})
	}
	s.sample(t0.Add(3 * time.Second))
	if len(s.breakers) != maxBreakers || s.breakersDropped != 8 {
		t.Errorf("%d breakers, %d dropped; want %d and 8 (3 known + %d new - the cap)", len(s.breakers),
			s.breakersDropped, maxBreakers, maxBreakers+5)
	}
}

func equalStates(a, b []int8) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// New samples on its own every Interval, and Stop ends it.
func TestDashboardSamplesOnItsOwn(t *testing.T) {
	src, _, _ := testSources(t)
	d := New(src, Options{Interval: 20 * time.Millisecond, Capacity: 4})
	defer d.Stop()
	testenv.Eventually(t, 10*time.Second, "the ring to fill at a 20 ms interval", func() bool { return len(d.s.since(0)) >= 4 })
	d.Stop() // waits for the goroutine's end
	d.Stop() // twice is fine
	got := d.s.since(0)
	if len(got) != 4 || got[3].Seq != got[0].Seq+3 || got[3].Seq != d.page(0).Last {
		t.Errorf("samples %+v: want the last 4, in order", got)
	}
}
