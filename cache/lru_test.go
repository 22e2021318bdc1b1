package cache

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"unsafe"
)

func byteLen(_ string, v []byte) int64 { return int64(len(v)) }

func TestLRUBasics(t *testing.T) {
	c := New[int](100, 0, nil)
	if err := c.Set("a", 1); err != nil {
		t.Fatal(err)
	}
	if v, ok := c.Get("a"); !ok || v != 1 {
		t.Fatalf("Get(a) = %d, %v", v, ok)
	}
	if !c.Del("a") || c.Del("a") {
		t.Fatal("Del: want true then false")
	}
	if _, ok := c.Get("a"); ok {
		t.Fatal("Get after Del found it")
	}
}

func TestLRUBound(t *testing.T) {
	for _, max := range []int{1, 7, 32, 1000} {
		c := New[int](max, 0, nil)
		for i := 0; i < 10*max; i++ {
			c.Set(fmt.Sprint(i), i)
		}
		if n := c.Len(); n > max || n < max/2 {
			t.Errorf("max %d: Len = %d after %d sets", max, n, 10*max)
		}
		if got, want := c.Evictions(), int64(10*max-c.Len()); got != want {
			t.Errorf("max %d: Evictions = %d, want %d", max, got, want)
		}
	}
}

func TestLRUUpdateAtomic(t *testing.T) {
	c := New[int](10, 0, nil)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				c.Update("n", func(old int, _ bool) (int, bool) { return old + 1, true })
			}
		}()
	}
	wg.Wait()
	if v, _ := c.Get("n"); v != 8000 {
		t.Fatalf("n = %d after 8000 atomic increments", v)
	}
}

// recount is the bytes of the entries c holds, summed afresh from its shards.
func recount[V any](c *LRU[V]) (total int64) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		var n int64
		for _, k := range s.lru.Keys() {
			e, _ := s.lru.Peek(k)
			n += int64(len(k)) + c.size(k, e.v) + c.overhead
		}
		if n != s.bytes {
			panic(fmt.Sprintf("shard %d: counted %d bytes, holds %d", i, s.bytes, n))
		}
		if c.shardBytes > 0 && n > c.shardBytes {
			panic(fmt.Sprintf("shard %d: %d bytes over its budget %d", i, n, c.shardBytes))
		}
		s.mu.Unlock()
		total += n
	}
	return total
}

func TestLRUByteCounts(t *testing.T) {
	c := New[[]byte](1000, 0, byteLen)
	o := int64(EntryOverhead)
	if c.Overhead() != o {
		t.Fatalf("Overhead = %d, want EntryOverhead %d for []byte", c.Overhead(), o)
	}
	steps := []struct {
		do   func()
		want int64
	}{
		{func() { c.Set("a", make([]byte, 10)) }, 1 + 10 + o},
		{func() { c.Set("a", make([]byte, 20)) }, 1 + 20 + o}, // overwrite
		{func() { c.Set("bb", nil) }, 1 + 20 + o + 2 + o},     // empty value
		{func() { c.Del("a") }, 2 + o},                        // delete
		{func() { c.Del("a") }, 2 + o},                        // absent
		{func() { c.Update("bb", func(v []byte, _ bool) ([]byte, bool) { return make([]byte, 5), true }) }, 2 + 5 + o},
		{func() { c.Update("bb", func(v []byte, _ bool) ([]byte, bool) { return nil, false }) }, 2 + 5 + o},
		{func() { c.Del("bb") }, 0},
	}
	for i, st := range steps {
		st.do()
		if got := c.Bytes(); got != st.want {
			t.Fatalf("step %d: Bytes = %d, want %d", i, got, st.want)
		}
	}
}

func TestLRUEvictsByBytes(t *testing.T) {
	const shardBytes = 1000
	c := New[[]byte](1_000_000, DefaultShards*shardBytes, byteLen)
	if c.MaxEntryBytes() != shardBytes {
		t.Fatalf("MaxEntryBytes = %d, want %d", c.MaxEntryBytes(), shardBytes)
	}
	for i := range 10_000 {
		if err := c.Set(fmt.Sprintf("k%05d", i), make([]byte, 100+i%200)); err != nil {
			t.Fatal(err)
		}
	}
	// Entries of 266 to 465 bytes: 2 or 3 fit in a shard of 1000.
	if n := c.Len(); n < 2*DefaultShards || n > 3*DefaultShards {
		t.Errorf("Len = %d, want 2 or 3 per shard", n)
	}
	if got := c.Bytes(); got != recount(c) || got > DefaultShards*shardBytes {
		t.Errorf("Bytes = %d, recounted %d, budget %d", got, recount(c), DefaultShards*shardBytes)
	}
	if got, want := c.Evictions(), int64(10_000-c.Len()); got != want {
		t.Errorf("Evictions = %d, want %d (sets minus entries held)", got, want)
	}
}

