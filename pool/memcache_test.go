package pool

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

// The shared memcached pair of contrib/test-services (make test starts it).
var (
	mcAddr1 = "127.0.0.1:" + envOr("FAE_MEMCACHE_PORT", "11311")
	mcAddr2 = "127.0.0.1:" + envOr("FAE_MEMCACHE2_PORT", "11312")
)

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func requireTCP(t testing.TB, name, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("%s at %s is not running (contrib/test-services start): %v", name, addr, err)
	}
	c.Close()
}

// mcConfig is a validated memcache section over addrs, all in pool "p".
func mcConfig(t testing.TB, strategy string, replicas int, addrs ...string) MemcacheConfig {
	t.Helper()
	var cfg MemcacheConfig
	cfg.SetDefaults()
	cfg.HashStrategy, cfg.ReplicaNum, cfg.Timeout = strategy, replicas, time.Second
	for _, a := range addrs {
		host, port, _ := net.SplitHostPort(a)
		p, _ := strconv.Atoi(port)
		cfg.Servers = append(cfg.Servers, MemcacheServer{Host: host, Port: Port(p), Pool: "p"})
	}
	if err := cfg.Validate("servants.memcache"); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newTestMemcache(t testing.TB, cfg MemcacheConfig) *Memcache {
	t.Helper()
	m, err := NewMemcache(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func testKey(t testing.TB, name string) string {
	return fmt.Sprintf("kvtest:pool:%s:%s:%d", t.Name(), name, time.Now().UnixNano())
}

func TestMemcacheOperations(t *testing.T) {
	requireTCP(t, "memcached", mcAddr1)
	requireTCP(t, "memcached2", mcAddr2)
	m := newTestMemcache(t, mcConfig(t, "standard", 1, mcAddr1, mcAddr2))
	k := testKey(t, "k")
	if err := m.Set("p", k, []byte("v\x00\xff"), 0xfffffffe, 60); err != nil {
		t.Fatal(err)
	}
	if v, f, err := m.Get("p", k); err != nil || string(v) != "v\x00\xff" || f != 0xfffffffe {
		t.Fatalf("get = %q, %#x, %v", v, f, err)
	}
	if ok, err := m.Add("p", k, []byte("w"), 0, 60); ok || err != nil {
		t.Fatalf("add of an existing key = %v, %v; want false, nil", ok, err)
	}
	if ok, err := m.Delete("p", k); !ok || err != nil {
		t.Fatalf("delete = %v, %v", ok, err)
	}
	if ok, err := m.Delete("p", k); ok || err != nil {
		t.Fatalf("delete of an absent key = %v, %v; want false, nil", ok, err)
	}
	_, _, err := m.Get("p", k)
	if !errors.Is(err, ErrMemcacheMiss) || !strings.Contains(err.Error(), k) {
		t.Fatalf("get of an absent key: %v", err)
	}
	testMemcacheIncrement(t, m, k)
	st := m.Stats("p")
	if st.Misses.Load() != 3 || st.NotStored.Load() != 1 || st.NotNumeric.Load() != 1 || st.Hits.Load() != 1 || st.ServerFailures.Load() != 0 {
		t.Errorf("stats: misses %d not-stored %d not-numeric %d hits %d failures %d", st.Misses.Load(), st.NotStored.Load(),
			st.NotNumeric.Load(), st.Hits.Load(), st.ServerFailures.Load())
	}
}

func testMemcacheIncrement(t *testing.T, m *Memcache, k string) {
	if _, err := m.Increment("p", k, 1); !errors.Is(err, ErrMemcacheMiss) {
		t.Fatalf("incr of an absent key: %v", err)
	}
	if ok, err := m.Add("p", k, []byte("10"), 0, 60); !ok || err != nil {
		t.Fatalf("add of an absent key = %v, %v", ok, err)
	}
	for _, c := range []struct{ delta, want int64 }{{5, 15}, {-3, 12}, {-100, 0}, {0, 0}} {
		if v, err := m.Increment("p", k, c.delta); v != c.want || err != nil {
			t.Fatalf("increment by %d = %d, %v; want %d", c.delta, v, err, c.want)
		}
	}
	m.Set("p", k, []byte("ten"), 0, 60)
	if _, err := m.Increment("p", k, 1); !errors.Is(err, ErrMemcacheNotNumeric) {
		t.Fatalf("incr of a non-numeric value: %v", err)
	}
}

func TestMemcacheCallerMistakes(t *testing.T) {
	m := newTestMemcache(t, mcConfig(t, "consistent", 1, mcAddr1))
	for _, c := range []struct{ key, want string }{
		{"", "invalid key: empty"},
		{strings.Repeat("k", 251), "invalid key: 251 bytes, at most 250 allowed"},
		{"a b", "invalid key: control or space byte 0x20 at offset 1"},
		{"a\nb", "invalid key: control or space byte 0x0a at offset 1"},
	} {
		err := m.Set("p", c.key, nil, 0, 0)
		if !errors.Is(err, ErrMemcacheBadKey) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), `pool "p"`) {
			t.Errorf("key %q: %v; want %q", c.key, err, c.want)
		}
	}
	_, _, err := m.Get("nope", "k")
	if !errors.Is(err, ErrMemcacheUnknownPool) || err.Error() != `memcache get "k": pool "nope": unknown pool: not in servants.memcache.servers` {
		t.Errorf("unknown pool: %v", err)
	}
	if m.Stats("p").BadKeys.Load() != 4 || m.UnknownPoolCalls() != 1 {
		t.Errorf("bad keys %d, unknown pools %d", m.Stats("p").BadKeys.Load(), m.UnknownPoolCalls())
	}
}

// TestMemcacheBreaker: a port nobody listens on (a real refused connection)
// fails failure_allowance times, then the breaker answers at once, without dialling.
func TestMemcacheBreaker(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	cfg := mcConfig(t, "standard", 1, dead)
	cfg.Breaker = BreakerConfig{FailureAllowance: 3, RetryInterval: time.Hour}
	m := newTestMemcache(t, cfg)
	for i := 0; i < 3; i++ {
		if _, _, err := m.Get("p", "k"); !errors.Is(err, ErrMemcacheServer) || !strings.Contains(err.Error(), "server "+dead) {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	start := time.Now()
	_, _, err := m.Get("p", "k")
	if !errors.Is(err, ErrBreakerOpen) || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("after 3 failures: %v after %s", err, time.Since(start))
	}
	if want := `memcache get "k": pool "p", server ` + dead + `: circuit open`; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	st := m.Stats("p")
	if st.ServerFailures.Load() != 3 || st.BreakerOpen.Load() != 1 {
		t.Errorf("failures %d, breaker open %d", st.ServerFailures.Load(), st.BreakerOpen.Load())
	}
}

// TestMemcacheConnLimit: with max_conns_per_server busy (its slots taken here
// directly), a call waits timeout, fails with ErrMemcacheConnLimit, and the
// breaker does not count it.
func TestMemcacheConnLimit(t *testing.T) {
	requireTCP(t, "memcached", mcAddr1)
	cfg := mcConfig(t, "standard", 1, mcAddr1)
	cfg.MaxConnsPerServer, cfg.Timeout = 2, 200*time.Millisecond
	cfg.Breaker.FailureAllowance = 1
	m := newTestMemcache(t, cfg)
	s := m.pools["p"].servers[0]
	s.slots <- struct{}{}
	s.slots <- struct{}{}
	start := time.Now()
	err := m.Set("p", "kvtest:pool:connlimit", []byte("x"), 0, 10)
	if !errors.Is(err, ErrMemcacheConnLimit) || time.Since(start) < 200*time.Millisecond {
		t.Fatalf("set with every slot busy: %v after %s", err, time.Since(start))
	}
	if !strings.Contains(err.Error(), "all connections busy: 2 connections busy for 200ms") {
		t.Errorf("message: %v", err)
	}
	<-s.slots
	if err := m.Set("p", "kvtest:pool:connlimit", []byte("x"), 0, 10); err != nil {
		t.Fatalf("set with a free slot: %v (breaker %s)", err, s.breaker.State())
	}
	if m.Stats("p").ConnLimit.Load() != 1 {
		t.Errorf("conn-limit count %d", m.Stats("p").ConnLimit.Load())
	}
}

// TestMemcacheStandardMapping: a key set through the pool is on the server the
// PHP formula names, read directly with gomemcache.
func TestMemcacheStandardMapping(t *testing.T) {
	requireTCP(t, "memcached", mcAddr1)
	requireTCP(t, "memcached2", mcAddr2)
	addrs := []string{mcAddr1, mcAddr2}
	m := newTestMemcache(t, mcConfig(t, "standard", 1, addrs...))
	for i := 0; i < 20; i++ {
		k := testKey(t, strconv.Itoa(i))
		if err := m.Set("p", k, []byte("x"), 7, 60); err != nil {
			t.Fatal(err)
		}
		own := addrs[mcStandardIndex(k, 2)]
		if s, _ := m.ServerOf("p", k); s != own {
			t.Fatalf("ServerOf %q = %s, want %s", k, s, own)
		}
		if it, err := memcache.New(own).Get(k); err != nil || it.Flags != 7 {
			t.Fatalf("%q on %s: %v", k, own, err)
		}
		if _, err := memcache.New(addrs[1-mcStandardIndex(k, 2)]).Get(k); err != memcache.ErrCacheMiss {
			t.Fatalf("%q is on the other server too: %v", k, err)
		}
	}
}
