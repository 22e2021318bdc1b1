package bench

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/gomodule/redigo/redis"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/testenv"
	"github.com/fae-go/fae/pool"
	"github.com/fae-go/fae/servant"
)

// The shared servers of contrib/test-services (make test and make bench need them).
var (
	memcacheAddrs = []string{testenv.MemcacheAddr, testenv.Memcache2Addr}
	redisAddrs    = []string{testenv.RedisAddr, testenv.Redis2Addr}
)

// BenchmarkMemcache measures mc_get calls/s of a 100-byte item through faed
// (engine and servant in process, loopback TCP, binary protocol, buffered
// transport, 16 sessions) and, as the baseline in the same run, direct
// gomemcache Gets (a client per server, as faed has) to the same two servers by
// 16 callers. Both sides keep up to 16 idle connections per server.
func BenchmarkMemcache(b *testing.B) {
	testenv.RequireServer(b, "memcached", memcacheAddrs...)
	mc, keys, owner := memcacheBenchSetup(b)
	b.Run("via=faed/sessions=16", func(b *testing.B) {
		addr := serveFaed(b, servant.Config{IdgenWorkerID: 1, Memcache: &mc})
		runConcurrent(b, func(w int) (func() error, func()) {
			c, closeFn := dialFaed(b, addr)
			cx := &rpc.Context{Rid: 1, Reason: "bench"}
			return func() error { _, err := c.McGet(context.Background(), cx, "default", keys[w]); return err }, closeFn
		})
	})
	b.Run("via=gomemcache/callers=16", func(b *testing.B) {
		runConcurrent(b, func(w int) (func() error, func()) {
			return func() error { _, err := owner[w].Get(keys[w]); return err }, func() {}
		})
	})
}

// memcacheBenchSetup makes the memcache section of the benchmark (the shared
// pair, 16 idle connections per server), stores one 100-byte item per caller
// through faed's pool, and returns the direct client of each item's server.
func memcacheBenchSetup(b *testing.B) (pool.MemcacheConfig, []string, []*memcache.Client) {
	var mc pool.MemcacheConfig
	mc.SetDefaults()
	mc.MaxIdleConnsPerServer = concurrency
	for _, a := range memcacheAddrs {
		host, port, _ := strings.Cut(a, ":")
		var p int
		fmt.Sscan(port, &p)
		mc.Servers = append(mc.Servers, pool.MemcacheServerConfig{Host: host, Port: pool.Port(p), Pool: "default"})
	}
	if err := mc.Validate("servants.memcache"); err != nil {
		b.Fatal(err)
	}
	cluster, err := pool.NewMemcache(mc, pool.NopObserver{}, pool.Limits{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cluster.Close() })
	direct := map[string]*memcache.Client{}
	for _, a := range memcacheAddrs {
		direct[a] = memcache.New(a)
		direct[a].MaxIdleConns = concurrency
	}
	keys := kvKeys("mc")
	owner := make([]*memcache.Client, len(keys))
	for i, k := range keys {
		if err := cluster.Set("default", k, make([]byte, 100), 0, 600); err != nil {
			b.Fatal(err)
		}
		a, _ := cluster.ServerOf("default", k)
		owner[i] = direct[a] // the direct callers ask the server that holds the key
	}
	return mc, keys, owner
}

// BenchmarkRedis measures rd_call GET calls/s of a 100-byte value through faed
// (as BenchmarkMemcache) and, as the baseline in the same run, direct redigo
// GETs to the same two servers by 16 callers. Both sides keep up to 16 idle
// connections per server.
func BenchmarkRedis(b *testing.B) {
	testenv.RequireServer(b, "redis", redisAddrs...)
	rc, keys, owner := redisBenchSetup(b)
	b.Run("via=faed/sessions=16", func(b *testing.B) {
		addr := serveFaed(b, servant.Config{IdgenWorkerID: 1, Redis: &rc})
		runConcurrent(b, func(w int) (func() error, func()) {
			c, closeFn := dialFaed(b, addr)
			cx := &rpc.Context{Rid: 1, Reason: "bench"}
			args := []string{keys[w]}
			return func() error { _, err := c.RdCall(context.Background(), cx, "GET", "default", args); return err }, closeFn
		})
	})
	b.Run("via=redigo/callers=16", func(b *testing.B) {
		runConcurrent(b, func(w int) (func() error, func()) {
			return func() error {
				conn := owner[w].Get()
				defer conn.Close()
				_, err := conn.Do("GET", keys[w])
				return err
			}, func() {}
		})
	})
}

// redisBenchSetup makes the redis section of the benchmark (the shared pair,
// 16 idle connections per server), stores one 100-byte value per caller through
// faed's pool, and returns a direct redigo pool of each value's server.
func redisBenchSetup(b *testing.B) (pool.RedisConfig, []string, []*redis.Pool) {
	var rc pool.RedisConfig
	rc.SetDefaults()
	rp := pool.RedisPoolConfig{Name: "default"}
	direct := map[string]*redis.Pool{}
	for _, a := range redisAddrs {
		rp.Servers = append(rp.Servers, pool.RedisServerConfig{Addr: a, MaxIdle: concurrency, MaxActive: 2 * concurrency, IdleTimeout: time.Minute})
		direct[a] = &redis.Pool{MaxIdle: concurrency, MaxActive: 2 * concurrency, Wait: true,
			Dial: func() (redis.Conn, error) { return redis.Dial("tcp", a) }}
		b.Cleanup(func() { direct[a].Close() })
	}
	rc.Pools = []pool.RedisPoolConfig{rp}
	if err := rc.Validate("servants.redis"); err != nil {
		b.Fatal(err)
	}
	cluster, err := pool.NewRedis(rc, pool.NopObserver{}, pool.Limits{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cluster.Close() })
	keys := kvKeys("rd")
	owner := make([]*redis.Pool, len(keys))
	for i, k := range keys {
		if _, err := cluster.Do(context.Background(), "default", "SET", k, make([]byte, 100), "EX", 600); err != nil {
			b.Fatal(err)
		}
		a, _ := cluster.ServerOf("default", k)
		owner[i] = direct[a] // the direct callers ask the server that holds the key
	}
	return rc, keys, owner
}

// kvKeys are one key per caller, under the kvtest: prefix shared servers need.
func kvKeys(kind string) []string {
	keys := make([]string, concurrency)
	for i := range keys {
		keys[i] = fmt.Sprintf("kvtest:bench:%s:%d:%d", kind, time.Now().UnixNano(), i)
	}
	return keys
}
