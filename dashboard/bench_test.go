package dashboard

import (
	"testing"
	"time"
)

// BenchmarkSample is one sampling (every DefaultInterval, off the call
// path): reading the engine's and servant's counters, one gather of a real
// metrics registry (fae_ metrics, Go and process collectors) and
// runtime/metrics, and appending to the ring.
func BenchmarkSample(b *testing.B) {
	src, svt, _ := testSources(b)
	ping(b, svt, 100)
	s := newSampler(src, DefaultCapacity)
	now := time.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.sample(now.Add(time.Duration(i) * DefaultInterval))
	}
}
