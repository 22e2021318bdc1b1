package dashboard

import (
	"encoding/json"
	"math"
	rtmetrics "runtime/metrics"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/fae-go/fae/pool"
	"github.com/fae-go/fae/servant"
)

// Caps of the per-sample series, so that a Sample's size is bounded whatever
// the config: backends are named by the code (mysql, memcache, redis,
// mongodb, peer), so maxBackends is never reached in practice; breakers are
// one per configured server. Past a cap, further names are not charted and
// are counted (Page.BackendsDropped, Page.BreakersDropped).
const (
	maxBackends = 8
	maxBreakers = 256
)

// Breaker state codes of Sample.Breakers.
const (
	stateAbsent   int8 = -1 // the server was not reported in this sample (removed by a reload, or not yet there)
	stateClosed   int8 = 0
	stateHalfOpen int8 = 1
	stateOpen     int8 = 2
)

// Sample is the figures of one sampling interval. Rates are per second over
// the time since the previous sample; quantiles are over the calls that
// ended in the interval.
//
// Memory: 136 bytes of fixed fields and slice headers, plus 16 bytes per
// backend (at most maxBackends = 8) and 1 byte per breaker (at most
// maxBreakers = 256): at most 520 bytes a sample, so at most 468,000 bytes
// (457 KiB) for DefaultCapacity samples, about 200 KB with five backends and
// no breaker.
type Sample struct {
	Seq      uint64  `json:"seq"`      // 1, 2, 3… in sampling order
	Time     int64   `json:"t"`        // end of the interval, Unix time in ms
	Calls    float64 `json:"calls"`    // calls/s, every method (engine.Stats.Calls)
	Failures float64 `json:"failures"` // failed calls/s (engine.Stats.CallErrors: answered with a TApplicationException)
	Slow     float64 `json:"slow"`     // calls/s slower than call_slow_threshold (servant.MethodStats.Slow, every method)
	P50      ms      `json:"p50_ms"`   // median servant call latency, ms; null when no call ended
	P99      ms      `json:"p99_ms"`   // 99th percentile, ms; null when no call ended
	Sessions int64   `json:"sessions"` // RPC sessions open at the end of the interval
	Heap     uint64  `json:"heap_bytes"`
	// GCPause is the longest stop-the-world pause of a GC in the interval, in
	// ms (0 when no GC ran), from /sched/pauses/total/gc:seconds: the upper
	// bound of its histogram bucket, so accurate to the bucket's width (a
	// few %). GCs is the number of GC cycles that ended in the interval.
	GCPause ms     `json:"gc_pause_ms"`
	GCs     uint64 `json:"gcs"`
	// Backends holds two figures per backend, in the order of
	// Page.Backends: its operations/s and its failures/s. A failure is any
	// outcome but pool.KindOK and pool.KindMiss (a miss is a normal answer);
	// so refusals and bad arguments count too: any of them deserves a look.
	Backends []float64 `json:"b"`
	// Breakers holds the state of each breaker of Page.Breakers: 0 closed,
	// 1 half-open, 2 open, -1 not reported in this sample.
	Breakers []int8 `json:"br,omitempty"`
}

// ms is a duration in milliseconds whose NaN (no value) is JSON null.
type ms float64

// MarshalJSON implements json.Marshaler.
func (m ms) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(m)) || math.IsInf(float64(m), 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, float64(m), 'g', 6, 64), nil
}

var _ json.Marshaler = ms(0)

// BreakerKey names one breaker: a backend server of a pool.
type BreakerKey struct {
	Backend string `json:"backend"`
	Pool    string `json:"pool"`
	Server  string `json:"server"`
}

// raw are the cumulative counters at one moment; a Sample is the difference
// of two.
type raw struct {
	t                  time.Time
	calls, fails, slow int64
	bounds             []float64 // latency bucket upper bounds, s; the last is +Inf
	cum                []uint64  // observations ≤ bounds[i], every method summed
	backends           map[string][2]int64
	sessions           int64
	heap               uint64
	gcs                uint64
	pauseBounds        []float64
	pauseCounts        []uint64
	breakers           []BreakerState
}

