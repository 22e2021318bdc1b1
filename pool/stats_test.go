package pool

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/event"

	"github.com/fae-go/fae/internal/testenv"
)

// statsOf is the row of server in rows, failing the test when there is none.
func statsOf(t testing.TB, rows []ServerStats, server string) ServerStats {
	t.Helper()
	for _, r := range rows {
		if r.Server == server {
			return r
		}
	}
	t.Fatalf("no row for server %q in %+v", server, rows)
	return ServerStats{}
}

// conns says whether st has exactly open, idle and in-use connections.
func conns(st ServerStats, open, idle, inUse int) bool {
	return st.Open == open && st.Idle == idle && st.InUse == inUse
}

// N concurrent BLPOPs hold N connections: Stats says N in use while Redis
// counts N blocked clients, then N idle; the server's count agrees.
func TestRedisStatsConnections(t *testing.T) {
	const N = 4
	srv := testenv.StartRedis(t)
	r, _ := newTestRedis(t, rdConfig(t, srv.Addr()), Limits{})
	if st := statsOf(t, r.Stats(), srv.Addr()); !conns(st, 0, 0, 0) || st.Backend != "redis" || st.Pool != "p" || st.Breaker != "closed" {
		t.Fatalf("before any call: %+v", st)
	}
	var wg sync.WaitGroup
	for i := range N {
		wg.Go(func() {
			if _, err := r.Do(bg, "p", "BLPOP", fmt.Sprintf("statslist%d", i), 1); err != nil {
				t.Error(err)
			}
		})
	}
	testenv.Eventually(t, 5*time.Second, "N blocked clients", func() bool { return testenv.RedisInfo(t, srv.Addr(), "blocked_clients") == N })
	if st := statsOf(t, r.Stats(), srv.Addr()); !conns(st, N, 0, N) {
		t.Errorf("while N BLPOPs block: %+v, want %d open, all in use", st, N)
	}
	wg.Wait()
	if st := statsOf(t, r.Stats(), srv.Addr()); !conns(st, N, N, 0) {
		t.Errorf("after: %+v, want %d open, all idle (max_idle 10)", st, N)
	}
	if got := testenv.RedisInfo(t, srv.Addr(), "connected_clients"); got != N+1 {
		t.Errorf("redis counts %d clients, want the pool's %d and the asking one", got, N)
	}
}

// A dead address: after failure_allowance failed dials, Stats shows the dial
// side open and the command side closed.
func TestRedisStatsBreaker(t *testing.T) {
	dead := testenv.FreeAddr(t)
	cfg := rdConfig(t, dead)
	cfg.Breaker = BreakerConfig{FailureAllowance: 2, RetryInterval: time.Hour}
	r, _ := newTestRedis(t, cfg, Limits{})
	for range 2 {
		r.Do(bg, "p", "GET", "k")
	}
	st := statsOf(t, r.Stats(), dead)
	if st.Breaker != "open" || st.Dial != "open" || st.Command != "closed" || !conns(st, 0, 0, 0) {
		t.Fatalf("dead server after 2 failed dials: %+v", st)
	}
}

// N concurrent SLEEPs hold N connections (the server runs N statements);
// afterwards max_idle_conns_per_server stay open, idle.
func TestMysqlStatsConnections(t *testing.T) {
	const N, maxIdle = 4, 2
	testenv.RequireServer(t, "MariaDB", testenv.MySQLAddr)
	c := myConfig(t, testenv.MySQLAddr, map[string]string{"Global": "mysql"}, "Global")
	c.MaxIdleConnsPerServer = maxIdle
	m := newMyTest(t, c, nil, Limits{})
	server := "Global (" + testenv.MySQLAddr + ")"
	marker := fmt.Sprintf("stats_conns_%d", time.Now().UnixNano())
	var wg sync.WaitGroup
	for range N {
		wg.Go(func() {
			if _, _, err := m.Query(bg, "Global", 0, "SELECT SLEEP(1) AS "+marker, nil); err != nil {
				t.Error(err)
			}
		})
	}
	admin := testenv.OpenMySQL(t, testenv.MySQLAddr, "mysql")
	testenv.Eventually(t, 5*time.Second, "N statements running", func() bool { return testenv.MySQLRunning(t, admin, marker) == N })
	if st := statsOf(t, m.Stats(), server); !conns(st, N, 0, N) || st.Backend != "mysql" || st.Pool != "Global" {
		t.Errorf("while N statements run: %+v, want %d open, all in use", st, N)
	}
	wg.Wait()
	if st := statsOf(t, m.Stats(), server); !conns(st, maxIdle, maxIdle, 0) {
		t.Errorf("after: %+v, want %d open, idle", st, maxIdle)
	}
}

