package pool

import (
	"cmp"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Op is one backend operation as reported to an Observer, when it has ended.
// No key, id or statement is in it: every field has few values, so it can
// label a metric.
type Op struct {
	Backend  string        // "mysql", "memcache", "redis", "mongodb"
	Pool     string        // the pool named by the caller (unknown pools are reported as "")
	Server   string        // the server asked ("" when none was chosen)
	Name     string        // the operation: "get", "GET", "query", "find_one"…
	Kind     Kind          // its outcome
	Duration time.Duration // from the start of the operation to its end, borrowing included
}

// Observer is told of every backend operation exactly once, when it ends: the
// one hook the backend figures come from. Observe runs on the call path, so it
// must be fast and safe for concurrent use.
type Observer interface {
	Observe(Op)
}

// NopObserver observes nothing.
type NopObserver struct{}

// Observe implements Observer.
func (NopObserver) Observe(Op) {}

// Counters is an Observer that counts operations by backend, pool, server and
// operation name, with a counter per kind and the total time. It lives as long
// as the process (in the servant's core), so counters never go back when pools
// are replaced. Safe for concurrent use.
//
// Observe reads an immutable map, replaced whole (copy on write) when an
// operation is seen for the first time: operations have few distinct keys
// (see Op), all seen in the first calls, while every backend call of every
// core observes; a read lock's shared counter cost each of them a contended
// cache line.
type Counters struct {
	mu sync.Mutex                            // serialises the replacements of m
	m  atomic.Pointer[map[opKey]*OpCounters] // never nil, never written once stored
}

type opKey struct{ backend, pool, server, name string }

// OpCounters are the counters of one (backend, pool, server, operation).
type OpCounters struct {
	Backend, Pool, Server, Name string
	Kinds                       [numKinds]atomic.Int64 // operations by Kind
	Nanos                       atomic.Int64           // total duration, ns
}

// Count is the number of operations of kind k.
func (c *OpCounters) Count(k Kind) int64 { return c.Kinds[k].Load() }

// Total is the number of operations of every kind.
func (c *OpCounters) Total() int64 {
	var n int64
	for i := range c.Kinds {
		n += c.Kinds[i].Load()
	}
	return n
}

// NewCounters returns empty Counters.
func NewCounters() *Counters {
	c := &Counters{}
	c.m.Store(&map[opKey]*OpCounters{})
	return c
}

// Observe implements Observer.
func (c *Counters) Observe(o Op) {
	k := opKey{o.Backend, o.Pool, o.Server, o.Name}
	oc := (*c.m.Load())[k]
	if oc == nil {
		oc = c.add(k)
	}
	if o.Kind < numKinds {
		oc.Kinds[o.Kind].Add(1)
	}
	oc.Nanos.Add(int64(o.Duration))
}

// add returns the counters of k, adding them (a new map) if they are not there.
func (c *Counters) add(k opKey) *OpCounters {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.m.Load()
	if oc := old[k]; oc != nil {
		return oc
	}
	m := make(map[opKey]*OpCounters, len(old)+1)
	maps.Copy(m, old)
	oc := &OpCounters{Backend: k.backend, Pool: k.pool, Server: k.server, Name: k.name}
	m[k] = oc
	c.m.Store(&m)
	return oc
}

// Snapshot returns the counters of every operation seen so far, sorted by
// backend, pool, server and name. The values keep counting.
func (c *Counters) Snapshot() []*OpCounters {
	m := *c.m.Load()
	out := make([]*OpCounters, 0, len(m))
	for _, oc := range m {
		out = append(out, oc)
	}
	slices.SortFunc(out, func(a, b *OpCounters) int {
		return cmp.Or(cmp.Compare(a.Backend, b.Backend), cmp.Compare(a.Pool, b.Pool),
			cmp.Compare(a.Server, b.Server), cmp.Compare(a.Name, b.Name))
	})
	return out
}

// Sum is the number of operations of kind k of backend (every backend when
// backend is ""), over every pool, server and operation.
func (c *Counters) Sum(backend string, k Kind) int64 {
	var n int64
	for _, oc := range c.Snapshot() {
		if backend == "" || oc.Backend == backend {
			n += oc.Count(k)
		}
	}
	return n
}