// runtime/metrics names read each sample (cheaper than runtime.ReadMemStats,
// which stops the world).
const (
	rmHeap   = "/memory/classes/heap/objects:bytes"
	rmGCs    = "/gc/cycles/total:gc-cycles"
	rmPauses = "/sched/pauses/total/gc:seconds"
)

// sampler keeps the ring of samples. Safe for concurrent use; sample is
// called by one goroutine at a time.
type sampler struct {
	src  Sources
	rm   []rtmetrics.Sample
	prev *raw

	mu              sync.RWMutex
	ring            []Sample // seq s lives at ring[s % len(ring)]
	next            uint64   // seq of the next sample; seqs start at 1
	backends        []string // names of Sample.Backends' pairs, append-only
	breakers        []BreakerKey
	brIndex         map[BreakerKey]int // index in breakers; at most maxBreakers entries
	backendsDropped int64              // backend names past maxBackends, counted once each sample
	breakersDropped int64              // breakers past maxBreakers, counted once each sample
}

func newSampler(src Sources, capacity int) *sampler {
	return &sampler{src: src, ring: make([]Sample, capacity), next: 1, brIndex: map[BreakerKey]int{},
		rm: []rtmetrics.Sample{{Name: rmHeap}, {Name: rmGCs}, {Name: rmPauses}}}
}

// sample reads the sources at now and, past the first call (the baseline),
// appends the interval's Sample to the ring.
func (s *sampler) sample(now time.Time) {
	cur := s.read(now)
	prev := s.prev
	s.prev = cur
	if prev == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	smp := s.build(prev, cur)
	smp.Seq = s.next
	s.ring[s.next%uint64(len(s.ring))] = smp
	s.next++
}

// read takes the cumulative counters of every source.
func (s *sampler) read(now time.Time) *raw {
	r := &raw{t: now}
	st := s.src.Engine
	r.calls, r.fails, r.sessions = st.Calls.Load(), st.CallErrors.Load(), st.SessionsActive.Load()
	if svt := s.src.Servant; svt != nil {
		for _, name := range servant.MethodNames() {
			if ms := svt.Stats(name); ms != nil {
				r.slow += ms.Slow.Load()
			}
		}
		r.backends = backendTotals(svt.Backends)
	}
	if s.src.Gatherer != nil {
		r.bounds, r.cum = gatherLatency(s.src.Gatherer)
	}
	rtmetrics.Read(s.rm)
	if v := s.rm[0].Value; v.Kind() == rtmetrics.KindUint64 {
		r.heap = v.Uint64()
	}
	if v := s.rm[1].Value; v.Kind() == rtmetrics.KindUint64 {
		r.gcs = v.Uint64()
	}
	if v := s.rm[2].Value; v.Kind() == rtmetrics.KindFloat64Histogram {
		h := v.Float64Histogram()
		r.pauseBounds, r.pauseCounts = h.Buckets, slices.Clone(h.Counts)
	}
	if s.src.Breakers != nil {
		r.breakers = s.src.Breakers()
	}
	return r
}

// backendTotals sums c by backend: operations of every kind, and failures
// (every kind but ok and miss).
func backendTotals(c *pool.Counters) map[string][2]int64 {
	out := map[string][2]int64{}
	if c == nil {
		return out
	}
	for _, oc := range c.Snapshot() {
		total := oc.Total()
		v := out[oc.Backend]
		v[0] += total
		v[1] += total - oc.Count(pool.KindOK) - oc.Count(pool.KindMiss)
		out[oc.Backend] = v
	}
	return out
}

// build is the Sample of the interval from prev to cur. s.mu is held.
func (s *sampler) build(prev, cur *raw) Sample {
	secs := cur.t.Sub(prev.t).Seconds()
	rate := func(a, b int64) float64 {
		if secs <= 0 || b < a {
			return 0
		}
		return float64(b-a) / secs
	}
	smp := Sample{Time: cur.t.UnixMilli(), Calls: rate(prev.calls, cur.calls), Failures: rate(prev.fails, cur.fails),
		Slow: rate(prev.slow, cur.slow), Sessions: cur.sessions, Heap: cur.heap, P50: ms(math.NaN()), P99: ms(math.NaN())}
	if d := deltaCum(prev, cur); d != nil {
		smp.P50 = ms(quantile(0.5, cur.bounds, d) * 1000)
		smp.P99 = ms(quantile(0.99, cur.bounds, d) * 1000)
	}
	if cur.gcs >= prev.gcs {
		smp.GCs = cur.gcs - prev.gcs
	}
	smp.GCPause = ms(maxPause(prev, cur) * 1000)
	smp.Backends = s.backendRates(prev, cur, rate)
	smp.Breakers = s.breakerStates(cur.breakers)
	return smp
}

