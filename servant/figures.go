package servant

import (
	"cmp"
	"slices"

	"github.com/fae-go/fae/pool"
	"github.com/fae-go/fae/proxy"
)

// MethodNames returns the names of the methods counted by Stats ("ping",
// "lc.get", "my.query"…), in a fixed order; noop is not among them (it
// bypasses the call pipeline and only the engine counts it).
func MethodNames() []string { return slices.Clone(methodNames) }

// LcacheSize returns the lcache's item count and the bytes charged against
// its max_bytes (keys, values' capacity and the fixed per-item overhead, see
// cache.LRU.Bytes); ok is false without servants.lcache.
func (s *FunServant) LcacheSize() (items int, bytes int64, ok bool) {
	if s.lcache == nil {
		return 0, 0, false
	}
	return s.lcache.Len(), s.lcache.Bytes(), true
}

// Config returns the config of the current generation: the one loaded last
// (at New or by the last successful Reload).
func (s *FunServant) Config() Config { return s.gen.Load().cfg }

// LatencyObserver receives the duration of one call, in seconds, when it
// ends (a prometheus.Observer, such as one curried child of a HistogramVec,
// fits). Observe runs on every call's path: it must be fast, not allocate and
// be safe for concurrent use.
type LatencyObserver interface{ Observe(seconds float64) }

type latencyBox struct{ o LatencyObserver }

// ObserveLatency gives each method its LatencyObserver, fn(name) for every
// name of MethodNames (a nil result: that method is not observed), asked once
// here so that a call pays one atomic load and the observer's own cost. Safe
// to call while calls run; a later call replaces the observers.
func (s *FunServant) ObserveLatency(fn func(method string) LatencyObserver) {
	for _, name := range methodNames {
		if o := fn(name); o != nil {
			s.stats[name].latency.Store(&latencyBox{o})
		} else {
			s.stats[name].latency.Store(nil)
		}
	}
}

// PoolStats returns the connections and breaker state of every server of the
// current generation's pools (see pool.ServerStats; sorted by backend, pool
// and server) and of every peer this node forwards to (Backend "peer", Pool
// and Server the peer's address: Open = Idle + InUse, InUse the calls
// holding or dialling one of pool_capacity connections plus the open
// pipelined connections, which are shared, never idle). Empty after Close.
// It takes no lock that a call takes.
func (s *FunServant) PoolStats() []pool.ServerStats {
	g := s.pin()
	defer g.unpin()
	out := []pool.ServerStats{}
	if g.my != nil {
		out = append(out, g.my.cluster.Stats()...)
	}
	if g.mc != nil {
		out = append(out, g.mc.Stats()...)
	}
	if g.mg != nil {
		out = append(out, g.mg.Stats()...)
	}
	if g.rd != nil {
		out = append(out, g.rd.Stats()...)
	}
	if !g.closed {
		for _, p := range s.proxies.Stats() {
			out = append(out, pool.ServerStats{Backend: proxy.Backend, Pool: p.Peer.Addr, Server: p.Peer.Addr,
				Open: p.Busy + p.Idle + p.PipeConns, Idle: p.Idle, InUse: p.Busy + p.PipeConns, Waiting: int(p.Waiting),
				Breaker: p.Breaker, Dial: p.DialBreaker, Command: p.CommandBreaker})
		}
	}
	slices.SortStableFunc(out, func(a, b pool.ServerStats) int { return cmp.Compare(a.Backend, b.Backend) })
	return out
}
