package cache

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testFillProtocol runs the deterministic interleavings of Lease, Fill and Del
// on a fresh store from newStore (REVIEW §2.B3: a write's Del always wins).
func testFillProtocol(t *testing.T, newStore func(t *testing.T) Store) {
	ctx := context.Background()
	a, b := []byte("result A"), []byte("result B")
	lease := func(t *testing.T, s Store, key string) Lease {
		t.Helper()
		l, err := s.Lease(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	fill := func(t *testing.T, s Store, key string, v []byte, l Lease, want bool) {
		t.Helper()
		if stored, err := s.Fill(ctx, key, v, 0, l); err != nil || stored != want {
			t.Fatalf("Fill(%q) = %v, %v; want %v", v, stored, err, want)
		}
	}
	expect := func(t *testing.T, s Store, key string, want []byte) {
		t.Helper()
		v, ok, err := s.Get(ctx, key)
		if err != nil || ok != (want != nil) || !bytes.Equal(v, want) {
			t.Fatalf("Get = %q, %v, %v; want %q", v, ok, err, want)
		}
	}
	del := func(t *testing.T, s Store, key string) {
		t.Helper()
		if err := s.Del(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name       string
		run        func(t *testing.T, s Store)
		want       []byte
		stats      StoreStats
		checkStats bool
	}{
		{"lease fill", func(t *testing.T, s Store) {
			fill(t, s, "k", a, lease(t, s, "k"), true)
		}, a, StoreStats{Filled: 1}, true},
		{"lease del fill", func(t *testing.T, s Store) {
			l := lease(t, s, "k")
			del(t, s, "k")
			fill(t, s, "k", a, l, false)
		}, nil, StoreStats{Stale: 1}, true},
		{"lease fill del", func(t *testing.T, s Store) {
			l := lease(t, s, "k")
			fill(t, s, "k", a, l, true)
			del(t, s, "k")
			fill(t, s, "k", a, l, false) // a lease fills once
		}, nil, StoreStats{Filled: 1, Stale: 1}, true},
		{"two leases, del between, fills in order", func(t *testing.T, s Store) {
			la := lease(t, s, "k")
			del(t, s, "k")
			lb := lease(t, s, "k")
			fill(t, s, "k", a, la, false)
			fill(t, s, "k", b, lb, true)
		}, b, StoreStats{Filled: 1, Stale: 1}, true},
		{"two leases, del between, fills reversed", func(t *testing.T, s Store) {
			la := lease(t, s, "k")
			del(t, s, "k")
			lb := lease(t, s, "k")
			fill(t, s, "k", b, lb, true)
			fill(t, s, "k", a, la, false)
		}, b, StoreStats{Filled: 1, Stale: 1}, true},
		{"two leases, no del: shared, first fill wins", func(t *testing.T, s Store) {
			la, lb := lease(t, s, "k"), lease(t, s, "k")
			if la != lb {
				t.Fatalf("concurrent leases %v and %v differ", la, lb)
			}
			fill(t, s, "k", a, la, true)
			fill(t, s, "k", b, lb, false)
		}, a, StoreStats{Filled: 1, Stale: 1}, true},
		{"lease on a cached value replaces it", func(t *testing.T, s Store) {
			fill(t, s, "k", a, lease(t, s, "k"), true)
			fill(t, s, "k", b, lease(t, s, "k"), true)
		}, b, StoreStats{Filled: 2}, true},
		{"del then lease of a cached key", func(t *testing.T, s Store) {
			fill(t, s, "k", a, lease(t, s, "k"), true)
			l := lease(t, s, "k")
			del(t, s, "k")
			expect(t, s, "k", nil)
			fill(t, s, "k", b, l, false)
		}, nil, StoreStats{Filled: 1, Stale: 1}, true},
		{"zero lease never fills", func(t *testing.T, s Store) {
			lease(t, s, "k")
			fill(t, s, "k", a, Lease{}, false)
		}, nil, StoreStats{Stale: 1}, true},
		{"a lease is per key", func(t *testing.T, s Store) {
			l := lease(t, s, "other")
			lease(t, s, "k")
			fill(t, s, "k", a, l, false)
		}, nil, StoreStats{Stale: 1}, true},
		{"del of an absent key", func(t *testing.T, s Store) { del(t, s, "k") }, nil, StoreStats{}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newStore(t)
			c.run(t, s)
			expect(t, s, "k", c.want)
			if got := s.Stats(); c.checkStats && got != c.stats {
				t.Errorf("Stats = %+v, want %+v", got, c.stats)
			}
		})
	}
	t.Run("values read back exactly", func(t *testing.T) {
		s := newStore(t)
		all := make([]byte, 512)
		for i := range all {
			all[i] = byte(i)
		}
		for i, v := range [][]byte{all, {}, []byte("\r\n$-1\r\n"), bytes.Repeat([]byte{0}, 100)} {
			k := strconv.Itoa(i)
			fill(t, s, k, v, lease(t, s, k), true)
			expect(t, s, k, v)
		}
	})
	t.Run("concurrent reads and writes never leave a stale result", func(t *testing.T) {
		testNoStaleFill(t, newStore(t))
	})
}

// testNoStaleFill has readers fill keys from a versioned "database" through
// leases while writers bump a key's version and then Del it, as my_query does.
// Once a writer's Del has returned, no reader may find an older version.
func testNoStaleFill(t *testing.T, s Store) {
	const keys = 4
	var db, floor [keys]atomic.Int64 // floor: a version whose Del has returned
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			<-start
			for range 2000 {
				i := r.IntN(keys)
				if g%3 == 0 {
					write(t, s, strconv.Itoa(i), &db[i], &floor[i])
				} else {
					read(t, s, strconv.Itoa(i), &db[i], &floor[i])
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	for i := range keys {
		read(t, s, strconv.Itoa(i), &db[i], &floor[i])
	}
	t.Logf("stats %+v", s.Stats())
}

// write commits a new version, then invalidates.
func write(t *testing.T, s Store, k string, db, floor *atomic.Int64) {
	v := db.Add(1)
	runtime.Gosched()
	if err := s.Del(context.Background(), k); err != nil {
		t.Error(err)
	}
	for f := floor.Load(); f < v && !floor.CompareAndSwap(f, v); f = floor.Load() {
	}
}

// read checks a hit against the floor, or fills a miss.
func read(t *testing.T, s Store, k string, db, floor *atomic.Int64) {
	ctx := context.Background()
	min := floor.Load()
	if b, ok, err := s.Get(ctx, k); err != nil || ok {
		if v, _ := strconv.ParseInt(string(b), 10, 64); ok && v < min {
			t.Errorf("key %s: cached version %d, but version %d was written and its Del returned", k, v, min)
		}
		return
	}
	l, err := s.Lease(ctx, k)
	if err != nil {
		t.Error(err)
		return
	}
	v := db.Load() // the SELECT, which takes a while
	runtime.Gosched()
	if _, err := s.Fill(ctx, k, []byte(strconv.FormatInt(v, 10)), 0, l); err != nil {
		t.Error(err)
	}
}

func TestMemStoreFillProtocol(t *testing.T) {
	testFillProtocol(t, func(*testing.T) Store { return NewMemStore(1000, 1<<20) })
}

func TestMemStoreTTL(t *testing.T) {
	s := NewMemStore(100, 1<<20) // 3 or 4 items a shard: two keys never evict each other
	now := time.Unix(1000, 0)
	s.now = func() time.Time { return now }
	ctx := context.Background()
	l, _ := s.Lease(ctx, "forever")
	s.Fill(ctx, "forever", []byte("a"), 0, l)
	l, _ = s.Lease(ctx, "short")
	s.Fill(ctx, "short", []byte("b"), time.Second, l)
	now = now.Add(time.Second)
	if v, ok, _ := s.Get(ctx, "short"); !ok || string(v) != "b" {
		t.Errorf("short = %q %v at its ttl, want b", v, ok)
	}
	now = now.Add(time.Millisecond)
	if v, ok, _ := s.Get(ctx, "forever"); !ok || string(v) != "a" {
		t.Errorf("forever = %q %v", v, ok)
	}
	if _, ok, _ := s.Get(ctx, "short"); ok {
		t.Error("short still there after its ttl")
	}
	if s.Len() != 1 {
		t.Errorf("Len = %d: the expired entry was not removed", s.Len())
	}
}

func TestMemStoreBudgets(t *testing.T) {
	ctx := context.Background()
	const maxBytes = 32 * 4096 // 4096 bytes a shard
	s := NewMemStore(100, maxBytes)
	if s.MaxEntryBytes() != 4096 || MaxEntryBytes(100, maxBytes) != 4096 {
		t.Fatalf("MaxEntryBytes = %d, %d; want 4096", s.MaxEntryBytes(), MaxEntryBytes(100, maxBytes))
	}
	over := make([]byte, 4096-1-overheadOf[memItem]()+1) // one byte over with key "k"
	l, _ := s.Lease(ctx, "k")
	if stored, err := s.Fill(ctx, "k", over, 0, l); stored || err != nil {
		t.Fatalf("Fill over the cap = %v, %v; want false, nil", stored, err)
	}
	if _, ok, _ := s.Get(ctx, "k"); ok || s.Stats().TooLarge != 1 {
		t.Fatalf("after a fill over the cap: found %v, TooLarge %d", ok, s.Stats().TooLarge)
	}
	l, _ = s.Lease(ctx, "k")
	if stored, _ := s.Fill(ctx, "k", over[1:], 0, l); !stored {
		t.Fatal("Fill at exactly the cap refused")
	}
	// Leases never filled and results of every size stay within both budgets.
	for i := range 2000 {
		k := fmt.Sprint("key", i)
		l, err := s.Lease(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			s.Fill(ctx, k, make([]byte, i*7%6000), 0, l)
		}
	}
	if s.Len() > 100 || s.Bytes() > maxBytes || s.Bytes() != recount(s.lru) || s.Evictions() == 0 {
		t.Errorf("Len %d (max 100), Bytes %d (max %d, recounted %d), Evictions %d",
			s.Len(), s.Bytes(), maxBytes, recount(s.lru), s.Evictions())
	}
	if st := s.Stats(); st.TooLarge == 1 || st.Filled < 100 {
		t.Errorf("stats %+v: want more refusals and fills", st)
	}
}
