package servant

import "slices"

// MethodNames returns the names of the methods counted by Stats ("ping",
// "lc.get", "my.query"…), in a fixed order; noop is not among them (it
// bypasses the call pipeline and only the engine counts it).
func MethodNames() []string { return slices.Clone(methodNames) }

// LcacheSize returns the lcache's item count and bytes (values' capacity,
// without per-item overhead); ok is false without servants.lcache.
func (s *FunServant) LcacheSize() (items int, bytes int64, ok bool) {
	if s.lcache == nil {
		return 0, 0, false
	}
	return s.lcache.Len(), s.lcache.Bytes(), true
}

// Config returns the config of the current generation: the one loaded last
// (at New or by the last successful Reload).
func (s *FunServant) Config() Config { return s.gen.Load().cfg }
