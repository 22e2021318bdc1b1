// Package cache holds fae's in-process caches: a sharded LRU over hashicorp/golang-lru.
package cache

import (
	"hash/maphash"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// DefaultShards is the number of shards of a cache made by New: enough that two
// cores rarely wait on one lock, few enough that a small cache still holds
// maxItems items in total.
const DefaultShards = 32

// LRU is a cache of at most a fixed number of items, split into shards by a hash
// of the key, each shard an LRU under its own mutex, so calls on different keys
// seldom wait for one another. Recency is tracked per shard: the item evicted is
// the least recently used of its shard, not of the whole cache.
// Safe for concurrent use.
type LRU[V any] struct {
	seed   maphash.Seed
	shards []shard[V]
}

type shard[V any] struct {
	mu  sync.Mutex
	lru *simplelru.LRU[string, V]
	_   [40]byte // keep shards on separate cache lines
}

// New returns an LRU of at most maxItems items (at least 1) in DefaultShards
// shards (fewer when maxItems is smaller).
func New[V any](maxItems int) *LRU[V] {
	n := DefaultShards
	if maxItems < n {
		n = max(maxItems, 1)
	}
	c := &LRU[V]{seed: maphash.MakeSeed(), shards: make([]shard[V], n)}
	per, extra := max(maxItems, 1)/n, max(maxItems, 1)%n
	for i := range c.shards {
		size := per
		if i < extra {
			size++
		}
		c.shards[i].lru, _ = simplelru.NewLRU[string, V](size, nil) // size ≥ 1: never fails
	}
	return c
}

func (c *LRU[V]) shard(key string) *shard[V] {
	return &c.shards[maphash.String(c.seed, key)%uint64(len(c.shards))]
}

// Get returns the value of key and marks it used.
func (c *LRU[V]) Get(key string) (v V, ok bool) {
	s := c.shard(key)
	s.mu.Lock()
	v, ok = s.lru.Get(key)
	s.mu.Unlock()
	return v, ok
}

// Set stores v under key, evicting the least recently used item of its shard when full.
func (c *LRU[V]) Set(key string, v V) {
	s := c.shard(key)
	s.mu.Lock()
	s.lru.Add(key, v)
	s.mu.Unlock()
}

// Del removes key; it reports whether key was there.
func (c *LRU[V]) Del(key string) bool {
	s := c.shard(key)
	s.mu.Lock()
	ok := s.lru.Remove(key)
	s.mu.Unlock()
	return ok
}

// Update runs fn on the current value of key under the shard's lock, so a
// read-modify-write of one key is atomic. fn gets the value and whether it is
// present; it returns the new value and whether to store it (false leaves the
// entry as it is). Update returns what fn returned. fn must not call c.
func (c *LRU[V]) Update(key string, fn func(old V, ok bool) (V, bool)) (V, bool) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.lru.Peek(key)
	v, store := fn(old, ok)
	if store {
		s.lru.Add(key, v)
	}
	return v, store
}

// Len is the number of items in the cache.
func (c *LRU[V]) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += s.lru.Len()
		s.mu.Unlock()
	}
	return n
}
