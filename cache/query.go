package cache

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// Store is where the MySQL query cache keeps results, as opaque bytes.
// Implementations are safe for concurrent use.
//
// A read fills the cache through a lease, so that a write's invalidation always
// wins over a concurrent read's fill (REVIEW §2.B3; the original fae lost it):
//
//	v, ok, err := s.Get(ctx, key)   // miss:
//	l, err := s.Lease(ctx, key)     // before the SELECT
//	r := SELECT …
//	s.Fill(ctx, key, r, ttl, l)     // stores only if no Del(key) since Lease
//
// and a write runs Del(ctx, key) after its commit. A SELECT that started before
// the commit then never lands in the cache: if it began before the Lease, the
// Del comes after the Lease; if after, it reads the committed data.
type Store interface {
	// Get returns the value of key and whether it was there. The value must not be modified.
	Get(ctx context.Context, key string) ([]byte, bool, error)
	// Lease returns a lease on key, to be passed to Fill. Concurrent leases on
	// one key share a single lease until a Fill or Del ends it.
	Lease(ctx context.Context, key string) (Lease, error)
	// Fill stores value under key for ttl (0 = until evicted) if the lease still
	// holds: no Del of key, no other Fill through it, not evicted (nor, in Redis,
	// expired) since it was taken. It reports whether it stored; a value over
	// the store's item cap is not stored (false, nil, and counted). value must
	// not be modified afterwards.
	Fill(ctx context.Context, key string, value []byte, ttl time.Duration, l Lease) (stored bool, err error)
	// Del removes key and ends any lease on it; removing an absent key is not an error.
	Del(ctx context.Context, key string) error
	// Stats returns the store's counters.
	Stats() StoreStats
}

// Lease is a right to Fill one key, from Store.Lease. The zero Lease never holds.
type Lease struct{ id uint64 }

// StoreStats are the counters of a Store since it was made.
type StoreStats struct {
	Filled   int64 // Fill calls that stored
	Stale    int64 // Fill calls refused because the lease no longer held (a Del, another Fill, eviction or expiry)
	TooLarge int64 // Fill calls refused because the entry was over the item cap
}

type storeStats struct{ filled, stale, tooLarge atomic.Int64 }

func (s *storeStats) get() StoreStats {
	return StoreStats{Filled: s.filled.Load(), Stale: s.stale.Load(), TooLarge: s.tooLarge.Load()}
}

// count records the outcome of one Fill.
func (s *storeStats) count(stored bool) {
	if stored {
		s.filled.Add(1)
	} else {
		s.stale.Add(1)
	}
}

// MemStore is a Store in this process: an LRU bounded by items and bytes
// (mysql.cache_store_mem_max_items, mysql.cache_store_mem_max_bytes). Its item
// cap is the LRU's per-shard byte budget, MaxEntryBytes(maxItems, maxBytes): a
// result whose key, value and per-entry overhead exceed it is not stored. A lease is
// a mark on the key's entry (an entry with no value when the key is absent),
// so there is at most one lease per key, they count against the same budgets,
// and one evicted simply no longer holds: leases left by reads that never Fill
// cost no more than the cache's budgets.
type MemStore struct {
	lru     *LRU[memItem]
	now     func() time.Time
	leaseID atomic.Uint64
	stats   storeStats
}

type memItem struct {
	value   []byte
	filled  bool      // value is a result (false: the entry only holds a lease)
	lease   uint64    // the lease on the key; 0 = none
	expires time.Time // zero = never
}

// NewMemStore returns a MemStore of at most maxItems entries and maxBytes
// bytes (≤ 0: no byte budget and no item cap), results and leases together.
func NewMemStore(maxItems int, maxBytes int64) *MemStore {
	size := func(_ string, it memItem) int64 { return int64(len(it.value)) }
	return &MemStore{lru: New(maxItems, maxBytes, size), now: time.Now}
}

// Get implements Store; an expired result is a miss, and is removed.
func (s *MemStore) Get(_ context.Context, key string) ([]byte, bool, error) {
	it, ok := s.lru.Get(key)
	if !ok || !it.filled {
		return nil, false, nil
	}
	if it.expires.IsZero() {
		return it.value, true, nil // no TTL: no clock read
	}
	if now := s.now(); it.expired(now) {
		s.lru.removeIf(key, func(it memItem) bool { return it.expired(now) })
		return nil, false, nil
	}
	return it.value, true, nil
}

func (it memItem) expired(now time.Time) bool {
	return it.filled && !it.expires.IsZero() && now.After(it.expires)
}

// Lease implements Store. Its error wraps ErrTooLarge when the key alone is over the item cap.
func (s *MemStore) Lease(_ context.Context, key string) (Lease, error) {
	it, _, err := s.lru.Update(key, func(it memItem, ok bool) (memItem, bool) {
		if ok && it.lease != 0 {
			return it, false
		}
		it.lease = s.leaseID.Add(1)
		return it, true
	})
	if err != nil {
		return Lease{}, fmt.Errorf("query cache lease: %w", err)
	}
	return Lease{id: it.lease}, nil
}

// Fill implements Store.
func (s *MemStore) Fill(_ context.Context, key string, value []byte, ttl time.Duration, l Lease) (bool, error) {
	it := memItem{value: value, filled: true}
	if ttl > 0 {
		it.expires = s.now().Add(ttl)
	}
	if overCap(key, value, s.lru.overhead, s.lru.shardBytes) {
		s.stats.tooLarge.Add(1)
		return false, nil // checked first so that the lease stays, as in Redis
	}
	_, stored, err := s.lru.Update(key, func(old memItem, ok bool) (memItem, bool) {
		return it, ok && l.id != 0 && old.lease == l.id
	})
	s.stats.count(stored)
	return stored, err // err is nil: the entry fits
}

// overCap reports whether key and value with overhead are over the item cap
// limit (0 = none), the rule of both stores.
func overCap(key string, value []byte, overhead, limit int64) bool {
	return limit > 0 && int64(len(key)+len(value))+overhead > limit
}

// Del implements Store.
func (s *MemStore) Del(_ context.Context, key string) error {
	s.lru.Del(key)
	return nil
}

// Stats implements Store.
func (s *MemStore) Stats() StoreStats { return s.stats.get() }

// Len is the number of entries held: results (expired ones included until
// touched or evicted) and leases.
func (s *MemStore) Len() int { return s.lru.Len() }

// Bytes is the number of bytes charged for the entries held (see New).
func (s *MemStore) Bytes() int64 { return s.lru.Bytes() }

// Evictions is the number of entries evicted to make room.
func (s *MemStore) Evictions() int64 { return s.lru.Evictions() }

// MaxEntryBytes is the item cap: the largest entry stored, key, value and overhead.
func (s *MemStore) MaxEntryBytes() int64 { return s.lru.MaxEntryBytes() }