// N operations on a frozen memcached each hold a connection; afterwards the
// open connections are idle, at most max_idle_conns_per_server, and
// memcached counts as many (plus the health check's, if one ran); none after
// Close.
func TestMemcacheStatsConnections(t *testing.T) {
	const N = 4
	srv := testenv.StartMemcached(t)
	cfg := mcConfig(t, "standard", 1, srv.Addr())
	cfg.Timeout, cfg.MaxIdleConnsPerServer, cfg.MaxConnsPerServer = 3*time.Second, N, N
	m, _ := newTestMemcache(t, cfg, Limits{})
	srv.Freeze()
	var wg sync.WaitGroup
	for i := range N {
		wg.Go(func() { m.Set("p", fmt.Sprintf("kvtest:stats:%d", i), []byte("x"), 0, 10) })
	}
	// The kernel completes the handshakes of a stopped memcached: each
	// operation holds an open connection, waiting for its reply.
	testenv.Eventually(t, 5*time.Second, "N connections in use", func() bool {
		return conns(statsOf(t, m.Stats(), srv.Addr()), N, 0, N)
	})
	srv.Thaw()
	wg.Wait()
	for i := range N {
		if _, _, err := m.Get("p", fmt.Sprintf("kvtest:stats:%d", i)); err != nil && !isKind(err, KindMiss) {
			t.Fatal(err)
		}
	}
	st := statsOf(t, m.Stats(), srv.Addr())
	if st.InUse != 0 || st.Open != st.Idle || st.Open < 1 || st.Open > N {
		t.Fatalf("after: %+v, want 1..%d open, all idle", st, N)
	}
	health := 0
	if m.pools["p"].servers[0].breaker.Checks.Load() > 0 {
		health = 1 // the health check's own idle connection
	}
	if got := testenv.MemcachedClients(t, srv.Addr()); got != st.Open+health {
		t.Errorf("memcached counts %d connections, Stats %d open (+%d health check)", got, st.Open, health)
	}
	m.Close()
	if st := statsOf(t, m.Stats(), srv.Addr()); st.Open != 0 {
		t.Errorf("after Close: %+v", st)
	}
}

func isKind(err error, k Kind) bool { return KindOf(err) == k }

// N concurrent operations with max_conns_per_server N: the pool monitor's
// counts never pass N, end with none in use and every open connection idle,
// and none open after Close.
func TestMongoStatsConnections(t *testing.T) {
	const N = 4
	cfg := mongoConfig(t, "legacy", server("default", "fae", mongoPort(t)))
	cfg.MaxConnsPerServer = N // the driver's maxPoolSize: it never opens more
	c, _ := newMongo(t, cfg, Limits{})
	target := MongoTarget{Pool: "default", Table: "stats_conns"}
	var wg sync.WaitGroup
	var mu sync.Mutex
	maxInUse := 0
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() { // samples while the operations run
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			default:
			}
			st := c.Stats()[0]
			mu.Lock()
			maxInUse = max(maxInUse, st.InUse)
			mu.Unlock()
			time.Sleep(time.Millisecond)
		}
	}()
	for range N {
		wg.Go(func() {
			for range 20 {
				if _, err := c.Count(context.Background(), target, nil); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-sampled
	if maxInUse > N {
		t.Errorf("%d connections in use at once, with %d operations", maxInUse, N)
	}
	st := c.Stats()[0]
	if st.Backend != "mongodb" || st.Pool != "default" || st.Breaker != "closed" ||
		st.InUse != 0 || st.Open < 1 || st.Open > N || st.Idle != st.Open {
		t.Fatalf("after %d×20 counts: %+v, want 1..%d open, all idle", N, st, N)
	}
	c.Close()
	testenv.Eventually(t, 5*time.Second, "no connection open after Close", func() bool { return c.Stats()[0].Open == 0 })
}

// What the pool monitor adds to a MongoDB operation: the driver allocates an
// event and calls the monitor three times per operation (check-out started,
// checked out, checked in); here, the same three events.
func BenchmarkMongoPoolMonitor(b *testing.B) {
	s := &mongoServer{}
	m := &event.PoolMonitor{Event: s.poolEvent} // called through the func, as the driver does: the event escapes
	addr := "127.0.0.1:17017"
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			for _, typ := range []string{event.ConnectionCheckOutStarted, event.ConnectionCheckedOut, event.ConnectionCheckedIn} {
				m.Event(&event.PoolEvent{Type: typ, Address: addr, ConnectionID: 1})
			}
		}
	})
}
