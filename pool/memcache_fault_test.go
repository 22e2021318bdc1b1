package pool

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

// freeze stops srv (SIGSTOP) and waits until every thread of it has stopped:
// the signal takes effect asynchronously, and a worker thread already woken by
// a request may still answer it. thaw resumes srv and waits until no thread is
// stopped.
func freeze(t testing.TB, srv *testenv.Server) {
	t.Helper()
	srv.Freeze()
	waitThreads(t, srv, true)
}

func thaw(t testing.TB, srv *testenv.Server) {
	t.Helper()
	srv.Thaw()
	waitThreads(t, srv, false)
}

// waitThreads polls the states of the threads of srv's process
// (/proc/<pid>/task/*/stat) until all are stopped ("T"), or none is.
func waitThreads(t testing.TB, srv *testenv.Server, stopped bool) {
	t.Helper()
	pid := memcachedPid(t, srv.Port)
	testenv.Eventually(t, 5*time.Second, fmt.Sprintf("memcached %d stopped = %v", pid, stopped), func() bool {
		stats, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		for _, f := range stats {
			b, err := os.ReadFile(f)
			i := strings.LastIndexByte(string(b), ')')
			if err != nil || i < 0 || i+2 >= len(b) || (b[i+2] == 'T') != stopped {
				return false
			}
		}
		return len(stats) > 0
	})
}

// memcachedPid is the process id of the memcached listening on port, found by
// its command line (testenv.Server does not expose it).
func memcachedPid(t testing.TB, port int) int {
	t.Helper()
	want := "\x00-p\x00" + strconv.Itoa(port) + "\x00"
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range cmdlines {
		b, err := os.ReadFile(f)
		if err == nil && strings.HasPrefix(string(b), "/usr/bin/memcached\x00") && strings.Contains(string(b), want) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
			return pid
		}
	}
	t.Fatalf("no memcached process with -p %d", port)
	return 0
}

// mcStat is the value of memcached's "stats" line name, asked on a
// connection of its own (counted in curr_connections).
func mcStat(addr, name string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c, "stats\r\n")
	sc := bufio.NewScanner(c)
	for sc.Scan() && sc.Text() != "END" {
		if v, ok := strings.CutPrefix(sc.Text(), "STAT "+name+" "); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, fmt.Errorf("no stat %s: %v", name, sc.Err())
}

// TestMemcacheFrozenServer: a frozen memcached times out each call; the
// health check ("version" on a connection of its own) fails too, so the
// breaker opens after failure_allowance calls and then refuses at once; after
// SIGCONT the server is used again within retry_interval.
func TestMemcacheFrozenServer(t *testing.T) {
	srv := testenv.StartMemcached(t)
	cfg := mcConfig(t, "standard", 1, srv.Addr())
	cfg.Timeout = 200 * time.Millisecond
	cfg.Breaker = BreakerConfig{FailureAllowance: 2, RetryInterval: 500 * time.Millisecond}
	m, obs := newTestMemcache(t, cfg, Limits{})
	k := testKey(t, "k")
	if err := m.Set("p", k, []byte("v"), 0, 60); err != nil {
		t.Fatal(err)
	}
	freeze(t, srv)
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
	thaw(t, srv)
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
	freeze(t, srv)
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
	freeze(t, srv)
	_, _, err := m.Get("p", k1)
	wantMcError(t, "get of a frozen server", err, KindTimeout, srv.Addr(), "i/o timeout")
	thaw(t, srv)
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
	conns := func() int {
		n, err := mcStat(addr, "curr_connections")
		if err != nil {
			t.Fatal(err)
		}
		return n - 1
	}
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
