package servant

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Unix(1_700_000_000, 0)

// keysIn returns n keys that hash to the same shard of t as key, or to another when same is false.
func keysIn(t *lockTable, key string, same bool, n int) []string {
	var keys []string
	for i := 0; len(keys) < n; i++ {
		k := fmt.Sprint("k", i)
		if (t.shard(k) == t.shard(key)) == same && k != key {
			keys = append(keys, k)
		}
	}
	return keys
}

func TestLockTableLockUnlock(t *testing.T) {
	lt := newLockTable(10, 0)
	steps := []struct {
		key       string
		unlock    bool
		want      bool // got, or unlock's answer
		wantTaken bool
	}{
		{"a", false, true, false},
		{"a", false, false, false}, // held
		{"b", false, true, false},
		{"a", true, true, false},
		{"a", true, false, false}, // not held
		{"a", false, true, false},
	}
	for i, st := range steps {
		if st.unlock {
			if got := lt.unlockAny(st.key); got != st.want {
				t.Fatalf("step %d: unlock(%s) = %v", i, st.key, got)
			}
			continue
		}
		got, took, err := lt.lock(st.key, 1, t0, 0)
		if got != st.want || took != st.wantTaken || err != nil {
			t.Fatalf("step %d: lock(%s) = %v, %v, %v", i, st.key, got, took, err)
		}
	}
	if lt.len() != 2 {
		t.Fatalf("len = %d, want 2", lt.len())
	}
}

func TestLockTableFull(t *testing.T) {
	lt := newLockTable(4, 0)
	for _, k := range []string{"a", "b", "c", "d"} {
		if got, _, err := lt.lock(k, 1, t0, 0); !got || err != nil {
			t.Fatalf("lock(%s) = %v, %v", k, got, err)
		}
	}
	got, _, err := lt.lock("e", 1, t0, 0)
	if got || !errors.Is(err, ErrLockTableFull) || err.Error() != "lock table full: 4 locks held (servants.lock.max_items)" {
		t.Fatalf("lock in a full table = %v, %v", got, err)
	}
	// A held key in a full table is an ordinary "held", not an error.
	if got, _, err := lt.lock("a", 1, t0, 0); got || err != nil {
		t.Fatalf("lock(a) held in a full table = %v, %v", got, err)
	}
	lt.unlockAny("b")
	if got, _, err := lt.lock("e", 1, t0, 0); !got || err != nil {
		t.Fatalf("lock(e) after an unlock = %v, %v", got, err)
	}
	if st := lt.stats(); st != (lockTableStats{Held: 4, Refused: 1}) {
		t.Fatalf("stats %+v", st)
	}
}

