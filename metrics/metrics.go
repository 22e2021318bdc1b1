// Package metrics exports faed's figures: the JSON endpoints of the HTTP API
// (/h, /engine/stat, /engine/runtime, /engine/conf, /svt/conf, /svt/stat,
// /engine/peers, /ready) and the Prometheus exposition at /metrics.
//
// Every figure is read at request or scrape time from the counters the engine
// (engine.Stats), the servant's call pipeline (servant.MethodStats) and the
// backend observer (pool.Counters) keep anyway: nothing here runs on the call
// path. The 1m/5m/15m rates come from github.com/rcrowley/go-metrics meters
// marked every MeterInterval with the counters' deltas.
package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	gometrics "github.com/rcrowley/go-metrics"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/peer"
	"github.com/fae-go/fae/servant"
)

// MeterInterval is how often the rate meters are marked with the counters'
// deltas: go-metrics' own tick (its meters' EWMAs decay every 5 s).
const MeterInterval = 5 * time.Second

// Sources are what the figures are read from. Engine is required; a nil
// field's figures are left out (null in JSON, absent in /metrics).
type Sources struct {
	Version, BuildID string
	Started          time.Time     // when faed started (zero = when New ran)
	Engine           *engine.Stats // the RPC server's counters
	Servant          *servant.FunServant
	// Config returns the loaded config (a *config.Config) for /engine/conf;
	// ServantConfig its servants section for /svt/conf. Secrets are masked
	// before they are shown (see Mask).
	Config, ServantConfig func() any
	// Peers returns this node's address and the cluster's members; nil when
	// the cluster is off (no etcd_servers).
	Peers func() Peers
	// Ready reports whether faed takes calls: false while starting or
	// draining (/ready answers 503 then). Nil = always ready.
	Ready func() bool
	// Reloads returns the config reloads applied and refused since start.
	Reloads func() (ok, failed int64)
	// LogDrops returns, by log stream ("log", "trace", "metrics"), the
	// records and bytes dropped since start because the stream could not
	// take them (queue full, disk full).
	LogDrops func() map[string][2]uint64
}

// Peers are the cluster figures of /engine/peers.
type Peers struct {
	Self    string        `json:"self"`    // this node's advertised address ("" = not a member)
	Members []peer.Member `json:"members"` // every registered member, this node included
	// Epoch counts the membership changes the registry applied
	// (peer.Registry.Epoch): 0 = not read yet.
	Epoch int64 `json:"epoch"`
	// LastEvent is the last ZooKeeper event the registry saw; nil = none yet.
	LastEvent *peer.ZKEvent `json:"last_event"`
}

// Metrics serves the figures of one faed. Create it with New, register its
// handlers with Register, and Stop it at exit.
type Metrics struct {
	src   Sources
	calls gometrics.Meter // calls (engine.Stats.Calls), marked every MeterInterval
	fails gometrics.Meter // failed calls (engine.Stats.CallErrors)
	reg   *prometheus.Registry

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// New returns the Metrics of src and starts marking its meters every
// MeterInterval (one goroutine, ended by Stop). With a Servant, it gives
// every method an observer of fae_call_duration_seconds (see
// servant.ObserveLatency).
func New(src Sources) *Metrics {
	if src.Started.IsZero() {
		src.Started = time.Now()
	}
	m := &Metrics{src: src, calls: gometrics.NewMeter(), fails: gometrics.NewMeter(),
		stop: make(chan struct{}), done: make(chan struct{})}
	m.reg = m.newRegistry()
	go m.mark(src.Engine.Calls.Load(), src.Engine.CallErrors.Load())
	return m
}

// mark feeds the meters with the counters' growth since the last tick.
func (m *Metrics) mark(calls, fails int64) {
	defer close(m.done)
	t := time.NewTicker(MeterInterval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			c, f := m.src.Engine.Calls.Load(), m.src.Engine.CallErrors.Load()
			m.calls.Mark(c - calls)
			m.fails.Mark(f - fails)
			calls, fails = c, f
		}
	}
}

// Stop ends the meters' goroutine; the handlers keep answering.
func (m *Metrics) Stop() {
	m.stopOnce.Do(func() {
		close(m.stop)
		<-m.done
		m.calls.Stop()
		m.fails.Stop()
	})
}
