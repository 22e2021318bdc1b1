package pool

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

// Faults of a real memcached of the test's own: frozen (SIGSTOP: the kernel
// still completes TCP handshakes, nothing answers), killed and restarted.

// startMemcachedBacklog1 starts a memcached of the test's own whose listen
// backlog holds a single connection (-b 1).
func startMemcachedBacklog1(t testing.TB) *testenv.Server {
	return testenv.Start(t, "memcached", func(port int) []string {
		return []string{"/usr/bin/memcached", "-u", "memcache", "-l", "127.0.0.1", "-p", strconv.Itoa(port),
			"-U", "0", "-m", "16", "-b", "1"}
	})
}

// TestMemcacheFrozenServer: a frozen memcached times out each call; the
// health check ("version" on a connection of its own) fails too, so the
// breaker opens after failure_allowance calls and then refuses at once; after
// SIGCONT the server is used again within retry_interval.
func TestMemcacheFrozenServer(t *testing.T) {
	srv, cfg, m, obs, k := privateMemcached(t, func(cfg *MemcacheConfig) {
		cfg.Timeout = 200 * time.Millisecond
		cfg.Breaker = BreakerConfig{FailureAllowance: 2, RetryInterval: 500 * time.Millisecond}
	})
	srv.Freeze()
	for i := 0; i < 2; i++ {
		start := time.Now()
		_, _, err := m.Get("p", k)
		wantMcError(t, fmt.Sprint("get ", i, " of a frozen server"), err, KindTimeout, srv.Addr(), "i/o timeout")
		// timeout, then the health check (at most HealthCheckTimeout).
		if d := time.Since(start); d < cfg.Timeout || d > cfg.Timeout+HealthCheckTimeout+time.Second {
			t.Errorf("get %d failed after %s, want timeout (%s) plus a health check", i, d, cfg.Timeout)
		}
	}
	b := m.pools["p"].servers[0].breaker
	if b.Checks.Load() != 2 || b.CheckFailures.Load() != 2 {
		t.Errorf("%d health checks, %d failed; want 2 and 2", b.Checks.Load(), b.CheckFailures.Load())
	}
	start := time.Now()
	_, _, err := m.Get("p", k)
	wantMcError(t, "get with the breaker open", err, KindBreakerOpen, srv.Addr(), "circuit open")
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("refusal took %s, want it at once", d)
	}
	srv.Thaw()
	thawed := time.Now()
	testenv.Eventually(t, cfg.Breaker.RetryInterval+2*time.Second, "gets to succeed after SIGCONT", func() bool {
		v, _, err := m.Get("p", k)
		return err == nil && string(v) == "v"
	})
	t.Logf("back %s after SIGCONT (retry_interval %s)", time.Since(thawed).Round(time.Millisecond), cfg.Breaker.RetryInterval)
	if n := mcCount(obs, srv.Addr(), "get", KindTimeout); n != 2 {
		t.Errorf("%d timeouts observed, want 2", n)
	}
}

// TestMemcacheConnectTimeout: a frozen memcached whose listen backlog (-b 1)
// is full drops new SYNs, so a dial times out: KindTimeout with a *DialError
// cause, counted on the breaker's dial side, which opens after
// failure_allowance of them.
func TestMemcacheConnectTimeout(t *testing.T) {
	srv := startMemcachedBacklog1(t)
	cfg := mcConfig(t, "standard", 1, srv.Addr())
	cfg.Timeout = 200 * time.Millisecond
	cfg.Breaker = BreakerConfig{FailureAllowance: 2, RetryInterval: time.Hour}
	m, _ := newTestMemcache(t, cfg, Limits{})
	srv.Freeze()
	// Fill the accept queue: connects succeed until it is full, then hang.
	for filled := false; !filled; {
		c, err := net.DialTimeout("tcp", srv.Addr(), 200*time.Millisecond)
		if err != nil {
			filled = true
			continue
		}
		t.Cleanup(func() { c.Close() })
	}
	for i := 0; i < 2; i++ {
		_, _, err := m.Get("p", "k")
		wantMcError(t, fmt.Sprint("get ", i), err, KindTimeout, srv.Addr(), "timeout: dial: connect timeout to "+srv.Addr())
		if de := (*DialError)(nil); !errors.As(err, &de) {
			t.Fatalf("get %d: %v is not a *DialError", i, err)
		}
	}
	b := m.pools["p"].servers[0].breaker
	_, _, err := m.Get("p", "k")
	wantMcError(t, "get after 2 connect timeouts", err, KindBreakerOpen, srv.Addr(), "circuit open")
	if b.Checks.Load() != 0 {
		t.Errorf("%d health checks after failed dials, want none (a dial failure counts at once)", b.Checks.Load())
	}
}

