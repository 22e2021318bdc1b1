package servant

import (
	"bytes"
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fae-go/fae/idl/fun/rpc"
)

// traceBuffer is a trace stream written into a buffer: one text record a line.
type traceBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (tb *traceBuffer) Write(p []byte) (int, error) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.b.Write(p)
}

func (tb *traceBuffer) lines() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return strings.Split(strings.TrimSuffix(tb.b.String(), "\n"), "\n")
}

// records returns the trace records of rid.
func (tb *traceBuffer) records(rid int64) []string {
	var out []string
	for _, l := range tb.lines() {
		if strings.Contains(l, " rid="+strconv.FormatInt(rid, 10)+" ") {
			out = append(out, l)
		}
	}
	return out
}

func tracedServant(t *testing.T, cfg Config) (*FunServant, *traceBuffer) {
	t.Helper()
	tb := new(traceBuffer)
	opts := Options{Logger: slog.New(slog.DiscardHandler),
		TraceLogger: slog.New(slog.NewTextHandler(tb, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	return newTestServant(t, cfg, opts), tb
}

// rids returns n rids that Traced says are (want true) or are not traced at rate.
func rids(t *testing.T, rate, n int, want bool) []int64 {
	t.Helper()
	var out []int64
	for rid := int64(1); len(out) < n; rid++ {
		if Traced(rid, rate) == want {
			out = append(out, rid)
		}
		if rid > 1e7 {
			t.Fatalf("no %d rids with Traced %v at rate %d", n, want, rate)
		}
	}
	return out
}

// TestTracedRate: at rate r about r/10000 of the rids are traced, the same
// ones every time; rate 0 traces none and 10000 all.
func TestTracedRate(t *testing.T) {
	const n = 200000
	for _, rate := range []int{0, 1, 100, 5000, 10000} {
		traced := 0
		for rid := int64(1); rid <= n; rid++ {
			if Traced(rid, rate) {
				traced++
			}
		}
		want := float64(n) * float64(rate) / 10000
		if d := float64(traced) - want; d > 5*float64(n)/1e4+3*want/10 || -d > 5*float64(n)/1e4+3*want/10 {
			t.Errorf("rate %d: %d of %d rids traced, want about %.0f", rate, traced, n, want)
		}
	}
	// A fixed hash: this rid's fate is part of the contract (every node agrees).
	if Traced(1, 10000) != true || Traced(1, 0) != false {
		t.Fatal("rate 10000 must trace every rid and rate 0 none")
	}
}

// TestTraceTracedRid: every call of a traced rid is written, with since_first
// growing; an untraced rid's calls are not; args are cut at
// profiler_max_body_size with "...".
func TestTraceTracedRid(t *testing.T) {
	cfg := baseConfig()
	cfg.ProfilerRate, cfg.ProfilerMaxBodySize = 100, 24
	cfg.Lcache = new(LcacheConfig)
	cfg.Lcache.SetDefaults()
	s, tb := tracedServant(t, cfg)
	on, off := rids(t, 100, 1, true)[0], rids(t, 100, 1, false)[0]
	for i := 0; i < 3; i++ {
		for _, rid := range []int64{on, off} {
			c := &rpc.Context{Rid: rid, Reason: "user.login", UID: 77}
			if _, err := s.LcSet(context.Background(), c, "a-key-that-is-rather-long", []byte("v")); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(2 * time.Millisecond) // since_first must grow by the time between calls
	}
	if got := tb.records(off); len(got) != 0 {
		t.Errorf("untraced rid %d: %d records, want none: %q", off, len(got), got)
	}
	recs := tb.records(on)
	if len(recs) != 3 {
		t.Fatalf("traced rid %d: %d records, want 3:\n%s", on, len(recs), strings.Join(tb.lines(), "\n"))
	}
	sinceRE := regexp.MustCompile(`since_first_ms=([0-9.]+)`)
	last := -1.0
	for _, r := range recs {
		for _, want := range []string{"msg=call", "method=lc.set", "reason=user.login", "uid=77", "slow=false",
			`args="key=\"a-key-that-is-rathe..."`} {
			if !strings.Contains(r, want) {
				t.Errorf("record %q lacks %s", r, want)
			}
		}
		m := sinceRE.FindStringSubmatch(r)
		if m == nil {
			t.Fatalf("record %q: no since_first_ms", r)
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		if v <= last {
			t.Errorf("since_first_ms %v after %v: want it growing", v, last)
		}
		last = v
	}
	if last < 4 {
		t.Errorf("since_first_ms of the third call %v, want at least the 4 ms slept", last)
	}
	if traced, slow := s.Traces(); traced != 3 || slow != 0 {
		t.Errorf("Traces() = %d, %d; want 3, 0", traced, slow)
	}
}

// TestTraceSameRidsEverywhere: two servants (two nodes) trace the same rids.
func TestTraceSameRidsEverywhere(t *testing.T) {
	cfg := baseConfig()
	cfg.ProfilerRate = 300
	a, ta := tracedServant(t, cfg)
	b, tbb := tracedServant(t, cfg)
	for rid := int64(1000); rid < 3000; rid++ {
		c := &rpc.Context{Rid: rid, Reason: "r"}
		a.Ping(context.Background(), c)
		b.Ping(context.Background(), c)
	}
	ridRE := regexp.MustCompile(` rid=(\d+) `)
	set := func(tb *traceBuffer) string {
		var rs []string
		for _, l := range tb.lines() {
			if m := ridRE.FindStringSubmatch(l); m != nil {
				rs = append(rs, m[1])
			}
		}
		return strings.Join(rs, ",")
	}
	sa, sb := set(ta), set(tbb)
	if sa == "" || sa != sb {
		t.Fatalf("traced rids differ or are none:\n%s\n%s", sa, sb)
	}
	if n := strings.Count(sa, ",") + 1; n < 20 || n > 120 {
		t.Errorf("%d of 2000 rids traced at rate 300, want about 60", n)
	}
}

// TestTraceSlowCall: a slow call is written whatever its rid, marked slow,
// with its error; and counted slow.
func TestTraceSlowCall(t *testing.T) {
	cfg := baseConfig()
	cfg.ProfilerRate, cfg.CallSlowThreshold = 0, time.Nanosecond
	s, tb := tracedServant(t, cfg)
	rid := rids(t, 10000, 1, true)[0] // traced at any rate > 0, but the rate is 0
	if _, err := s.LcGet(context.Background(), &rpc.Context{Rid: rid, Reason: "slow.path"}, "k"); err == nil {
		t.Fatal("lc_get without an lcache: no error")
	}
	recs := tb.records(rid)
	if len(recs) != 1 || !strings.Contains(recs[0], "slow=true") || !strings.Contains(recs[0], "method=lc.get") ||
		!strings.Contains(recs[0], "err=") || !strings.Contains(recs[0], `args="key=\"k\""`) {
		t.Fatalf("records %q, want one slow lc.get with its error and args", recs)
	}
	if traced, slow := s.Traces(); traced != 0 || slow != 1 {
		t.Errorf("Traces() = %d, %d; want 0, 1", traced, slow)
	}
}

// TestTraceRateAtReload: profiler_rate and profiler_max_body_size change at
// reload, for the next call.
func TestTraceRateAtReload(t *testing.T) {
	cfg := baseConfig()
	cfg.ProfilerRate = 0
	s, tb := tracedServant(t, cfg)
	rid := rids(t, 50, 1, true)[0]
	c := &rpc.Context{Rid: rid, Reason: "r"}
	s.IDNextWithTag(context.Background(), c, 3)
	if got := tb.records(rid); len(got) != 0 {
		t.Fatalf("rate 0: %q", got)
	}
	cfg.ProfilerRate, cfg.ProfilerMaxBodySize = 50, 0
	if _, err := s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	s.IDNextWithTag(context.Background(), c, 3)
	got := tb.records(rid)
	if len(got) != 1 || strings.Contains(got[0], "args=") {
		t.Fatalf("after reload to rate 50, max body 0: %q, want one record without args", got)
	}
	cfg.ProfilerMaxBodySize = 1024
	if _, err := s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	s.IDNextWithTag(context.Background(), c, 3)
	if got := tb.records(rid); len(got) != 2 || !strings.Contains(got[1], `args="tag=3"`) {
		t.Fatalf("after reload to max body 1024: %q", got)
	}
}

// TestReasonsRawTable: the lock-free table of raw reasons, filled from
// several goroutines at once past its cap (more raw variants than
// maxRawReasons, all folding to one normalised reason, beside a reason
// without digits): every call counted once under its normalised reason, the
// table stops at maxRawReasons entries, and each entry leads to its own
// normalised reason's counter.
func TestReasonsRawTable(t *testing.T) {
	rc := newReasonCounts()
	const workers, variants = 4, maxRawReasons + 1000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range variants {
				rc.add(fmt.Sprintf("call.init.%d", (i+w*997)%variants), int64(i))
				rc.add("user.login", int64(i))
			}
		}()
	}
	wg.Wait()
	got := rc.snapshot()
	if want := map[string]int64{"call.init.?": workers * variants, "user.login": workers * variants}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("snapshot() = %v, want %v", got, want)
	}
	rc.mu.RLock()
	size := rc.rawSize
	rc.mu.RUnlock()
	if size != maxRawReasons {
		t.Fatalf("%d raw reasons remembered, want the cap %d", size, maxRawReasons)
	}
	n := 0
	for i := range rc.raw {
		e := rc.raw[i].Load()
		if e == nil {
			continue
		}
		n++
		if c := rc.lookup(e.reason, maphash.String(rc.rawSeed, e.reason)); c != e.c || c != rc.m[normaliseReason(e.reason)] {
			t.Fatalf("raw reason %q: lookup gives %p, its entry %p, its normalised reason's counter %p", e.reason, c, e.c, rc.m[normaliseReason(e.reason)])
		}
	}
	if n != maxRawReasons {
		t.Fatalf("%d entries in the table, want %d", n, maxRawReasons)
	}
	if c := rc.lookup("never.seen", maphash.String(rc.rawSeed, "never.seen")); c != nil {
		t.Fatalf("lookup of a reason never seen: %p, want nil", c)
	}
}

// TestReasons: calls are counted by reason with digit runs folded, and the
// distinct reasons are capped with the rest under OtherReason.
func TestReasons(t *testing.T) {
	s := newTestServant(t, baseConfig(), Options{Logger: slog.New(slog.DiscardHandler)})
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		s.Ping(ctx, &rpc.Context{Rid: int64(100 + i), Reason: fmt.Sprintf("call.init.%d", 500+i)})
	}
	s.Ping(ctx, &rpc.Context{Rid: 100, Reason: "call.init.7"}) // same rid, another reason
	s.Ping(ctx, &rpc.Context{Rid: 200, Reason: "user.login"})
	s.Ping(ctx, &rpc.Context{Rid: 200, Reason: "user.login"})
	s.Ping(ctx, &rpc.Context{Rid: 0, Reason: "refused.call"}) // refused: not counted
	got := map[string]int64{}
	for _, r := range s.Reasons() {
		got[r.Reason] = r.Calls
	}
	if fmt.Sprint(got) != fmt.Sprint(map[string]int64{"call.init.?": 6, "user.login": 2}) {
		t.Fatalf("Reasons() = %v", got)
	}
	for i := 0; i < MaxReasons+10; i++ {
		s.Ping(ctx, &rpc.Context{Rid: int64(1000 + i), Reason: "r." + letters(i)})
	}
	rs := s.Reasons()
	if len(rs) != MaxReasons+1 {
		t.Fatalf("%d reasons, want the cap %d plus %s", len(rs), MaxReasons, OtherReason)
	}
	other := int64(0)
	for _, r := range rs {
		if r.Reason == OtherReason {
			other = r.Calls
		}
	}
	if other != 12 { // 1010 new reasons, 998 room left
		t.Errorf("%s = %d, want 12", OtherReason, other)
	}
}

// TestRidSessions: a rid's first call is kept (to the ms) across its later
// calls; the table has session_max_items slots rounded up to a power of two,
// and a rid whose slot a newer rid took starts afresh.
func TestRidSessions(t *testing.T) {
	r := newRidSessions(20480)
	if len(r.slots) != 32768 {
		t.Fatalf("%d slots for 20480 rids, want 32768", len(r.slots))
	}
	t0 := time.Now()
	if since := r.touch(1, t0); since != 0 {
		t.Fatalf("first call: %v since the first, want 0", since)
	}
	t1 := t0.Add(1500 * time.Millisecond)
	if since := r.touch(1, t1); (since - 1500*time.Millisecond).Abs() > time.Millisecond {
		t.Fatalf("second call: %v since the first, want 1.5s (to the ms)", since)
	}
	if since := r.touch(2, t1); since != 0 {
		t.Fatalf("another rid's first call: %v since the first, want 0", since)
	}
	// Fill far past the table: rid 1 is gone (its slot taken) in a table of 16.
	small := newRidSessions(10)
	small.touch(1, t0)
	for rid := int64(2); rid < 2000; rid++ {
		small.touch(rid, t0)
	}
	if since := small.touch(1, t1); since != 0 {
		t.Fatalf("rid 1 after 2000 others in 16 slots: %v since the first, want a fresh start (0)", since)
	}
}

// BenchmarkRidTouch is what every checked call pays for the rids' first
// calls and the calls by reason: a touch of a rid seen before (a web
// request's later calls), of a new rid every 4th call, and a reason counted,
// from every core at once.
func BenchmarkRidTouch(b *testing.B) {
	r := newRidSessions(20480)
	rc := newReasonCounts()
	var workers atomic.Int64
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		base := workers.Add(1) << 40 // each worker its own requests, as php-fpm workers
		for n := int64(0); pb.Next(); n++ {
			r.touch(base+n/4, now)
			rc.add("user.login", base+n/4)
		}
	})
}

// BenchmarkTraced is the per-call sampling decision (profiler_rate > 0).
func BenchmarkTraced(b *testing.B) {
	n := 0
	for i := range b.N {
		if Traced(int64(i), 100) {
			n++
		}
	}
	_ = n
}

// letters writes i in base 26 with the letters a-z: distinct reasons without digits.
func letters(i int) string {
	b := []byte{byte('a' + i%26)}
	for i /= 26; i > 0; i /= 26 {
		b = append(b, byte('a'+i%26))
	}
	return string(b)
}