// TestLockTableNeverEvicts: held locks survive any number of new ones, and
// keys that all hash to one shard can fill the whole table (REVIEW §2.B4).
func TestLockTableNeverEvicts(t *testing.T) {
	const max = 1000
	lt := newLockTable(max, 0)
	held := keysIn(lt, "x", true, max) // one shard only
	for _, k := range held {
		if got, _, err := lt.lock(k, 1, t0, time.Second); !got || err != nil {
			t.Fatalf("lock(%s) = %v, %v with %d held", k, got, err, lt.len())
		}
	}
	for i := range 20 * max {
		if got, _, err := lt.lock(fmt.Sprint("new", i), 1, t0, time.Second); got || !errors.Is(err, ErrLockTableFull) {
			t.Fatalf("new lock %d in a full table = %v, %v", i, got, err)
		}
	}
	for _, k := range held {
		if got, _, err := lt.lock(k, 1, t0.Add(time.Second), time.Second); got || err != nil {
			t.Fatalf("held lock %s: lock = %v, %v; want held", k, got, err)
		}
	}
	if st := lt.stats(); st.Held != max || st.Refused != 20*max || st.SweepRuns != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestLockTableExpiry(t *testing.T) {
	lt := newLockTable(10, 0)
	const exp = 10 * time.Second
	lt.lock("a", 1, t0, exp)
	if got, took, _ := lt.lock("a", 1, t0.Add(exp), exp); got || took {
		t.Fatal("taken over at exactly its expiry")
	}
	t1 := t0.Add(exp + time.Nanosecond)
	if got, took, err := lt.lock("a", 1, t1, exp); !got || !took || err != nil {
		t.Fatalf("lock past expiry = %v, %v, %v; want taken over", got, took, err)
	}
	if got, _, _ := lt.lock("a", 1, t1.Add(exp), exp); got {
		t.Fatal("the takeover did not restart the lock's time")
	}
	if got, _, _ := lt.lock("a", 1, t1.Add(time.Hour), 0); got {
		t.Fatal("taken over with expires 0 (never)")
	}
	if st := lt.stats(); st.Held != 1 || st.TookOver != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestLockTableFullSweepsShard: a full table drops the expired locks of the
// new key's shard, and only those, before refusing.
func TestLockTableFullSweepsShard(t *testing.T) {
	const exp = 10 * time.Second
	lt := newLockTable(4, 0)
	same, other := keysIn(lt, "new", true, 2), keysIn(lt, "new", false, 1)
	lt.lock(same[0], 1, t0, exp)
	lt.lock(same[1], 1, t0.Add(5*time.Second), exp)
	lt.lock(other[0], 1, t0, exp)
	lt.lock("new2", 1, t0.Add(8*time.Second), exp) // the fourth lock, in whatever shard
	if _, _, err := lt.lock("new", 1, t0.Add(exp), exp); !errors.Is(err, ErrLockTableFull) {
		t.Fatalf("nothing expired yet: %v", err)
	}
	if _, _, err := lt.lock("new", 1, t0.Add(exp+time.Second), exp); err != nil {
		t.Fatalf("with %s expired: %v", same[0], err)
	}
	if st := lt.stats(); st.Swept != 1 || st.Held != 4 || st.Refused != 1 {
		t.Fatalf("stats %+v", st)
	}
	if got, _, _ := lt.lock(same[1], 1, t0.Add(exp+time.Second), exp); got {
		t.Fatalf("%s, not expired, was dropped", same[1])
	}
	if !lt.unlockAny(other[0]) {
		t.Fatalf("%s, expired in another shard, was dropped", other[0])
	}
	// With expires 0 nothing is ever swept.
	lt = newLockTable(1, 0)
	lt.lock("a", 1, t0, 0)
	if _, _, err := lt.lock("b", 1, t0.Add(time.Hour), 0); !errors.Is(err, ErrLockTableFull) {
		t.Fatalf("expires 0: %v", err)
	}
}

func TestLockTableConcurrent(t *testing.T) {
	lt := newLockTable(6, 0) // 8 goroutines each holding up to two: the table fills
	var inside [16]atomic.Int32
	var wins, full, holding atomic.Int64
	var wg sync.WaitGroup
	try := func(k int) bool {
		got, _, err := lt.lock(fmt.Sprint("key", k), 1, time.Now(), 0)
		if errors.Is(err, ErrLockTableFull) {
			full.Add(1)
		}
		if got && !inside[k].CompareAndSwap(0, 1) {
			t.Errorf("key%d locked twice at once", k)
		}
		if got && holding.Add(1) > 6 {
			t.Errorf("%d locks held in a table of 6", holding.Load())
		}
		return got
	}
	release := func(k int) {
		holding.Add(-1)
		inside[k].Store(0)
		if !lt.unlockAny(fmt.Sprint("key", k)) {
			t.Errorf("key%d not held at unlock", k)
		}
	}
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				a, b := (g*7+i)%len(inside), (g*3+i*5+1)%len(inside)
				gotA := try(a)
				gotB := a != b && try(b)
				runtime.Gosched() // hold them a while
				if gotA {
					wins.Add(1)
					release(a)
				}
				if gotB {
					wins.Add(1)
					release(b)
				}
			}
		}()
	}
	wg.Wait()
	if n := lt.len(); n != 0 || wins.Load() == 0 || full.Load() == 0 || lt.stats().Refused != full.Load() {
		t.Fatalf("len %d, %d locks won, stats %+v, %d refusals seen", n, wins.Load(), lt.stats(), full.Load())
	}
	t.Logf("%d locks won, %d refused as full", wins.Load(), full.Load())
}

