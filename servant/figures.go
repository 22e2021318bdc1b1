package servant

import "slices"

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
