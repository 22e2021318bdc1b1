package servant

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/fae-go/fae/internal/testenv"
	"github.com/fae-go/fae/pool"
)

// serverConns counts the established TCP connections whose local port is
// port, in this machine's /proc/net/tcp: the connections a server on
// 127.0.0.1:port has open, counted on the server's side.
func serverConns(t testing.TB, port int) int {
	t.Helper()
	n, _, err := testenv.ServerSockets(port)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// reloadBackends are test-owned servers of every backend, so that their
// connections can be counted without other tests' connections.
type reloadBackends struct {
	redis, memcached, mariadb, ferretdb *testenv.Server
}

// config is a servants section using every backend; i varies a pool key of
// each backend, so that every reload builds new pools.
func (b *reloadBackends) config(i int) Config {
	cfg := baseConfig()
	cfg.Lcache = lcacheConfig(1000)

	var rd pool.RedisConfig
	rd.SetDefaults()
	rd.IOTimeout = 4*time.Second + time.Duration(i)*time.Millisecond
	var rs pool.RedisServerConfig
	rs.SetDefaults()
	rs.Addr = b.redis.Addr()
	rd.Pools = []pool.RedisPoolConfig{{Name: "default", Servers: []pool.RedisServerConfig{rs}}}
	cfg.Redis = &rd

	cfg.Memcache = memcacheConfig(4*time.Second + time.Duration(i)*time.Millisecond)
	cfg.Memcache.Servers[0].Port = pool.Port(b.memcached.Port)

	var mg pool.MongoConfig
	mg.SetDefaults()
	mg.IOTimeout = 10*time.Second + time.Duration(i)*time.Millisecond
	var ms pool.MongoServerConfig
	ms.SetDefaults()
	ms.Pool, ms.Host, ms.Port, ms.DB = "default", "127.0.0.1", pool.Port(b.ferretdb.Port), "fae_test"
	mg.Servers = []pool.MongoServerConfig{ms}
	cfg.Mongodb = &mg

	var my pool.MySQLConfig
	my.SetDefaults()
	my.GlobalPools = []string{"Global"}
	my.QueryTimeout = 30*time.Second + time.Duration(i)*time.Millisecond
	var srv pool.MySQLServerConfig
	srv.SetDefaults()
	srv.Pool, srv.Host, srv.Port, srv.DB, srv.Username, srv.Password = "Global", "127.0.0.1", pool.Port(b.mariadb.Port), "fae_test", "fae", "fae"
	my.Servers = []pool.MySQLServerConfig{srv}
	cfg.Mysql = &my
	if err := cfg.Validate("servants"); err != nil {
		panic(err)
	}
	return cfg
}

// callEveryBackend makes one call of each family; worker and i make keys.
func callEveryBackend(s *FunServant, worker, i int) error {
	ctx := context.Background()
	c := validCtx()
	key := fmt.Sprintf("reload:%d:%d", worker, i%10)
	if _, err := s.LcSet(ctx, c, key, []byte("v")); err != nil {
		return fmt.Errorf("lc_set: %w", err)
	}
	if _, err := s.RdCall(ctx, c, "SET", "default", []string{key, "v"}); err != nil {
		return fmt.Errorf("rd_call: %w", err)
	}
	if _, err := s.McSet(ctx, c, "default", key, nil, 0); err != nil {
		return fmt.Errorf("mc_set: %w", err)
	}
	r, err := s.MyQuery(ctx, c, "Global", "t", 0, "SELECT ?", []string{key}, "")
	if err != nil {
		return fmt.Errorf("my_query: %w", err)
	}
	if len(r.Rows) != 1 || r.Rows[0][0] != key {
		return fmt.Errorf("my_query answered %v", r.Rows)
	}
	doc, _ := bson.Marshal(bson.D{{Key: "w", Value: worker}, {Key: "i", Value: i}})
	if _, err := s.MgInsert(ctx, c, "default", "reload", 0, doc); err != nil {
		return fmt.Errorf("mg_insert: %w", err)
	}
	return nil
}

// Issue 7: 32 callers on every backend while the generation is swapped 20
// times: zero failed calls, and the replaced pools' connections are closed
// afterwards, counted on the servers.
func TestReloadEveryBackendUnderLoad(t *testing.T) {
	b := &reloadBackends{redis: testenv.StartRedis(t), memcached: testenv.StartMemcached(t),
		mariadb: testenv.StartMariaDB(t), ferretdb: testenv.StartFerretDB(t)}
	s := newTestServant(t, b.config(0), Options{})

	var calls atomic.Int64
	var failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := callEveryBackend(s, w, i); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				calls.Add(1)
			}
		})
	}
	peak := map[string]int{}
	for i := 1; i <= 20; i++ {
		// Swap only while calls are flowing: wait for 32 more rounds of calls.
		from := calls.Load()
		testenv.Eventually(t, 30*time.Second, "calls between reloads", func() bool { return calls.Load() >= from+32 })
		if restart, err := s.Reload(b.config(i)); err != nil || len(restart) > 0 {
			t.Fatalf("reload %d: %v (restart %v)", i, err, restart)
		}
		for name, srv := range map[string]*testenv.Server{"redis": b.redis, "memcached": b.memcached,
			"mariadb": b.mariadb, "ferretdb": b.ferretdb} {
			peak[name] = max(peak[name], serverConns(t, srv.Port))
		}
	}
	close(stop)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d rounds failed across 20 reloads; first: %v", n, calls.Load(), firstErr.Load())
	}
	t.Logf("%d rounds of calls on every backend across 20 reloads; peak server connections %v", calls.Load(), peak)

	// Every replaced generation's pools are closed once its calls are gone: the
	// servers hold no more connections than one generation's pools may.
	<-s.Closed()
	for _, c := range []struct {
		name  string
		srv   *testenv.Server
		limit int // what one generation's pools may keep open
	}{
		{"redis", b.redis, 20},         // max_active 2 × max_idle 10
		{"memcached", b.memcached, 30}, // max_conns_per_server 10 × 3
		{"mariadb", b.mariadb, 10},     // max_conns_per_server 5 × 2
		{"ferretdb", b.ferretdb, 14},   // driver pool 10 + monitoring + health check
	} {
		testenv.Eventually(t, 10*time.Second, c.name+" connections of replaced pools closed", func() bool {
			return serverConns(t, c.srv.Port) <= c.limit
		})
	}
	// Close: every connection is closed, counted on every server.
	s.Close()
	<-s.Closed()
	for name, srv := range map[string]*testenv.Server{"redis": b.redis, "memcached": b.memcached,
		"mariadb": b.mariadb, "ferretdb": b.ferretdb} {
		testenv.Eventually(t, 10*time.Second, name+" connections closed after Close", func() bool {
			n := serverConns(t, srv.Port)
			if n != 0 {
				t.Logf("%s: %d connections", name, n)
			}
			return n == 0
		})
	}
}