// unlockAny frees key as the rid that takes every lock in these tests (1).
func (t *lockTable) unlockAny(key string) bool {
	held, holder := t.unlock(key, 1, time.Time{}, 0)
	return held && holder == 0
}

// Only the rid that took a lock frees it before it expires (issue 8: the
// original let anyone unlock); after the expiry anyone may.
func TestLockTableUnlockByHolder(t *testing.T) {
	lt := newLockTable(10, 0)
	t0 := time.Unix(1000, 0)
	if got, _, _ := lt.lock("k", 7, t0, 10*time.Second); !got {
		t.Fatal("lock")
	}
	if held, holder := lt.unlock("k", 8, t0.Add(time.Second), 10*time.Second); !held || holder != 7 {
		t.Fatalf("unlock by another rid: held %v holder %d", held, holder)
	}
	if got, _, _ := lt.lock("k", 8, t0.Add(time.Second), 10*time.Second); got {
		t.Fatal("lock still held after another rid's unlock: taken")
	}
	if held, holder := lt.unlock("k", 8, t0.Add(11*time.Second), 10*time.Second); !held || holder != 0 {
		t.Fatalf("unlock by another rid past the expiry: held %v holder %d", held, holder)
	}
	if got, _, _ := lt.lock("k", 9, t0.Add(12*time.Second), 0); !got {
		t.Fatal("lock after the expired unlock")
	}
	if held, holder := lt.unlock("k", 9, t0.Add(13*time.Second), 0); !held || holder != 0 {
		t.Fatalf("unlock by the holder: held %v holder %d", held, holder)
	}
	if st := lt.stats(); st.NotHolder != 1 || st.Held != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestLockTableBytes: servants.lock.max_bytes bounds the bytes of the keys
// held: a lock whose key would pass it is refused as a full table, naming
// the limit, until an unlock frees room (found by review: 142 locks of 1 MB
// keys took 186 MB, and max_items alone allowed a million of them).
func TestLockTableBytes(t *testing.T) {
	lt := newLockTable(100, 100)
	now := time.Now()
	a, b, c := strings.Repeat("a", 40), strings.Repeat("b", 40), strings.Repeat("c", 40)
	for _, k := range []string{a, b} {
		if got, _, err := lt.lock(k, 1, now, time.Minute); !got || err != nil {
			t.Fatalf("lock of 40 bytes: %t, %v", got, err)
		}
	}
	_, _, err := lt.lock(c, 1, now, time.Minute)
	if !errors.Is(err, ErrLockTableFull) || !strings.Contains(err.Error(), "100 bytes of keys held (servants.lock.max_bytes), a key of 40 bytes more") {
		t.Fatalf("a third key of 40 bytes in 100: %v", err)
	}
	if held, _ := lt.unlock(a, 1, now, time.Minute); !held {
		t.Fatal("unlock of a held key: not held")
	}
	if got, _, err := lt.lock(c, 1, now, time.Minute); !got || err != nil {
		t.Fatalf("after an unlock: %t, %v", got, err)
	}
	if n, bytes := lt.len(), lt.bytes.Load(); n != 2 || bytes != 80 {
		t.Errorf("%d locks of %d bytes, want 2 of 80", n, bytes)
	}
}

// TestLockTableSweepsExpired: expired locks are dropped, and their memory
// freed, by the next new lock of their shard once a quarter of expires has
// passed, not only when the table is full (found by review: expired 1 MB
// keys stayed in memory).
func TestLockTableSweepsExpired(t *testing.T) {
	lt := newLockTable(1<<20, 0)
	t0 := time.Now()
	const n = 1000
	for i := range n {
		lt.lock(fmt.Sprintf("k%d", i), 1, t0, time.Second)
	}
	if lt.len() != n {
		t.Fatalf("%d locks held, want %d", lt.len(), n)
	}
	later := t0.Add(2 * time.Second)
	const fresh = 32 * lockShards // every shard gets some: the odds that one gets none are 32 × (31/32)^1024, about 10^-13
	for i := range fresh {
		lt.lock(fmt.Sprintf("new%d", i), 1, later, time.Second)
	}
	if got := lt.len(); got != fresh {
		t.Errorf("%d locks held after the expired ones' shards took new locks, want only the %d new ones", got, fresh)
	}
}
