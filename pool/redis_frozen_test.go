package pool

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/fae-go/fae/internal/testenv"
)

// TestRedisFrozenServer: a Redis frozen with SIGSTOP (the kernel still
// completes TCP handshakes, nothing answers) times out failure_allowance
// calls, each after io_timeout and a failed health check; then the breaker
// refuses at once, and after SIGCONT calls succeed again within retry_interval.
func TestRedisFrozenServer(t *testing.T) {
	srv := testenv.StartRedis(t)
	cfg := rdConfig(t, srv.Addr())
	cfg.IOTimeout = 300 * time.Millisecond
	cfg.Breaker = BreakerConfig{FailureAllowance: 2, RetryInterval: time.Second}
	r, c := newTestRedis(t, cfg, Limits{})
	s := r.pools["p"].servers[srv.Addr()]
	k := testKey(t, "k")
	if _, err := r.Do(bg, "p", "SET", k, "v"); err != nil {
		t.Fatal(err)
	}
	srv.Freeze()
	for i := 0; i < 2; i++ {
		start := time.Now()
		_, err := r.Do(bg, "p", "GET", k)
		wantKind(t, "GET on a frozen server", err, KindTimeout, `redis GET "`+k+`": pool "p", server `+srv.Addr()+
			": timeout: no reply within io_timeout 300ms: ", "i/o timeout")
		if d := time.Since(start); d > cfg.IOTimeout+HealthCheckTimeout+time.Second {
			t.Errorf("call %d failed after %s, want about io_timeout + the health check", i, d)
		}
	}
	if st := s.pool.Stats(); st.ActiveCount != 0 { // never back to the pool after a timeout
		t.Errorf("%d connections kept after timeouts, want them closed", st.ActiveCount)
	}
	if s.breaker.CheckFailures.Load() != 2 || s.breaker.State() != "open" {
		t.Errorf("%d failed health checks, breaker %s; want 2, open", s.breaker.CheckFailures.Load(), s.breaker.State())
	}
	start := time.Now()
	_, err := r.Do(bg, "p", "GET", k)
	wantKind(t, "GET with the breaker open", err, KindBreakerOpen, "server "+srv.Addr()+": circuit open")
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("refusal took %s, want it at once", d)
	}
	srv.Thaw()
	resumed := time.Now()
	testenv.Eventually(t, 5*time.Second, "GET to succeed after SIGCONT", func() bool {
		_, err := r.Do(bg, "p", "GET", k)
		return err == nil
	})
	if d := time.Since(resumed); d > cfg.Breaker.RetryInterval+time.Second {
		t.Errorf("calls came back %s after SIGCONT, want within retry_interval (1s)", d)
	}
	if n := count(c, srv.Addr(), "GET", KindTimeout); n != 2 {
		t.Errorf("observed %d timeouts, want 2", n)
	}
}

// TestRedisNoStateLeak: with one connection for all, a client's SELECT 3 is
// refused while another's SET goes on, and the SET lands in db 0; QUIT is
// refused and the connection keeps working.
func TestRedisNoStateLeak(t *testing.T) {
	testenv.RequireServer(t, "redis", testenv.RedisAddr)
	cfg := rdConfig(t, testenv.RedisAddr)
	cfg.Pools[0].Servers[0].MaxIdle, cfg.Pools[0].Servers[0].MaxActive = 1, 1
	r, c := newTestRedis(t, cfg, Limits{})
	victim := testKey(t, "victim")
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 50 {
			if _, err := r.Do(bg, "p", "SELECT", "3"); !errors.Is(err, KindRefused) {
				t.Errorf("SELECT 3: %v", err)
				return
			}
		}
	})
	wg.Go(func() {
		for range 50 {
			if _, err := r.Do(bg, "p", "SET", victim, "x", "EX", 60); err != nil {
				t.Errorf("SET: %v", err)
				return
			}
		}
	})
	wg.Wait()
	direct := rdDirect(t, testenv.RedisAddr)
	if n, _ := redis.Int(direct.Do("EXISTS", victim)); n != 1 {
		t.Errorf("the SET is not in db 0")
	}
	direct.Do("SELECT", 3)
	if n, _ := redis.Int(direct.Do("EXISTS", victim)); n != 0 {
		t.Errorf("the SET landed in db 3")
	}
	direct.Do("SELECT", 0)

	_, err := r.Do(bg, "p", "QUIT", "x")
	wantKind(t, "QUIT", err, KindRefused, "QUIT changes the state of the connection (closes it)")
	if v, err := r.Do(bg, "p", "GET", victim); err != nil || string(v.([]byte)) != "x" {
		t.Errorf("GET after QUIT = %v, %v", v, err)
	}
	if n := c.Sum("redis", KindServerFailure); n != 0 {
		t.Errorf("%d server failures", n)
	}
	direct.Do("DEL", victim)
}
