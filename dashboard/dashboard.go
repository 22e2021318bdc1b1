// Package dashboard serves faed's browser dashboard: one page of live charts
// drawn from figures sampled server-side into a bounded ring buffer.
//
// Every asset (HTML, JavaScript, CSS) is embedded in the binary, so the page
// works with no Internet access; the charts are SVG drawn by the page's own
// small script (no chart library, no JavaScript toolchain). The original fae
// sampled only while a page was open, once per page load, so two viewers
// doubled the sampling rate and nobody watching meant no history
// (ORIGINAL-FAE.md §4.2); here one goroutine samples every Interval whether
// or not a page is open, and every viewer reads the same ring.
package dashboard

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/metrics"
	"github.com/fae-go/fae/servant"
)

// DefaultInterval is how often figures are sampled. 2 s: fine enough to see a
// burst of failures or a latency spike while it happens, coarse enough that
// sampling costs the process about 0.05% of a core (BenchmarkSample: about
// 1 ms and 340 KB of garbage a sample, nearly all of it the gather of the
// whole Prometheus registry), and that 30 minutes fit in DefaultCapacity
// samples.
const DefaultInterval = 2 * time.Second

// DefaultCapacity is how many samples the ring keeps: 900 × 2 s = the last 30
// minutes. See Sample for the memory this bounds.
const DefaultCapacity = 900

// Sources are what the dashboard reads. Engine is required; a nil field's
// figures are left out of the samples (their charts stay empty).
type Sources struct {
	Version, BuildID string
	Started          time.Time     // when faed started (zero = when New ran)
	Engine           *engine.Stats // calls, failures, active sessions
	// Servant gives the slow calls (servant.MethodStats.Slow of every method)
	// and the backend operations (servant.FunServant.Backends).
	Servant *servant.FunServant
	// Gatherer is where fae_call_duration_seconds is read for the latency
	// quantiles: (*metrics.Metrics).Registry(). Nil = no latency chart.
	Gatherer prometheus.Gatherer
	// Self is this node's address as shown in the header (its advertised
	// address in a cluster, else its RPC listen address).
	Self string
	// SelfDashboard is this dashboard's own host:port ("" = unknown).
	SelfDashboard string
	// Peers returns this node's address and the cluster's members; nil when
	// the cluster is off (the header then lists this node alone).
	Peers func() metrics.Peers
	// Breakers returns the breaker state of every backend server; nil = not
	// known (the breaker chart is left out).
	Breakers func() []BreakerState
}

// BreakerState is the circuit breaker of one backend server at one moment.
type BreakerState struct {
	Backend string // "mysql", "memcache", "redis", "mongodb", "peer"
	Pool    string // the pool's name
	Server  string // the server's address (or name)
	State   string // "closed", "half-open" or "open" (gobreaker's State.String)
}

// Options tune a Dashboard; the zero value means the defaults.
type Options struct {
	// Interval is the sampling period. Zero = DefaultInterval.
	Interval time.Duration
	// Capacity is the number of samples kept. Zero = DefaultCapacity.
	Capacity int
}

// Dashboard samples the figures of one faed and serves the page (it is an
// http.Handler). Create it with New and Stop it at exit. Safe for
// concurrent use.
type Dashboard struct {
	src      Sources
	interval time.Duration
	s        *sampler

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// New returns the Dashboard of src, takes a first sample (the baseline of
// the first rates) and starts sampling every opt.Interval in one goroutine,
// ended by Stop.
func New(src Sources, opt Options) *Dashboard {
	if src.Started.IsZero() {
		src.Started = time.Now()
	}
	if opt.Interval <= 0 {
		opt.Interval = DefaultInterval
	}
	if opt.Capacity <= 0 {
		opt.Capacity = DefaultCapacity
	}
	d := &Dashboard{src: src, interval: opt.Interval, s: newSampler(src, opt.Capacity),
		stop: make(chan struct{}), done: make(chan struct{})}
	d.s.sample(time.Now())
	go d.loop()
	return d
}

func (d *Dashboard) loop() {
	defer close(d.done)
	t := time.NewTicker(d.interval)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case now := <-t.C:
			d.s.sample(now)
		}
	}
}

// Stop ends the sampling goroutine and waits for it; the page keeps
// answering with the samples taken. Safe to call more than once.
func (d *Dashboard) Stop() {
	d.stopOnce.Do(func() {
		close(d.stop)
		<-d.done
	})
}
