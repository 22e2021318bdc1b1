package pool

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

// The coalesced gets (memcache_batch.go) against real memcached servers: the
// shared one for concurrency, private ones to freeze, kill and restart.

// batchOf is the coalesced path of pool "p"'s only server.
func batchOf(t testing.TB, m *Memcache) *mcBatch {
	t.Helper()
	b := m.pools["p"].servers[0].batch
	if b == nil {
		t.Fatal("coalesce is on but the server has no batch")
	}
	return b
}

// holdBatch freezes srv and starts one get of key, which goes out at once
// and waits for its reply; then n more gets of keys(i) are started, which
// queue behind it. It returns once all n are queued; the results come on the
// channel (the held get's first… in no set order: each carries its index, -1
// for the held one).
type batchResult struct {
	i     int
	value []byte
	err   error
	took  time.Duration
}

func holdBatch(t *testing.T, m *Memcache, srv *testenv.Server, key string, n int, keys func(int) string) <-chan batchResult {
	t.Helper()
	b := batchOf(t, m)
	out := make(chan batchResult, n+1)
	get := func(i int, k string) {
		start := time.Now()
		v, _, err := m.Get("p", k)
		out <- batchResult{i, v, err, time.Since(start)}
	}
	srv.Freeze()
	trips := b.trips.Load()
	go get(-1, key)
	testenv.Eventually(t, 5*time.Second, "the first get in flight", func() bool { return b.trips.Load() == trips+1 })
	for i := range n {
		go get(i, keys(i))
	}
	testenv.Eventually(t, 5*time.Second, fmt.Sprintf("%d gets queued", n), func() bool { return b.queued() == n })
	return out
}

