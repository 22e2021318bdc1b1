package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/bradfitz/gomemcache/memcache"
	"github.com/gomodule/redigo/redis"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/pool"
	"github.com/fae-go/fae/servant"
)

// The shared servers of contrib/test-services (make test and make bench need them).
var (
	memcacheAddrs = []string{"127.0.0.1:" + envOr("FAE_MEMCACHE_PORT", "11311"), "127.0.0.1:" + envOr("FAE_MEMCACHE2_PORT", "11312")}
	redisAddrs    = []string{"127.0.0.1:" + envOr("FAE_REDIS_PORT", "16379"), "127.0.0.1:" + envOr("FAE_REDIS2_PORT", "16380")}
)

// kvConcurrency is the number of concurrent sessions (through faed) or callers (direct).
const kvConcurrency = 16

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// requireServers fails (never skips) when a shared server is down.
func requireServers(b *testing.B, name string, addrs []string) {
	b.Helper()
	for _, a := range addrs {
		c, err := net.DialTimeout("tcp", a, 2*time.Second)
		if err != nil {
			b.Fatalf("%s at %s is not running (contrib/test-services start): %v", name, a, err)
		}
		c.Close()
	}
}

// BenchmarkMemcache measures mc_get calls/s of a 100-byte item through faed
// (engine and servant in process, loopback TCP, binary protocol, buffered
// transport, 16 sessions) and, as the baseline in the same run, direct
// gomemcache Gets (a client per server, as faed has) to the same two servers by
// 16 callers. Both sides keep up to 16 idle connections per server.
func BenchmarkMemcache(b *testing.B) {
	requireServers(b, "memcached", memcacheAddrs)
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
	mc.MaxIdleConnsPerServer = kvConcurrency
	for _, a := range memcacheAddrs {
		host, port, _ := strings.Cut(a, ":")
		var p int
		fmt.Sscan(port, &p)
		mc.Servers = append(mc.Servers, pool.MemcacheServer{Host: host, Port: pool.Port(p), Pool: "default"})
	}
	if err := mc.Validate("servants.memcache"); err != nil {
		b.Fatal(err)
	}
	cluster, err := pool.NewMemcache(mc)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cluster.Close() })
	direct := map[string]*memcache.Client{}
	for _, a := range memcacheAddrs {
		direct[a] = memcache.New(a)
		direct[a].MaxIdleConns = kvConcurrency
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
	requireServers(b, "redis", redisAddrs)
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
	rp := pool.RedisPool{Name: "default"}
	direct := map[string]*redis.Pool{}
	for _, a := range redisAddrs {
		rp.Servers = append(rp.Servers, pool.RedisServer{Addr: a, MaxIdle: kvConcurrency, MaxActive: 2 * kvConcurrency, IdleTimeout: time.Minute})
		direct[a] = &redis.Pool{MaxIdle: kvConcurrency, MaxActive: 2 * kvConcurrency, Wait: true,
			Dial: func() (redis.Conn, error) { return redis.Dial("tcp", a) }}
		b.Cleanup(func() { direct[a].Close() })
	}
	rc.Pools = []pool.RedisPool{rp}
	if err := rc.Validate("servants.redis"); err != nil {
		b.Fatal(err)
	}
	cluster, err := pool.NewRedis(rc)
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
	keys := make([]string, kvConcurrency)
	for i := range keys {
		keys[i] = fmt.Sprintf("kvtest:bench:%s:%d:%d", kind, time.Now().UnixNano(), i)
	}
	return keys
}

// serveFaed serves a servant for cfg with fae's engine on loopback TCP until
// the benchmark ends, and returns its address.
func serveFaed(b *testing.B, cfg servant.Config) string {
	svt, err := servant.New(cfg, servant.Options{})
	if err != nil {
		b.Fatal(err)
	}
	var ec engine.Config
	ec.SetDefaults()
	ec.ListenAddr = "127.0.0.1:0"
	ec.SessionTimeout, ec.IOTimeout = 0, 0
	srv := engine.NewServer(ec, rpc.NewFunServantProcessor(svt), slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln, err := net.Listen("tcp", ec.ListenAddr)
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close(); svt.Close() })
	return ln.Addr().String()
}

// dialFaed opens one session (binary protocol, buffered transport).
func dialFaed(b *testing.B, addr string) (*rpc.FunServantClient, func()) {
	sock := thrift.NewTSocketConf(addr, &thrift.TConfiguration{ConnectTimeout: 5 * time.Second})
	trans := thrift.NewTBufferedTransport(sock, 4096)
	if err := trans.Open(); err != nil {
		b.Fatal(err)
	}
	return rpc.NewFunServantClientFactory(trans, thrift.NewTBinaryProtocolFactoryConf(nil)), func() { trans.Close() }
}

// runConcurrent runs b.N calls spread over exactly kvConcurrency goroutines,
// each with the call that setup made for it (outside the timing), and reports calls/s.
func runConcurrent(b *testing.B, setup func(w int) (call func() error, done func())) {
	calls := make([]func() error, kvConcurrency)
	for w := range calls {
		call, done := setup(w)
		defer done()
		if err := call(); err != nil { // warm up: connections open, the key is there
			b.Fatal(err)
		}
		calls[w] = call
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for _, call := range calls {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := call(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
}
