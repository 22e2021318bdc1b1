package pool

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

// The bound on calls waiting for a connection (max_waiting_calls), against
// real servers: a slow statement (MariaDB SLEEP), a blocking command (Redis
// BLPOP), a frozen memcached and a frozen FerretDB hold the connections. Each
// test fires burstCalls calls at once at a server of waitConns connections
// and waitLimit waiters: waitConns run, waitLimit wait, the others fail at
// once with KindBusy.
const (
	burstCalls = 20
	waitConns  = 2
	waitLimit  = 3
	refused    = burstCalls - waitConns - waitLimit
	// fastRefusal is the longest a refusal may take: well under every wait
	// and timeout of the tests (at least 2 s), with room for -race on a busy machine.
	fastRefusal = time.Second
)

type burstResult struct {
	err  error
	took time.Duration
}

// burst starts n calls of call together and returns their results as they end.
func burst(n int, call func() error) <-chan burstResult {
	out := make(chan burstResult, n)
	start := make(chan struct{})
	for range n {
		go func() {
			<-start
			t0 := time.Now()
			err := call()
			out <- burstResult{err, time.Since(t0)}
		}()
	}
	close(start)
	return out
}

// next is the next result of a burst, failing the test after 30 s.
func next(t *testing.T, results <-chan burstResult) burstResult {
	t.Helper()
	select {
	case r := <-results:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("no call of the burst ended within 30s")
		return burstResult{}
	}
}

// wantRefusedAtOnce reads the first `refused` results of a burst whose
// calls go to server (host:port) behind gate (nil: not checked): each must
// be a KindBusy *Error with a *WaitLimitError cause naming server and the
// limit, returned within fastRefusal. Then, while the held calls still run,
// the gate holds waitConns calls and waitLimit waiters, and the refused
// callers' goroutines are gone (the goroutine count is back near base).
func wantRefusedAtOnce(t *testing.T, results <-chan burstResult, server string, gate *connGate, base int) {
	t.Helper()
	want := fmt.Sprintf("busy: %d calls already waiting for a connection to %s (max_waiting_calls %d)", waitLimit, server, waitLimit)
	for i := range refused {
		r := next(t, results)
		var e *Error
		var wl *WaitLimitError
		if !errors.As(r.err, &e) || e.Kind != KindBusy || !errors.As(r.err, &wl) || !strings.HasSuffix(r.err.Error(), want) {
			t.Fatalf("call %d of the burst to end: %v; want a KindBusy *Error ending %q", i, r.err, want)
		}
		if r.took > fastRefusal {
			t.Errorf("refusal %d took %s, want under %s", i, r.took, fastRefusal)
		}
	}
	if gate != nil {
		if n, w := gate.inUse(), gate.Waiting(); n != waitConns || w != waitLimit {
			t.Errorf("after the refusals: %d calls hold a connection, %d wait; want %d and %d", n, w, waitConns, waitLimit)
		}
	}
	// The held and waiting callers, plus a few of the drivers' (a reader per
	// connection…): far fewer than a goroutine per caller.
	limit := base + waitConns + waitLimit + 8
	testenv.Eventually(t, 5*time.Second, fmt.Sprintf("goroutines ≤ %d", limit), func() bool { return runtime.NumGoroutine() <= limit })
	t.Logf("goroutines: %d before the burst, %d with %d calls held or waiting", base, runtime.NumGoroutine(), waitConns+waitLimit)
}

// TestMysqlWaitingCallsBound: with max_conns_per_server 2 and
// max_waiting_calls 3, 20 concurrent SELECT SLEEP(1): 2 run, 3 wait and then
// run, 15 fail at once with KindBusy naming the limit; the breaker counts
// none of them; calls succeed again after.
func TestMysqlWaitingCallsBound(t *testing.T) {
	testenv.RequireServer(t, "MariaDB", testenv.MySQLAddr)
	c := myConfig(t, testenv.MySQLAddr, map[string]string{"Global": "mysql"}, "Global")
	c.MaxIdleConnsPerServer, c.MaxConnsPerServer, c.MaxWaitingCalls = waitConns, waitConns, waitLimit
	c.Timeout = 10 * time.Second
	c.Breaker.FailureAllowance = 1
	obs := NewCounters()
	m := newMyTest(t, c, obs, Limits{})
	if _, _, err := m.Query(myBg, "Global", 0, "SELECT 1", nil); err != nil {
		t.Fatal(err)
	}
	s := m.servers["Global"]
	base := runtime.NumGoroutine()
	results := burst(burstCalls, func() error {
		_, _, err := m.Query(myBg, "Global", 0, "SELECT SLEEP(1)", nil)
		return err
	})
	wantRefusedAtOnce(t, results, testenv.MySQLAddr, s.gate, base)
	if st := m.Stats(); len(st) != 1 || st[0].Waiting != waitLimit || st[0].InUse != waitConns {
		t.Errorf("stats during the burst: %+v; want %d in use, %d waiting", st, waitConns, waitLimit)
	}
	for i := range waitConns + waitLimit {
		if r := next(t, results); r.err != nil {
			t.Errorf("held or waiting call %d: %v", i, r.err)
		}
	}
	if _, rows, err := m.Query(myBg, "Global", 0, "SELECT 1", nil); err != nil || len(rows) != 1 {
		t.Fatalf("SELECT 1 after the burst: %v, %v", rows, err)
	}
	if st := s.breaker.State(); st != "closed" {
		t.Errorf("breaker %s after the burst, want closed", st)
	}
	if n := opCount(obs, "query", s.label, KindBusy); n != refused {
		t.Errorf("%d busy queries observed, want %d", n, refused)
	}
}

