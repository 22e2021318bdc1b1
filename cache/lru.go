// Package cache holds fae's in-process caches: a sharded LRU over hashicorp/golang-lru,
// bounded by items and bytes, and the stores of the MySQL query cache.
package cache

import (
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// DefaultShards is the number of shards of a cache made by New: enough that two
// cores rarely wait on one lock, few enough that a small cache still holds
// maxItems items in total.
const DefaultShards = 32

// EntryOverhead is the number of bytes charged for each entry on top of its key
// and value, for a value type V of at most 24 bytes ([]byte, string, a pointer,
// time.Time): simplelru's list element (links, key and value headers, an expiry
// time it does not use: 104 bytes, allocated as 112) and the entry's slot in the
// shard's map (a key header and a pointer, 24 bytes, and 4 to 33 more of free
// slots as the map grows), rounded up. A wider V is charged the excess as well
// (see LRU.Overhead). TestLRUHeapPerEntry checks it against the heap.
const EntryOverhead = 160

// ErrTooLarge is returned (wrapped, with the sizes) by Set and Update for an
// entry larger than a shard's byte budget.
var ErrTooLarge = errors.New("cache: entry too large")

// LRU is a cache bounded by a number of items and a number of bytes, split into
// shards by a hash of the key, each shard an LRU under its own mutex with its
// share of both budgets, so calls on different keys seldom wait for one another.
// Recency is tracked per shard: the entries evicted to make room are the least
// recently used of the new entry's shard, not of the whole cache.
// Safe for concurrent use.
type LRU[V any] struct {
	seed       maphash.Seed
	shards     []shard[V]
	shardBytes int64 // byte budget of each shard; 0 = no byte budget
	overhead   int64 // bytes charged per entry besides key and value
	size       func(key string, v V) int64
	evictions  atomic.Int64
	refusals   atomic.Int64
}

// A shard is padded to 64 bytes (a common cache-line size; its fields take 24
// on 64-bit platforms) so that a shard's mutex seldom shares a line with its
// neighbours'. The slice is not guaranteed to start on a line boundary, so two
// shards may still share one line: the pad bounds false sharing, it does not
// rule it out. TestShardSize checks the size.
type shard[V any] struct {
	mu    sync.Mutex
	lru   *simplelru.LRU[string, entry[V]]
	bytes int64 // charged bytes of the entries held, under mu
	_     [40]byte
}

type entry[V any] struct {
	v      V
	charge int64 // bytes charged: len(key) + size(key, v) + overhead
}

// overheadOf is the per-entry overhead of an LRU[V]: EntryOverhead, plus the
// bytes by which V is wider than the 24 it allows for.
func overheadOf[V any]() int64 {
	var e entry[V]
	return EntryOverhead + max(0, int64(unsafe.Sizeof(e))-32)
}

// New returns an LRU of at most maxItems items (at least 1) and, when maxBytes
// > 0, at most maxBytes bytes, in DefaultShards shards (fewer when maxItems is
// smaller). Each shard holds maxItems/shards items (the remainder spread one
// each over the first shards) and maxBytes/shards bytes; MaxEntryBytes gives the
// latter, the largest entry the cache accepts. An entry is charged len(key) +
// size(key, v) + Overhead() bytes; size should give the bytes the value holds
// beyond its own inline size (e.g. len(v) for a []byte) and is called once per
// Set or Update. A nil size counts values as 0 bytes. maxBytes ≤ 0 means no byte
// budget.
func New[V any](maxItems int, maxBytes int64, size func(key string, v V) int64) *LRU[V] {
	n := shardCount(maxItems)
	if size == nil {
		size = func(string, V) int64 { return 0 }
	}
	c := &LRU[V]{seed: maphash.MakeSeed(), shards: make([]shard[V], n),
		shardBytes: MaxEntryBytes(maxItems, maxBytes), overhead: overheadOf[V](), size: size}
	per, extra := max(maxItems, 1)/n, max(maxItems, 1)%n
	for i := range c.shards {
		items := per
		if i < extra {
			items++
		}
		s := &c.shards[i]
		// The callback runs under s.mu: simplelru calls it from Add, Remove and RemoveOldest.
		s.lru, _ = simplelru.NewLRU(items, func(_ string, e entry[V]) { s.bytes -= e.charge }) // items ≥ 1: never fails
	}
	return c
}

func shardCount(maxItems int) int {
	return min(DefaultShards, max(maxItems, 1))
}

// MaxEntryBytes is the byte budget of one shard of New(maxItems, maxBytes, …),
// which is the largest entry (key, value and overhead) it accepts: maxBytes
// divided by the number of shards; 0 when maxBytes ≤ 0 (no byte budget).
// Issue 7's rule: an entry over the per-shard budget is refused rather than
// emptying a whole shard for it.
func MaxEntryBytes(maxItems int, maxBytes int64) int64 {
	if maxBytes <= 0 {
		return 0
	}
	return max(maxBytes/int64(shardCount(maxItems)), 1)
}

func (c *LRU[V]) shard(key string) *shard[V] {
	return &c.shards[maphash.String(c.seed, key)%uint64(len(c.shards))]
}

// Get returns the value of key and marks it used.
func (c *LRU[V]) Get(key string) (v V, ok bool) {
	s := c.shard(key)
	s.mu.Lock()
	e, ok := s.lru.Get(key)
	s.mu.Unlock()
	return e.v, ok
}

// Set stores v under key, evicting the least recently used entries of its shard
// until both of the shard's budgets hold. An entry larger than MaxEntryBytes is
// refused with an error wrapping ErrTooLarge that gives its size and the limit;
// an entry already under key is then removed, as v was meant to replace it.
func (c *LRU[V]) Set(key string, v V) error {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	return c.add(s, key, v)
}

// add stores v under key in s, which the caller has locked.
func (c *LRU[V]) add(s *shard[V], key string, v V) error {
	charge := int64(len(key)) + c.size(key, v) + c.overhead
	if c.shardBytes > 0 && charge > c.shardBytes {
		s.lru.Remove(key)
		c.refusals.Add(1)
		return tooLarge(charge, len(key), c.overhead, c.shardBytes, len(c.shards))
	}
	if old, ok := s.lru.Peek(key); ok {
		s.bytes -= old.charge // Add replaces it without calling back
	}
	s.bytes += charge
	if s.lru.Add(key, entry[V]{v: v, charge: charge}) {
		c.evictions.Add(1)
	}
	for c.shardBytes > 0 && s.bytes > c.shardBytes {
		s.lru.RemoveOldest() // never the entry just added: it fits the budget on its own
		c.evictions.Add(1)
	}
	return nil
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
// entry as it is, and does not mark it used). Update returns what fn returned;
// storing obeys the budgets as Set does, and a refused value returns stored
// false and Set's error. fn must not call c.
func (c *LRU[V]) Update(key string, fn func(old V, ok bool) (V, bool)) (v V, stored bool, err error) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.lru.Peek(key)
	v, store := fn(old.v, ok)
	if !store {
		return v, false, nil
	}
	if err := c.add(s, key, v); err != nil {
		return v, false, err
	}
	return v, true, nil
}

func tooLarge(charge int64, keyLen int, overhead, limit int64, shards int) error {
	return fmt.Errorf("%w: %d bytes (key %d, value %d, overhead %d) > %d bytes, the byte budget of one of %d shards",
		ErrTooLarge, charge, keyLen, charge-int64(keyLen)-overhead, overhead, limit, shards)
}

// removeIf removes key if it is there and drop(its value) is true.
func (c *LRU[V]) removeIf(key string, drop func(V) bool) {
	s := c.shard(key)
	s.mu.Lock()
	if e, ok := s.lru.Peek(key); ok && drop(e.v) {
		s.lru.Remove(key)
	}
	s.mu.Unlock()
}

// Len is the number of entries in the cache.
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

// Bytes is the number of bytes charged for the entries in the cache
// (see New), at most maxBytes when there is a byte budget.
func (c *LRU[V]) Bytes() int64 {
	var n int64
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += s.bytes
		s.mu.Unlock()
	}
	return n
}

// Overhead is the number of bytes charged per entry besides its key and value:
// EntryOverhead, plus the bytes by which the value type is wider than 24.
func (c *LRU[V]) Overhead() int64 { return c.overhead }

// MaxEntryBytes is the largest entry the cache accepts, in bytes (key, value
// and Overhead): the byte budget of one shard; 0 = no byte budget.
func (c *LRU[V]) MaxEntryBytes() int64 { return c.shardBytes }

// Evictions is the number of entries removed to make room since New (not
// counting Del, replacements, or entries removed by a refused Set).
func (c *LRU[V]) Evictions() int64 { return c.evictions.Load() }

// Refusals is the number of Set and Update calls refused with ErrTooLarge since New.
func (c *LRU[V]) Refusals() int64 { return c.refusals.Load() }
