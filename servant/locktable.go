package servant

import (
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// lockShards is the number of shards of a lockTable, as cache.DefaultShards.
const lockShards = 32

// ErrLockTableFull is returned (wrapped, with the limit) by lock when
// servants.lock.max_items locks are held and the key is not one of them.
var ErrLockTableFull = errors.New("lock table full")

// lockTable is the table of lock/unlock: which keys are locked, since when.
// Unlike an LRU it never drops a held lock to make room (REVIEW §2.B4): a full
// table refuses new locks instead, and only unlock, or a takeover or sweep past
// the expiry, ends one. The bound is on the whole table, so keys that hash to
// few shards do not make it full early. Safe for concurrent use.
type lockTable struct {
	max      int64
	maxBytes int64        // bytes of the keys held at most; 0 = none
	n        atomic.Int64 // locks held, all shards
	bytes    atomic.Int64 // bytes of the keys of the locks held
	seed     maphash.Seed
	shards   [lockShards]lockShard

	refused   atomic.Int64
	tookOver  atomic.Int64
	notHolder atomic.Int64
	swept     atomic.Int64
	sweepRuns atomic.Int64
}

type lockShard struct {
	mu   sync.Mutex
	held map[string]lockHolder
	// oldest is no later than the time any lock held in the shard was taken,
	// so a sweep can be skipped while nothing can have expired. Zero: none held.
	oldest time.Time
	// swept is when the shard was last swept: a new lock sweeps it when its
	// oldest lock has expired and a quarter of expires has passed since, so
	// expired locks free their memory within 1.25 × expires without a scan
	// per lock (before, only a full table swept).
	swept time.Time
}

// lockHolder is who holds a lock: the rid of the call that took it, and when.
type lockHolder struct {
	at  time.Time // when it was taken
	rid int64     // the taker's Context.rid: only the same rid unlocks it before it expires
}

// lockTableStats are a lockTable's counters since it was made.
type lockTableStats struct {
	Held      int64 // locks held now
	Refused   int64 // new locks refused because the table was full
	TookOver  int64 // locks taken over past their expiry
	NotHolder int64 // unlocks by another rid, which left the lock held
	Swept     int64 // expired locks dropped to make room in a full table
	SweepRuns int64 // scans of a shard for expired locks
}

// newLockTable returns an empty table of at most maxItems locks
// (servants.lock.max_items; at least 1) whose keys take at most maxBytes
// (servants.lock.max_bytes; 0 = no bound).
func newLockTable(maxItems int, maxBytes int64) *lockTable {
	t := &lockTable{max: int64(max(maxItems, 1)), maxBytes: maxBytes, seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].held = map[string]lockHolder{}
	}
	return t
}

func (t *lockTable) shard(key string) *lockShard {
	return &t.shards[maphash.String(t.seed, key)%lockShards]
}

// lock takes the lock named key at now, without waiting. got is true if it was
// free, or (with expires > 0) held since more than expires before now: then
// tookOver is true as well, and the caller should log it (as the original
// did). A held lock gives false, false, nil. A new lock in a full table first
// drops the expired locks of its shard (with expires > 0), then, if still
// full, is refused with an error wrapping ErrLockTableFull, e.g.
// "lock table full: 1048576 locks held (servants.lock.max_items)", or
// "lock table full: 67108864 bytes of keys held (servants.lock.max_bytes), a
// key of 300 bytes more".
func (t *lockTable) lock(key string, rid int64, now time.Time, expires time.Duration) (got, tookOver bool, err error) {
	s := t.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, ok := s.held[key]; ok {
		if expires <= 0 || now.Sub(h.at) <= expires {
			return false, false, nil
		}
		s.held[key] = lockHolder{at: now, rid: rid}
		t.tookOver.Add(1)
		return true, true, nil
	}
	if expires > 0 && now.Sub(s.swept) > expires/4 {
		t.sweep(s, now, expires)
	}
	if err := t.reserve(len(key)); err != nil {
		if expires <= 0 || t.sweep(s, now, expires) == 0 {
			t.refused.Add(1)
			return false, false, err
		}
		if err = t.reserve(len(key)); err != nil {
			t.refused.Add(1)
			return false, false, err
		}
	}
	s.held[key] = lockHolder{at: now, rid: rid}
	if s.oldest.IsZero() || now.Before(s.oldest) {
		s.oldest = now
	}
	return true, false, nil
}

// reserve counts one more lock held, of a key of size bytes, unless the
// table is full (an error wrapping ErrLockTableFull naming the limit).
func (t *lockTable) reserve(size int) error {
	if t.maxBytes > 0 {
		if b := t.bytes.Add(int64(size)); b > t.maxBytes {
			t.bytes.Add(-int64(size))
			return fmt.Errorf("%w: %d bytes of keys held (servants.lock.max_bytes), a key of %d bytes more", ErrLockTableFull, t.maxBytes, size)
		}
	}
	for {
		n := t.n.Load()
		if n >= t.max {
			if t.maxBytes > 0 {
				t.bytes.Add(-int64(size))
			}
			return fmt.Errorf("%w: %d locks held (servants.lock.max_items)", ErrLockTableFull, t.max)
		}
		if t.n.CompareAndSwap(n, n+1) {
			return nil
		}
	}
}

// release uncounts a lock of key dropped from the table.
func (t *lockTable) release(key string) {
	t.n.Add(-1)
	if t.maxBytes > 0 {
		t.bytes.Add(-int64(len(key)))
	}
}

// sweep drops the locks of s, which the caller holds, taken more than expires
// before now, and returns how many it dropped. It scans only when the shard's
// oldest lock may have expired.
func (t *lockTable) sweep(s *lockShard, now time.Time, expires time.Duration) int {
	s.swept = now
	if s.oldest.IsZero() || now.Sub(s.oldest) <= expires {
		return 0
	}
	t.sweepRuns.Add(1)
	dropped := 0
	s.oldest = time.Time{}
	for k, h := range s.held {
		if now.Sub(h.at) > expires {
			delete(s.held, k)
			t.release(k)
			dropped++
		} else if s.oldest.IsZero() || h.at.Before(s.oldest) {
			s.oldest = h.at
		}
	}
	t.swept.Add(int64(dropped))
	return dropped
}

// unlock frees the lock named key if rid took it, or if (with expires > 0) it
// was taken more than expires before now. It reports whether the key was
// held, and holder, the rid holding it, when another rid's unlock left it
// held (counted: the original let anyone unlock any lock).
func (t *lockTable) unlock(key string, rid int64, now time.Time, expires time.Duration) (held bool, holder int64) {
	s := t.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.held[key]
	if !ok {
		return false, 0
	}
	if h.rid != rid && (expires <= 0 || now.Sub(h.at) <= expires) {
		t.notHolder.Add(1)
		return true, h.rid
	}
	delete(s.held, key)
	t.release(key)
	return true, 0
}

// len is the number of locks held.
func (t *lockTable) len() int { return int(t.n.Load()) }

// stats returns the table's counters.
func (t *lockTable) stats() lockTableStats {
	return lockTableStats{Held: t.n.Load(), Refused: t.refused.Load(), TookOver: t.tookOver.Load(), NotHolder: t.notHolder.Load(),
		Swept: t.swept.Load(), SweepRuns: t.sweepRuns.Load()}
}