// TestMysqlWaitForConnBound: a call waits for a connection at most timeout,
// then fails with KindBusy (not the caller's or query_timeout's timeout).
func TestMysqlWaitForConnBound(t *testing.T) {
	testenv.RequireServer(t, "MariaDB", testenv.MySQLAddr)
	c := myConfig(t, testenv.MySQLAddr, map[string]string{"Global": "mysql"}, "Global")
	c.MaxIdleConnsPerServer, c.MaxConnsPerServer = 1, 1
	c.Timeout = 300 * time.Millisecond
	c.Breaker.FailureAllowance = 1
	m := newMyTest(t, c, nil, Limits{})
	s := m.servers["Global"]
	held := burst(1, func() error { _, _, err := m.Query(myBg, "Global", 0, "SELECT SLEEP(2)", nil); return err })
	testenv.Eventually(t, 5*time.Second, "the SLEEP to hold the only connection", func() bool { return s.gate.inUse() == 1 })
	start := time.Now()
	_, _, err := m.Query(myBg, "Global", 0, "SELECT 1", nil)
	took := time.Since(start)
	wantMyError(t, err, KindBusy, "query", "Global", s.label,
		"busy: all connections busy: max_conns_per_server 1, none free within timeout 300ms")
	if took < c.Timeout || took > c.Timeout+fastRefusal {
		t.Errorf("gave up after %s, want timeout (%s)", took, c.Timeout)
	}
	if r := next(t, held); r.err != nil {
		t.Fatalf("the SLEEP: %v", r.err)
	}
	if _, _, err := m.Query(myBg, "Global", 0, "SELECT 1", nil); err != nil || s.breaker.State() != "closed" {
		t.Fatalf("SELECT 1 after: %v, breaker %s", err, s.breaker.State())
	}
}

// TestRedisWaitingCallsBound: with max_active 2 and max_waiting_calls 3, 20
// concurrent BLPOPs of 1 s on an empty list: 2 block, 3 wait and then block,
// 15 fail at once with KindBusy naming the limit.
func TestRedisWaitingCallsBound(t *testing.T) {
	testenv.RequireServer(t, "redis", testenv.RedisAddr)
	cfg := rdConfig(t, testenv.RedisAddr)
	cfg.Pools[0].Servers[0].MaxActive = waitConns
	cfg.MaxWaitingCalls = waitLimit
	cfg.BorrowTimeout = 10 * time.Second
	cfg.Breaker.FailureAllowance = 1
	r, c := newTestRedis(t, cfg, Limits{})
	k := testKey(t, "list")
	if _, err := r.Do(bg, "p", "GET", k); err != nil {
		t.Fatal(err)
	}
	s := r.pools["p"].servers[testenv.RedisAddr]
	base := runtime.NumGoroutine()
	results := burst(burstCalls, func() error {
		v, err := r.Do(bg, "p", "BLPOP", k, 1)
		if err == nil && v != nil {
			return fmt.Errorf("BLPOP of an empty list = %v", v)
		}
		return err
	})
	wantRefusedAtOnce(t, results, testenv.RedisAddr, s.gate, base)
	for i := range waitConns + waitLimit {
		if r := next(t, results); r.err != nil {
			t.Errorf("held or waiting call %d: %v", i, r.err)
		}
	}
	if _, err := r.Do(bg, "p", "GET", k); err != nil || s.breaker.State() != "closed" {
		t.Fatalf("GET after the burst: %v, breaker %s", err, s.breaker.State())
	}
	if n := count(c, testenv.RedisAddr, "BLPOP", KindBusy); n != refused {
		t.Errorf("%d busy BLPOPs observed, want %d", n, refused)
	}
}

