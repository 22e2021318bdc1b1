package servant

import (
	"context"
	"fmt"
	"testing"
)

// Peers past MaxForwardPeers are counted under OtherPeer; the ones counted
// already keep their rows.
func TestForwardPeersCapped(t *testing.T) {
	var c ClusterStats
	for i := range MaxForwardPeers + 10 {
		c.peer(fmt.Sprintf("10.0.%d.%d:7000", i/256, i%256)).Calls.Add(1)
	}
	c.peer("10.0.0.0:7000").Calls.Add(1)
	rows := c.Peers()
	if len(rows) != MaxForwardPeers+1 {
		t.Fatalf("%d rows, want %d and %s", len(rows), MaxForwardPeers, OtherPeer)
	}
	if last := rows[len(rows)-1]; last.Peer != OtherPeer || last.Calls != 10 {
		t.Errorf("overflow row %+v, want 10 calls", last)
	}
	if rows[0].Peer != "10.0.0.0:7000" || rows[0].Calls != 2 {
		t.Errorf("first row %+v, want 2 calls", rows[0])
	}
}

// lc_get counts hits and misses.
func TestLcacheHitsMisses(t *testing.T) {
	cfg := baseConfig()
	cfg.Lcache = lcacheConfig(10)
	s := newTestServant(t, cfg, Options{})
	ctx := context.Background()
	if _, err := s.LcSet(ctx, validCtx(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"k", "absent", "k", "absent2", "k"} {
		s.LcGet(ctx, validCtx(), k)
	}
	if h, m := s.Lcache.Hits.Load(), s.Lcache.Misses.Load(); h != 3 || m != 2 {
		t.Fatalf("hits %d misses %d, want 3 and 2", h, m)
	}
}

// What counting by peer adds to a forwarded call (a network round trip of
// tens of µs): one sync.Map load and an atomic add.
func BenchmarkForwardPeerCount(b *testing.B) {
	var c ClusterStats
	addrs := []string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"}
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.peer(addrs[i%len(addrs)]).Calls.Add(1)
			i++
		}
	})
}