func TestLRURefusesTooLarge(t *testing.T) {
	c := New[[]byte](100, 32*1024, byteLen) // 1024 bytes a shard
	c.Set("k", []byte("small"))
	before := c.Bytes()
	err := c.Set("k", make([]byte, 1024))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Set of 1024 bytes into shards of 1024: %v, want ErrTooLarge", err)
	}
	want := fmt.Sprintf("%d bytes (key 1, value 1024, overhead %d) > 1024 bytes", 1+1024+EntryOverhead, EntryOverhead)
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if _, ok := c.Get("k"); ok {
		t.Error("the value a refused Set was to replace is still there")
	}
	if c.Bytes() != before-int64(1+5+EntryOverhead) || c.Refusals() != 1 {
		t.Errorf("after refusal: Bytes %d (was %d), Refusals %d", c.Bytes(), before, c.Refusals())
	}
	_, stored, err := c.Update("u", func([]byte, bool) ([]byte, bool) { return make([]byte, 2000), true })
	if stored || !errors.Is(err, ErrTooLarge) || c.Refusals() != 2 || c.Len() != 0 {
		t.Errorf("Update too large: stored %v, err %v, Refusals %d, Len %d", stored, err, c.Refusals(), c.Len())
	}
}

// TestLRUHeapBounded: 700 values of 1 MiB into a cache of 256 MiB keep its
// count and the live heap within the budget (REVIEW §2.A3).
func TestLRUHeapBounded(t *testing.T) {
	const budget = 256 << 20
	runtime.GC()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	c := New[[]byte](1<<20, budget, byteLen)
	for i := range 700 {
		if err := c.Set(fmt.Sprint("v", i), make([]byte, 1<<20)); err != nil {
			t.Fatal(err)
		}
		if got := c.Bytes(); got > budget {
			t.Fatalf("after %d sets: Bytes = %d > %d", i+1, got, budget)
		}
	}
	runtime.GC()
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	heap := int64(m1.HeapAlloc) - int64(m0.HeapAlloc)
	t.Logf("Len %d, Bytes %d, live heap grew %d bytes, evictions %d", c.Len(), c.Bytes(), heap, c.Evictions())
	if heap > 2*budget || heap < c.Bytes()/2 {
		t.Errorf("live heap grew %d bytes for %d bytes cached; budget %d", heap, c.Bytes(), budget)
	}
	if c.Evictions() != int64(700-c.Len()) || c.Len() < 200 {
		t.Errorf("Len %d, Evictions %d after 700 sets", c.Len(), c.Evictions())
	}
	runtime.KeepAlive(c)
}

// TestLRUHeapPerEntry checks EntryOverhead: small entries cost the heap about
// what they are charged.
func TestLRUHeapPerEntry(t *testing.T) {
	const n = 200_000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%07d", i)
	}
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	c := New[[]byte](2*n, 0, byteLen) // room to spare: no evictions
	for _, k := range keys {
		c.Set(k, nil)
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	if c.Len() != n {
		t.Fatalf("Len = %d, want %d", c.Len(), n)
	}
	heap := float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / n
	charged := float64(c.Bytes()-8*n) / n // the keys were allocated before m0
	t.Logf("heap %.1f bytes per entry, charged %.1f besides the key", heap, charged)
	if heap > 1.3*charged || heap < 0.6*charged {
		t.Errorf("heap %.1f bytes per entry, charged %.1f: EntryOverhead is off", heap, charged)
	}
	runtime.KeepAlive(c)
}

func TestShardSize(t *testing.T) {
	if n := unsafe.Sizeof(shard[int]{}); n != 64 {
		t.Errorf("a shard is %d bytes, want 64 (see the pad's comment)", n)
	}
}

func TestLRUConcurrent(t *testing.T) {
	c := New[[]byte](500, 64*1024, byteLen)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 7))
			for range 5000 {
				k := fmt.Sprint(r.IntN(2000))
				switch r.IntN(4) {
				case 0:
					c.Set(k, make([]byte, r.IntN(3000)))
				case 1:
					c.Get(k)
				case 2:
					c.Del(k)
				case 3:
					c.Update(k, func(v []byte, ok bool) ([]byte, bool) { return append(v, 'x'), ok })
				}
			}
		}()
	}
	wg.Wait()
	if got, want := c.Bytes(), recount(c); got != want || got > 64*1024 || c.Len() > 500 {
		t.Errorf("Bytes %d, recounted %d, Len %d; budgets 65536 bytes, 500 items", got, want, c.Len())
	}
	if c.Refusals() == 0 || c.Evictions() == 0 {
		t.Errorf("Refusals %d, Evictions %d: the load should cause both", c.Refusals(), c.Evictions())
	}
}

func BenchmarkLRUGetParallel(b *testing.B) {
	c := New[[]byte](1<<16, 1<<30, byteLen)
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprint("key", i)
		c.Set(keys[i], []byte("v"))
	}
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.Get(keys[i&1023])
			i++
		}
	})
}