// TestMemcacheWaitingCallsBound: against a frozen memcached, with
// max_conns_per_server 2 and max_waiting_calls 3, 20 concurrent gets: 15
// fail at once with KindBusy naming the limit; the 5 others end with the
// server's timeout or the wait's (timeout); after SIGCONT gets succeed.
func TestMemcacheWaitingCallsBound(t *testing.T) {
	srv := testenv.StartMemcached(t)
	cfg := mcConfig(t, "standard", 1, srv.Addr())
	cfg.MaxConnsPerServer, cfg.MaxWaitingCalls, cfg.Timeout = waitConns, waitLimit, 2*time.Second
	cfg.Breaker = BreakerConfig{FailureAllowance: 100, RetryInterval: time.Second}
	cfg.Coalesce = false // a connection per get: TestMemcacheBatchWaitingCallsBound is the coalesced one
	m, obs := newTestMemcache(t, cfg, Limits{})
	k := testKey(t, "k")
	if err := m.Set("p", k, []byte("v"), 0, 60); err != nil {
		t.Fatal(err)
	}
	s := m.pools["p"].servers[0]
	srv.Freeze()
	base := runtime.NumGoroutine()
	results := burst(burstCalls, func() error { _, _, err := m.Get("p", k); return err })
	wantRefusedAtOnce(t, results, srv.Addr(), s.gate, base)
	for i := range waitConns + waitLimit {
		r := next(t, results)
		if k := KindOf(r.err); k != KindTimeout && k != KindBusy || errors.As(r.err, new(*WaitLimitError)) {
			t.Errorf("held or waiting call %d: %v; want a timeout, or busy after timeout", i, r.err)
		}
	}
	srv.Thaw()
	testenv.Eventually(t, 10*time.Second, "gets to succeed after SIGCONT", func() bool {
		v, _, err := m.Get("p", k)
		return err == nil && string(v) == "v"
	})
	if n := mcCount(obs, srv.Addr(), "get", KindBusy); n < refused {
		t.Errorf("%d busy gets observed, want at least %d", n, refused)
	}
}

// TestMongoWaitingCallsBound: against a frozen FerretDB, with
// max_conns_per_server 2 and max_waiting_calls 3, 20 concurrent counts: 15
// fail at once with KindBusy naming the limit; after SIGCONT counts succeed.
func TestMongoWaitingCallsBound(t *testing.T) {
	srv := testenv.StartFerretDB(t)
	var port Port
	fmt.Sscan(strings.TrimPrefix(srv.Addr(), "127.0.0.1:"), &port)
	var cfg MongoConfig
	cfg.SetDefaults()
	cfg.Servers = []MongoServerConfig{server("default", "fae_wait_test", port)}
	cfg.MaxConnsPerServer, cfg.MaxWaitingCalls = waitConns, waitLimit
	cfg.ConnectTimeout, cfg.IOTimeout = 2*time.Second, 2*time.Second
	cfg.Breaker = BreakerConfig{FailureAllowance: 100, RetryInterval: time.Second}
	if err := cfg.Validate("servants.mongodb"); err != nil {
		t.Fatal(err)
	}
	c, obs := newMongo(t, cfg, Limits{})
	target := MongoTarget{Pool: "default", Table: "waits"}
	testenv.Eventually(t, 20*time.Second, "FerretDB to answer", func() bool {
		_, err := c.Count(context.Background(), target, nil)
		return err == nil
	})
	srv.Freeze()
	base := runtime.NumGoroutine()
	results := burst(burstCalls, func() error { _, err := c.Count(context.Background(), target, nil); return err })
	wantRefusedAtOnce(t, results, srv.Addr(), nil, base)
	if st := c.Stats(); len(st) != 1 || st[0].Waiting != waitLimit {
		t.Errorf("stats while frozen: %+v; want %d waiting", st, waitLimit)
	}
	for i := range waitConns + waitLimit {
		if r := next(t, results); r.err == nil || errors.As(r.err, new(*WaitLimitError)) {
			t.Errorf("held or waiting call %d to a frozen server: %v; want a failure other than the limit's", i, r.err)
		}
	}
	srv.Thaw()
	testenv.Eventually(t, 20*time.Second, "counts to succeed after SIGCONT", func() bool {
		_, err := c.Count(context.Background(), target, nil)
		return err == nil
	})
	label := "default (" + srv.Addr() + ")"
	if n := opCount(obs, "count", label, KindBusy); n < refused {
		t.Errorf("%d busy counts observed, want at least %d", n, refused)
	}
}
