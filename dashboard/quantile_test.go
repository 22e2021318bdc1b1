package dashboard

import (
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fae-go/fae/metrics"
)

// latencyRegistry is a registry with fae_call_duration_seconds as package
// metrics declares it (metrics.LatencyBuckets, one series per method).
func latencyRegistry(t *testing.T) (*prometheus.Registry, *prometheus.HistogramVec) {
	t.Helper()
	reg := prometheus.NewRegistry()
	hv := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: LatencyMetric, Buckets: metrics.LatencyBuckets},
		[]string{"method"})
	reg.MustRegister(hv, prometheus.NewCounter(prometheus.CounterOpts{Name: "fae_other_total"}))
	return reg, hv
}

func near(got, want float64) bool { return math.Abs(got-want) <= 1e-9*math.Max(1, math.Abs(want)) }

// The quantiles of a real Prometheus histogram, gathered and summed over two
// methods, against values worked out by hand from the buckets
// (100 µs × 4ⁿ: …, 0.0001, 0.0004, 0.0016, 0.0064, …).
func TestQuantileOfGatheredHistogram(t *testing.T) {
	reg, hv := latencyRegistry(t)
	if b, c := gatherLatency(reg); b != nil || c != nil {
		t.Fatalf("no series yet: bounds %v cum %v, want nil", b, c)
	}
	for range 50 {
		hv.WithLabelValues("ping").Observe(0.0002) // bucket (0.0001, 0.0004]
	}
	for range 50 {
		hv.WithLabelValues("mc_get").Observe(0.001) // bucket (0.0004, 0.0016]
	}
	bounds, cum := gatherLatency(reg)
	if len(bounds) != len(metrics.LatencyBuckets)+1 || !math.IsInf(bounds[len(bounds)-1], 1) {
		t.Fatalf("bounds %v: want metrics.LatencyBuckets and +Inf", bounds)
	}
	if cum[0] != 0 || cum[1] != 50 || cum[2] != 100 || cum[len(cum)-1] != 100 {
		t.Fatalf("cumulative counts %v: want 0, 50, 100… summed over both methods", cum)
	}
	for _, c := range []struct{ q, want float64 }{
		{0.5, 0.0004},                     // rank 50: the top of bucket 1
		{0.25, 0.0001 + 0.0003*25/50},     // rank 25: halfway into bucket 1
		{0.99, 0.0004 + 0.0012*(49.0/50)}, // rank 99: 49 of bucket 2's 50
	} {
		if got := quantile(c.q, bounds, cum); !near(got, c.want) {
			t.Errorf("quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
}

// A rank in the +Inf bucket gives the highest finite bound; no
// observations give NaN; an empty first bucket starts at 0.
func TestQuantileEdges(t *testing.T) {
	reg, hv := latencyRegistry(t)
	hv.WithLabelValues("ping").Observe(100) // past the last finite bound (6.5536 s)
	bounds, cum := gatherLatency(reg)
	top := metrics.LatencyBuckets[len(metrics.LatencyBuckets)-1]
	if got := quantile(0.99, bounds, cum); got != top {
		t.Errorf("p99 of one 100 s call = %v, want the highest finite bound %v", got, top)
	}
	zero := make([]uint64, len(cum))
	if got := quantile(0.5, bounds, zero); !math.IsNaN(got) {
		t.Errorf("quantile of nothing = %v, want NaN", got)
	}
	one := []uint64{4, 4, 4}
	if got := quantile(0.5, []float64{1, 2, math.Inf(1)}, one); got != 0.5 {
		t.Errorf("median of 4 in [0, 1] = %v, want 0.5", got)
	}
}