// TestMemcacheNoReuseAfterTimeout: the connection of a call that timed out is
// never reused. Its request is still in the socket; had the connection gone
// back to the idle list, the next get on it would read that late reply (the
// value of k1) as its own.
func TestMemcacheNoReuseAfterTimeout(t *testing.T) {
	srv := testenv.StartMemcached(t)
	cfg := mcConfig(t, "standard", 1, srv.Addr())
	cfg.Timeout, cfg.MaxIdleConnsPerServer = 200*time.Millisecond, 1
	cfg.Breaker.FailureAllowance = 100
	m, _ := newTestMemcache(t, cfg, Limits{})
	k1, k2 := testKey(t, "k1"), testKey(t, "k2")
	for _, k := range []string{k1, k2} {
		if err := m.Set("p", k, []byte(k), 0, 60); err != nil {
			t.Fatal(err)
		}
	}
	srv.Freeze()
	_, _, err := m.Get("p", k1)
	wantMcError(t, "get of a frozen server", err, KindTimeout, srv.Addr(), "i/o timeout")
	srv.Thaw()
	for i := 0; i < 5; i++ {
		if v, _, err := m.Get("p", k2); err != nil || string(v) != k2 {
			t.Fatalf("get %d of %q after SIGCONT = %q, %v; want its own value", i, k2, v, err)
		}
	}
}

// TestMemcacheRestartDropsIdle: a restarted server has reset every idle
// connection. The first call finds that out (KindServerFailure, not a dial
// failure); the server's other idle connections are dropped with it, so the
// next calls dial afresh and succeed, and the breaker (failure_allowance 2,
// fewer than the idle connections) stays closed.
func TestMemcacheRestartDropsIdle(t *testing.T) {
	srv := testenv.StartMemcached(t)
	cfg := mcConfig(t, "standard", 1, srv.Addr())
	cfg.MaxIdleConnsPerServer = 8
	cfg.Breaker = BreakerConfig{FailureAllowance: 2, RetryInterval: time.Minute}
	m, obs := newTestMemcache(t, cfg, Limits{})
	idle := warmMemcache(t, m, srv.Addr(), cfg.Breaker.FailureAllowance+1)
	t.Logf("%d idle connections before the restart", idle)
	srv.Stop()
	srv.Start()
	k := testKey(t, "after")
	err := m.Set("p", k, []byte("x"), 0, 60)
	wantMcError(t, "first set after the restart", err, KindServerFailure, srv.Addr(), "")
	if de := (*DialError)(nil); errors.As(err, &de) {
		t.Errorf("first set after the restart: %v is a dial failure, want one of the reset connection", err)
	}
	for i := 0; i < 10; i++ {
		if err := m.Set("p", k, []byte("x"), 0, 60); err != nil {
			t.Fatalf("set %d after the first failure: %v", i, err)
		}
	}
	if n := mcCount(obs, srv.Addr(), "set", KindServerFailure); n != 1 {
		t.Errorf("%d server failures observed, want 1", n)
	}
}

// warmMemcache runs concurrent sets on m's pool "p" until the server at addr
// holds at least want connections of m (memcached's curr_connections, less
// the one asking), then stops them and returns how many stayed open, idle.
func warmMemcache(t *testing.T, m *Memcache, addr string, want int) int {
	t.Helper()
	conns := func() int { return testenv.MemcachedClients(t, addr) }
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				m.Set("p", fmt.Sprintf("kvtest:pool:warm:%d:%d", w, i), []byte("v"), 0, 60)
			}
		})
	}
	testenv.Eventually(t, 10*time.Second, fmt.Sprintf("%d connections to %s", want, addr), func() bool { return conns() >= want })
	close(stop)
	wg.Wait()
	n := conns()
	if n < want {
		t.Fatalf("%d idle connections to %s after the warm-up, want at least %d", n, addr, want)
	}
	return n
}
