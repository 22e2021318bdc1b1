package cache

import (
	"fmt"
	"sync"
	"testing"
)

func TestLRUBasics(t *testing.T) {
	c := New[int](100)
	c.Set("a", 1)
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
		c := New[int](max)
		for i := 0; i < 10*max; i++ {
			c.Set(fmt.Sprint(i), i)
		}
		if n := c.Len(); n > max || n < max/2 {
			t.Errorf("max %d: Len = %d after %d sets", max, n, 10*max)
		}
	}
}

func TestLRUUpdateAtomic(t *testing.T) {
	c := New[int](10)
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

func BenchmarkLRUGetParallel(b *testing.B) {
	c := New[[]byte](1 << 16)
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
