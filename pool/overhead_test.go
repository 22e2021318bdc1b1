package pool

import (
	"context"
	"testing"
	"time"
)

// What the vocabulary adds to every backend operation: one Observe and one
// Breaker.Do (compare with the ~30 µs of server CPU an mc_get costs).
func BenchmarkObserve(b *testing.B) {
	c := NewCounters()
	op := Op{Backend: "memcache", Pool: "default", Server: "127.0.0.1:11211", Name: "get", Kind: KindOK, Duration: time.Microsecond}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Observe(op)
		}
	})
}

func BenchmarkBreakerDo(b *testing.B) {
	br := NewBreaker("memcache", "127.0.0.1:11211", BreakerConfig{FailureAllowance: 5, RetryInterval: time.Second}, nil)
	op := func() (Kind, error) { return KindOK, nil }
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			br.Do(op)
		}
	})
}

// What max_waiting_calls adds to a MySQL or Redis call when a connection is
// free: one try-send and one receive on the server's token channel (the
// waiting count is not touched). Memcache paid the same before.
func BenchmarkConnGate(b *testing.B) {
	g := newConnGate("127.0.0.1:3306", 1024, 4096, time.Second, "max_conns_per_server", "timeout")
	ctx := context.Background()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := g.acquire(ctx); err != nil {
				b.Fatal(err)
			}
			g.release()
		}
	})
}