// TestMemcacheBatchConcurrent: 256 concurrent callers, each getting its own
// key (half of them set to a value of the caller's own, half absent), in
// rounds: each gets its own value or a miss, never another's; the gets share
// round trips; the observer sees each get with its own outcome.
func TestMemcacheBatchConcurrent(t *testing.T) {
	testenv.RequireServer(t, "memcached", testenv.MemcacheAddr)
	const callers, rounds = 256, 5
	cfg := mcConfig(t, "standard", 1, testenv.MemcacheAddr)
	cfg.MaxWaitingCalls = callers
	m, obs := newTestMemcache(t, cfg, Limits{})
	base := testKey(t, "k")
	key := func(i int) string { return fmt.Sprintf("%s:%d", base, i) }
	value := func(i int) []byte { return bytes.Repeat([]byte(fmt.Sprintf("<%d>", i)), 1+i%50) }
	for i := 0; i < callers; i += 2 {
		if err := m.Set("p", key(i), value(i), uint32(i), 60); err != nil {
			t.Fatal(err)
		}
	}
	b := batchOf(t, m)
	trips := b.trips.Load()
	var wg sync.WaitGroup
	errs := make(chan error, callers*rounds)
	for i := range callers {
		wg.Go(func() {
			for range rounds {
				v, flags, err := m.Get("p", key(i))
				switch {
				case i%2 == 1 && !isKind(err, KindMiss):
					errs <- fmt.Errorf("caller %d: get of an absent key: %q, %v; want a miss", i, v, err)
				case i%2 == 0 && (err != nil || !bytes.Equal(v, value(i)) || flags != uint32(i)):
					errs <- fmt.Errorf("caller %d: %q flags %d, %v; want %q flags %d", i, v, flags, err, value(i), i)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	n := b.trips.Load() - trips
	t.Logf("%d gets in %d round trips", callers*rounds, n)
	if n >= callers*rounds/2 {
		t.Errorf("%d round trips for %d concurrent gets: want them shared", n, callers*rounds)
	}
	srv := testenv.MemcacheAddr
	if ok, miss := mcCount(obs, srv, "get", KindOK), mcCount(obs, srv, "get", KindMiss); ok != callers*rounds/2 || miss != callers*rounds/2 {
		t.Errorf("observed %d hits and %d misses, want %d each", ok, miss, callers*rounds/2)
	}
}

// TestMemcacheBatchPanic: a panic in a round trip (the hook's: no input is
// known to make the memcache client panic, so the fault is injected) fails
// that round trip's gets as a server failure, and the gets queued behind it
// still go out and get their values: the server's coalesced path is not
// left waiting for good.
func TestMemcacheBatchPanic(t *testing.T) {
	srv := testenv.StartMemcached(t)
	cfg := mcConfig(t, "standard", 1, srv.Addr())
	m, _ := newTestMemcache(t, cfg, Limits{})
	key := testKey(t, "k")
	if err := m.Set("p", key, []byte("v"), 0, 60); err != nil {
		t.Fatal(err)
	}
	b := batchOf(t, m)
	release := make(chan struct{})
	var once sync.Once
	mcTripHook = func() { // the first round trip panics once 8 gets queue behind it
		once.Do(func() {
			<-release
			panic("injected")
		})
	}
	t.Cleanup(func() { mcTripHook = nil })
	out := holdBatch(t, m, srv, key, 8, func(int) string { return key })
	srv.Thaw()
	close(release)
	for range 9 {
		r := <-out
		switch {
		case r.i == -1:
			wantKind(t, "the get whose round trip panicked", r.err, KindServerFailure, "memcache client panicked: injected")
		case r.err != nil || string(r.value) != "v":
			t.Errorf("get %d queued behind the panic: %q, %v; want v", r.i, r.value, r.err)
		}
	}
	if v, _, err := m.Get("p", key); err != nil || string(v) != "v" {
		t.Errorf("a get after: %q, %v", v, err)
	}
	if b.limit.Load() != 0 {
		t.Error("the panicked round trip's deadline is left on the reads connection")
	}
}

// TestMemcacheBatchTooLarge: in one round trip, a get of a value over
// max_reply_bytes fails with KindTooLarge, its own only; the other gets of
// the batch, the same key's second caller included, get their values.
func TestMemcacheBatchTooLarge(t *testing.T) {
	srv := testenv.StartMemcached(t)
	cfg := mcConfig(t, "standard", 1, srv.Addr())
	m, obs := newTestMemcache(t, cfg, Limits{MaxReplyBytes: 100})
	base := testKey(t, "k")
	// gets 0..5: 2 is of the large value, 4 of key 3 again, 5 of an absent key.
	names := []string{"0", "1", "2", "3", "3", "absent"}
	keys := func(i int) string { return base + ":" + names[i] }
	value := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, 10) }
	for i := 0; i < 4; i++ {
		v := value(i)
		if i == 2 {
			v = bytes.Repeat([]byte("x"), 101)
		}
		if err := m.Set("p", keys(i), v, 0, 60); err != nil {
			t.Fatal(err)
		}
	}
	b := batchOf(t, m)
	held := fmt.Sprintf("%s:held", base)
	results := holdBatch(t, m, srv, held, 6, keys)
	trips := b.trips.Load()
	srv.Thaw()
	got := map[int]batchResult{}
	for range 7 {
		r := <-results
		got[r.i] = r
	}
	if r := got[-1]; !isKind(r.err, KindMiss) {
		t.Errorf("held get: %q, %v; want a miss", r.value, r.err)
	}
	for i := range 6 {
		r := got[i]
		switch {
		case i == 2:
			wantMcError(t, "get of the large value", r.err, KindTooLarge, srv.Addr(), "value of 101 bytes, over max_reply_bytes 100")
		case i == 5:
			if !isKind(r.err, KindMiss) {
				t.Errorf("get of the absent key: %q, %v; want a miss", r.value, r.err)
			}
		case r.err != nil || !bytes.Equal(r.value, value(min(i, 3))):
			t.Errorf("get %d: %q, %v; want %q", i, r.value, r.err, value(min(i, 3)))
		}
	}
	if got[3].err == nil && &got[3].value[0] == &got[4].value[0] {
		t.Error("two callers of one key share the value's buffer")
	}
	if n := b.trips.Load() - trips; n != 1 {
		t.Errorf("%d round trips for the 6 queued gets, want 1", n)
	}
	if n := mcCount(obs, srv.Addr(), "get", KindTooLarge); n != 1 {
		t.Errorf("%d gets observed too large, want 1", n)
	}
}

// TestMemcacheBatchFrozenAndKilled: a server frozen while one round trip is
// in flight and gets queued behind it: every get fails with KindTimeout
// within its own timeout (not twice it; plus the breaker's health check); after SIGCONT gets succeed. Then
// killed with gets queued: each fails with a typed error within its timeout,
// and gets succeed again once the server is back.
func TestMemcacheBatchFrozenAndKilled(t *testing.T) {
	srv, cfg, m, _, k := privateMemcached(t, func(cfg *MemcacheConfig) {
		cfg.Timeout = time.Second
		cfg.Breaker = BreakerConfig{FailureAllowance: 1000, RetryInterval: 200 * time.Millisecond}
	})
	const n = 20
	// Each failed get waits for the breaker's health check, as without
	// coalescing (TestMemcacheFrozenServer); slack: a late goroutine under
	// -race on a loaded machine. A get that waited for two round trips'
	// timeouts would take 2 s.
	limit := cfg.Timeout + HealthCheckTimeout/2 + 300*time.Millisecond
	results := holdBatch(t, m, srv, k, n, func(int) string { return k })
	for range n + 1 {
		r := <-results
		wantMcError(t, fmt.Sprint("get ", r.i, " of a frozen server"), r.err, KindTimeout, srv.Addr(), "")
		if r.took > limit {
			t.Errorf("get %d failed after %s, want within timeout %s (and a health check)", r.i, r.took, cfg.Timeout)
		}
	}
	srv.Thaw()
	testenv.Eventually(t, 5*time.Second, "gets to succeed after SIGCONT", func() bool {
		v, _, err := m.Get("p", k)
		return err == nil && string(v) == "v"
	})

	results = holdBatch(t, m, srv, k, n, func(int) string { return k })
	srv.Kill()
	for range n + 1 {
		r := <-results
		if kind := KindOf(r.err); kind != KindServerFailure && kind != KindTimeout {
			t.Errorf("get %d of a killed server: %v; want a server failure or a timeout", r.i, r.err)
		}
		if r.took > limit {
			t.Errorf("get %d failed after %s, want within timeout %s (and a health check)", r.i, r.took, cfg.Timeout)
		}
	}
	srv.Start()
	testenv.Eventually(t, 5*time.Second, "gets to answer after the restart", func() bool {
		_, _, err := m.Get("p", k)
		return isKind(err, KindMiss) // a fresh memcached: the key is gone
	})
}

// TestMemcacheBatchOwnDeadline: a round trip of a frozen server ends at its
// oldest get's deadline, and that get's caller returns then; the gets whose
// own deadline is later are handed to the first of them, who sends them
// again, once, on a fresh connection, and each fails no earlier than its own
// deadline. (The starts are set by hand: a get queued long after the oldest.)
func TestMemcacheBatchOwnDeadline(t *testing.T) {
	srv := testenv.StartMemcached(t)
	cfg := mcConfig(t, "standard", 1, srv.Addr())
	cfg.Timeout = time.Second
	cfg.Breaker = BreakerConfig{FailureAllowance: 1000, RetryInterval: time.Second}
	m, _ := newTestMemcache(t, cfg, Limits{})
	b := batchOf(t, m)
	srv.Freeze()
	now := time.Now()
	old := &mcGet{key: "kvtest:old", start: now.Add(-700 * time.Millisecond), done: make(chan struct{}, 1)}
	young := &mcGet{key: "kvtest:young", start: now, done: make(chan struct{}, 1)}
	trips := b.trips.Load()
	b.mu.Lock()
	b.busy, b.sent = true, 2
	b.mu.Unlock()
	b.run([]*mcGet{old, young}, 0) // old's caller
	if d := time.Since(now); d >= cfg.Timeout {
		t.Errorf("the old get's caller returned %s after the young get's start, at or past the young get's deadline: it waited for it", d)
	}
	<-young.done // young's caller, told to lead what is left
	if len(young.lead) != 1 || young.lead[0] != young || young.tried != 1 {
		t.Fatalf("the young get was handed %d gets, sent %d times already; want itself, sent once", len(young.lead), young.tried)
	}
	b.run(young.lead, young.tried)
	if n := b.trips.Load() - trips; n != 2 {
		t.Errorf("%d round trips, want 2 (the young get sent again)", n)
	}
	for _, g := range []*mcGet{old, young} {
		if g.kind != KindTimeout || !g.count {
			t.Errorf("get %s: %s %v (counted %t); want a timeout the breaker counts", g.key, g.kind, g.cause, g.count)
		}
	}
	if d := time.Since(young.start); d < cfg.Timeout {
		t.Errorf("the young get failed %s after its start, before its own timeout %s", d, cfg.Timeout)
	}
	srv.Thaw()
}

// TestMemcacheBatchLeaderReturnsOnTime: a get that leads a round trip
// returns at its own deadline, though a get in its batch has a later one
// (found by review: it led the later get's retry to the end, returning up to
// twice its timeout late). Memcached frozen, timeout 3 s, the starts set by
// hand: get A (started 1.5 s ago) in flight, B (started 2.9 s ago) and C
// (started now) queued behind it. A's round trip times out 1.5 s from now;
// B leads [B, C] and is past its deadline: B's caller returns then, while C
// carries on and fails at its own deadline, 3 s from now.
func TestMemcacheBatchLeaderReturnsOnTime(t *testing.T) {
	srv, cfg, m, _, k := privateMemcached(t, func(cfg *MemcacheConfig) {
		cfg.Timeout = 3 * time.Second
		cfg.Breaker = BreakerConfig{FailureAllowance: 1000, RetryInterval: 200 * time.Millisecond}
	})
	b := batchOf(t, m)
	type result struct {
		name string
		kind Kind
		at   time.Duration // since t0
	}
	out := make(chan result, 3)
	t0 := time.Now()
	get := func(name string, start time.Time) {
		_, kind, _ := b.get(k, start, 0)
		out <- result{name, kind, time.Since(t0)}
	}
	srv.Freeze()
	trips := b.trips.Load()
	go get("A", t0.Add(-1500*time.Millisecond))
	testenv.Eventually(t, 5*time.Second, "A in flight", func() bool { return b.trips.Load() == trips+1 })
	go get("B", t0.Add(-2900*time.Millisecond))
	testenv.Eventually(t, 5*time.Second, "B queued", func() bool { return b.queued() == 1 })
	go get("C", t0)
	testenv.Eventually(t, 5*time.Second, "C queued", func() bool { return b.queued() == 2 })
	got := map[string]result{}
	for range 3 {
		r := <-out
		got[r.name] = r
		if r.kind != KindTimeout {
			t.Errorf("get %s of a frozen server: %s, want a timeout", r.name, r.kind)
		}
	}
	if at := got["B"].at; at > 2500*time.Millisecond {
		t.Errorf("get B (deadline 0.1 s from t0, its batch led from A's timeout at 1.5 s) returned at %s, after C's round trip (C's deadline: 3 s)", at)
	}
	if at := got["C"].at; at < cfg.Timeout {
		t.Errorf("get C returned at %s, before its own deadline %s", at, cfg.Timeout)
	}
	srv.Thaw()
}

// TestMemcacheBatchRetry: after a restart the gets' idle connection is
// reset; the first get fails on it and is sent again, once, on a fresh
// connection: it succeeds, and the observer sees no failure. (A write in
// the same case fails: TestMemcacheRestartDropsIdle.)
func TestMemcacheBatchRetry(t *testing.T) {
	srv := testenv.StartMemcached(t)
	cfg := mcConfig(t, "standard", 1, srv.Addr())
	m, obs := newTestMemcache(t, cfg, Limits{})
	k := testKey(t, "k")
	if _, _, err := m.Get("p", k); !isKind(err, KindMiss) {
		t.Fatalf("get before the restart: %v, want a miss", err)
	}
	srv.Stop()
	srv.Start()
	b := batchOf(t, m)
	trips := b.trips.Load()
	if _, _, err := m.Get("p", k); !isKind(err, KindMiss) {
		t.Fatalf("first get after the restart: %v, want a miss (retried on a fresh connection)", err)
	}
	if n := b.trips.Load() - trips; n != 2 {
		t.Errorf("%d round trips for the first get after the restart, want 2 (one retry)", n)
	}
	if n := mcCount(obs, srv.Addr(), "get", KindServerFailure); n != 0 {
		t.Errorf("%d server failures observed, want 0", n)
	}
}

// TestMemcacheBatchWaitingCallsBound: the coalesced gets admit as many calls
// as a connection each would: against a frozen memcached, with
// max_conns_per_server 2 and max_waiting_calls 3, 20 concurrent gets: 15
// fail at once with KindBusy naming the limit, the 5 others time out; after
// SIGCONT gets succeed.
func TestMemcacheBatchWaitingCallsBound(t *testing.T) {
	srv, _, m, obs, k := privateMemcached(t, func(cfg *MemcacheConfig) {
		cfg.MaxConnsPerServer, cfg.MaxWaitingCalls, cfg.Timeout = waitConns, waitLimit, 2*time.Second
		cfg.Breaker = BreakerConfig{FailureAllowance: 100, RetryInterval: time.Second}
	})
	srv.Freeze()
	base := runtime.NumGoroutine()
	results := burst(burstCalls, func() error { _, _, err := m.Get("p", k); return err })
	wantRefusedAtOnce(t, results, srv.Addr(), nil, base)
	for i := range waitConns + waitLimit {
		if r := next(t, results); !isKind(r.err, KindTimeout) {
			t.Errorf("admitted get %d: %v; want a timeout", i, r.err)
		}
	}
	srv.Thaw()
	testenv.Eventually(t, 10*time.Second, "gets to succeed after SIGCONT", func() bool {
		v, _, err := m.Get("p", k)
		return err == nil && string(v) == "v"
	})
	if n := mcCount(obs, srv.Addr(), "get", KindBusy); n != refused {
		t.Errorf("%d busy gets observed, want %d", n, refused)
	}
}

// TestMemcacheCoalesceOff: coalesce false keeps a connection per get.
func TestMemcacheCoalesceOff(t *testing.T) {
	testenv.RequireServer(t, "memcached", testenv.MemcacheAddr)
	cfg := mcConfig(t, "standard", 1, testenv.MemcacheAddr)
	cfg.Coalesce = false
	m, _ := newTestMemcache(t, cfg, Limits{})
	if m.pools["p"].servers[0].batch != nil {
		t.Fatal("coalesce false: the server has a batch")
	}
	k := testKey(t, "k")
	if err := m.Set("p", k, []byte("v"), 0, 60); err != nil {
		t.Fatal(err)
	}
	if v, _, err := m.Get("p", k); err != nil || string(v) != "v" {
		t.Fatalf("get: %q, %v", v, err)
	}
	if _, _, err := m.Get("p", k+":absent"); !errors.Is(err, KindMiss) {
		t.Fatalf("get of an absent key: %v, want a miss", err)
	}
}

// BenchmarkMemcacheGet: get of a 100-byte value on the shared memcached
// through Memcache.Get, coalesced and with a connection per get (coalesce
// false): one caller (the latency of an idle server) and 64 callers
// (RunParallel with parallelism 32 on 2 cores). cpu-ns/op is this process's
// CPU per call (the callers' loop included), which the machine's other load
// hardly moves.
func BenchmarkMemcacheGet(b *testing.B) {
	testenv.RequireServer(b, "memcached", testenv.MemcacheAddr)
	for _, coalesce := range []bool{true, false} {
		cfg := mcConfig(b, "standard", 1, testenv.MemcacheAddr)
		cfg.Coalesce, cfg.MaxIdleConnsPerServer, cfg.MaxConnsPerServer = coalesce, 128, 256
		m, _ := newTestMemcache(b, cfg, Limits{})
		k := testKey(b, "bench")
		if err := m.Set("p", k, bytes.Repeat([]byte("v"), 100), 0, 600); err != nil {
			b.Fatal(err)
		}
		name := map[bool]string{true: "coalesce", false: "dedicated"}[coalesce]
		b.Run(name+"/c=1", func(b *testing.B) {
			cpu := cpuNow(b)
			defer func() { b.ReportMetric(float64(cpuNow(b)-cpu)/float64(b.N), "cpu-ns/op") }()
			took := make([]time.Duration, 0, b.N)
			for b.Loop() {
				start := time.Now()
				if _, _, err := m.Get("p", k); err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(start))
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2]), "p50-ns")
		})
		b.Run(name+"/c=64", func(b *testing.B) {
			b.SetParallelism(32)
			cpu := cpuNow(b)
			defer func() { b.ReportMetric(float64(cpuNow(b)-cpu)/float64(b.N), "cpu-ns/op") }()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, _, err := m.Get("p", k); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