// deltaCum is the cumulative latency histogram of the interval, or nil when
// there is none.
func deltaCum(prev, cur *raw) []uint64 {
	if len(cur.cum) == 0 {
		return nil
	}
	d := make([]uint64, len(cur.cum))
	for i, n := range cur.cum {
		if len(prev.cum) == len(cur.cum) && prev.cum[i] <= n {
			n -= prev.cum[i]
		}
		d[i] = n
	}
	return d
}

// maxPause is the upper bound, in seconds, of the highest GC pause bucket
// that grew from prev to cur (its lower bound for the +Inf bucket); 0 when
// none grew.
func maxPause(prev, cur *raw) float64 {
	if len(prev.pauseCounts) != len(cur.pauseCounts) {
		return 0
	}
	for i := len(cur.pauseCounts) - 1; i >= 0; i-- {
		if cur.pauseCounts[i] > prev.pauseCounts[i] {
			if up := cur.pauseBounds[i+1]; !math.IsInf(up, 1) {
				return up
			}
			return cur.pauseBounds[i]
		}
	}
	return 0
}

// backendRates gives each backend's pair of rates in the order of
// s.backends, adding new names (up to maxBackends). s.mu is held.
func (s *sampler) backendRates(prev, cur *raw, rate func(a, b int64) float64) []float64 {
	names := make([]string, 0, len(cur.backends))
	for name := range cur.backends {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if slices.Contains(s.backends, name) {
			continue
		}
		if len(s.backends) >= maxBackends {
			s.backendsDropped++
			continue
		}
		s.backends = append(s.backends, name)
	}
	out := make([]float64, 2*len(s.backends))
	for i, name := range s.backends {
		p, c := prev.backends[name], cur.backends[name]
		out[2*i], out[2*i+1] = rate(p[0], c[0]), rate(p[1], c[1])
	}
	return out
}

// breakerStates gives the state of each breaker in the order of s.breakers,
// adding new ones (up to maxBreakers); nil without breakers. s.mu is held.
func (s *sampler) breakerStates(bs []BreakerState) []int8 {
	if len(bs) == 0 && len(s.breakers) == 0 {
		return nil
	}
	out := make([]int8, len(s.breakers), len(s.breakers)+len(bs))
	for i := range out {
		out[i] = stateAbsent
	}
	for _, b := range bs {
		k := BreakerKey{b.Backend, b.Pool, b.Server}
		i, ok := s.brIndex[k]
		if !ok {
			if len(s.breakers) >= maxBreakers {
				s.breakersDropped++
				continue
			}
			i = len(s.breakers)
			s.brIndex[k] = i
			s.breakers = append(s.breakers, k)
			out = append(out, stateAbsent)
		}
		out[i] = stateCode(b.State)
	}
	return out
}

func stateCode(state string) int8 {
	switch state {
	case "closed":
		return stateClosed
	case "half-open":
		return stateHalfOpen
	case "open":
		return stateOpen
	}
	return stateAbsent
}

// since returns the samples after seq, oldest first (all those kept for
// seq 0 or a seq older than the ring).
func (s *sampler) since(seq uint64) []Sample {
	s.mu.RLock()
	defer s.mu.RUnlock()
	first := uint64(1)
	if n := uint64(len(s.ring)); s.next > n {
		first = s.next - n
	}
	first = max(first, seq+1)
	out := make([]Sample, 0, s.next-min(first, s.next))
	for q := first; q < s.next; q++ {
		out = append(out, s.ring[q%uint64(len(s.ring))])
	}
	return out
}
