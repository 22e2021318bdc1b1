package pool

import (
	"context"
	"errors"
	"hash/crc32"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
)

// The shared Redis pair of contrib/test-services.
var (
	rdAddr1 = "127.0.0.1:" + envOr("FAE_REDIS_PORT", "16379")
	rdAddr2 = "127.0.0.1:" + envOr("FAE_REDIS2_PORT", "16380")
)

// rdConfig is a validated redis section with pool "p" over addrs.
func rdConfig(t testing.TB, addrs ...string) RedisConfig {
	t.Helper()
	var cfg RedisConfig
	cfg.SetDefaults()
	p := RedisPool{Name: "p"}
	for _, a := range addrs {
		s := RedisServer{}
		s.SetDefaults()
		s.Addr = a
		p.Servers = append(p.Servers, s)
	}
	cfg.Pools = []RedisPool{p}
	if err := cfg.Validate("servants.redis"); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newTestRedis(t testing.TB, cfg RedisConfig) *Redis {
	t.Helper()
	r, err := NewRedis(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

var bg = context.Background()

func TestRedisDo(t *testing.T) {
	requireTCP(t, "redis", rdAddr1)
	requireTCP(t, "redis2", rdAddr2)
	cfg := rdConfig(t, rdAddr1, rdAddr2)
	cfg.Breaker.FailureAllowance = 1 // an error reply must not open it
	r := newTestRedis(t, cfg)
	k := testKey(t, "k")
	if v, err := r.Do(bg, "p", "SET", k, "v", "EX", 60); v != "OK" || err != nil {
		t.Fatalf("SET = %v, %v", v, err)
	}
	if v, err := r.Do(bg, "p", "get", []byte(k)); string(v.([]byte)) != "v" || err != nil {
		t.Fatalf("GET = %v, %v", v, err)
	}
	_, err := r.Do(bg, "p", "INCR", k)
	var re redis.Error
	if !errors.Is(err, ErrRedisReply) || !errors.As(err, &re) || !strings.Contains(err.Error(), "ERR value is not an integer") {
		t.Fatalf("INCR of a string: %v", err)
	}
	for i := 0; i < 3; i++ {
		if v, err := r.Do(bg, "p", "DEL", k); err != nil || v != int64(1-min(i, 1)) {
			t.Fatalf("DEL %d = %v, %v", i, v, err)
		}
	}
	if v, err := r.Do(bg, "p", "GET", k); v != nil || err != nil {
		t.Fatalf("GET of a missing key = %v, %v", v, err)
	}
	st := r.Stats("p")
	if st.Calls.Load() != 7 || st.ErrorReplies.Load() != 1 || st.NilReplies.Load() != 1 || st.ServerFailures.Load() != 0 {
		t.Errorf("stats: calls %d error replies %d nil %d failures %d", st.Calls.Load(), st.ErrorReplies.Load(),
			st.NilReplies.Load(), st.ServerFailures.Load())
	}
}

func TestRedisRefusals(t *testing.T) {
	r := newTestRedis(t, rdConfig(t, rdAddr1))
	for _, c := range []struct {
		cmd  string
		args []any
		kind error
		want string
	}{
		{"flushall", []any{"x"}, ErrRedisDenied, `redis FLUSHALL "x": pool "p": command denied: FLUSHALL is in servants.redis.deny_commands`},
		{"Config", []any{"GET", "*"}, ErrRedisDenied, "CONFIG is in servants.redis.deny_commands"},
		{"GET", nil, ErrRedisNoKey, `redis GET: pool "p": no key: the first argument picks the server`},
		{" ", []any{"k"}, ErrRedisNoCommand, "empty command"},
	} {
		_, err := r.Do(bg, "p", c.cmd, c.args...)
		if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %v: %v; want %q", c.cmd, c.args, err, c.want)
		}
	}
	_, err := r.Do(bg, "nope", "GET", "k")
	if !errors.Is(err, ErrRedisUnknownPool) || err.Error() != `redis GET: pool "nope": unknown pool: not in servants.redis.pools` {
		t.Errorf("unknown pool: %v", err)
	}
	st := r.Stats("p")
	if st.Denied.Load() != 2 || st.NoKey.Load() != 1 || st.BadCommands.Load() != 1 || r.UnknownPoolCalls() != 1 {
		t.Errorf("denied %d no-key %d bad %d unknown %d", st.Denied.Load(), st.NoKey.Load(), st.BadCommands.Load(), r.UnknownPoolCalls())
	}

	// deny_commands: [] allows everything, e.g. a harmless CONFIG GET.
	cfg := rdConfig(t, rdAddr1)
	cfg.DenyCommands = nil
	if v, err := newTestRedis(t, cfg).Do(bg, "p", "CONFIG", "GET", "maxmemory"); err != nil || len(v.([]any)) != 2 {
		t.Errorf("CONFIG GET with an empty denylist = %v, %v", v, err)
	}
}

// originalRing is the original fae's ring (funkygao/golib hash.Map), written out
// here as reference: crc32 of "<i><addr>" for i < 32, first point ≥ crc32(key)
// by linear scan, else the first point.
func originalRing(addrs []string, key string) string {
	var points []int
	owner := map[int]string{}
	for _, a := range addrs {
		for i := 0; i < 32; i++ {
			h := int(crc32.ChecksumIEEE([]byte(strconv.Itoa(i) + a)))
			points = append(points, h)
			owner[h] = a
		}
	}
	for i := 1; i < len(points); i++ { // insertion sort, as plain as can be
		for j := i; j > 0 && points[j] < points[j-1]; j-- {
			points[j], points[j-1] = points[j-1], points[j]
		}
	}
	h := int(crc32.ChecksumIEEE([]byte(key)))
	for _, p := range points {
		if p >= h {
			return owner[p]
		}
	}
	return owner[points[0]]
}

// TestRedisRing: keys land where the original put them, and a key SET through
// the pool is on that server (read directly with redigo), not on the other.
func TestRedisRing(t *testing.T) {
	addrs := []string{"10.1.1.1:6379", "10.1.1.2:6379", "10.1.1.3:6380"}
	rf := newTestRedis(t, rdConfig(t, addrs...))
	for i := 0; i < 3000; i++ {
		k := "user:" + strconv.Itoa(i)
		if got, _ := rf.ServerOf("p", k); got != originalRing(addrs, k) {
			t.Fatalf("%q → %s, original → %s", k, got, originalRing(addrs, k))
		}
	}
	requireTCP(t, "redis", rdAddr1)
	requireTCP(t, "redis2", rdAddr2)
	r := newTestRedis(t, rdConfig(t, rdAddr1, rdAddr2))
	direct := map[string]redis.Conn{}
	for _, a := range []string{rdAddr1, rdAddr2} {
		c, err := redis.Dial("tcp", a)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		direct[a] = c
	}
	seen := map[string]bool{}
	for i := 0; i < 20; i++ {
		k := testKey(t, strconv.Itoa(i))
		if _, err := r.Do(bg, "p", "SET", k, "x", "EX", 60); err != nil {
			t.Fatal(err)
		}
		own := originalRing([]string{rdAddr1, rdAddr2}, k)
		seen[own] = true
		for a, c := range direct {
			if n, _ := redis.Int(c.Do("EXISTS", k)); (n == 1) != (a == own) {
				t.Fatalf("%q: EXISTS on %s = %d; its server is %s", k, a, n, own)
			}
		}
	}
	if len(seen) != 2 {
		t.Errorf("20 keys all on one server: %v", seen)
	}
}

// TestRedisExhaustion: with max_active 1 held by a real BLPOP, another call
// waits borrow_timeout and fails with ErrRedisExhausted; the breaker (allowance
// 1) does not count it.
func TestRedisExhaustion(t *testing.T) {
	requireTCP(t, "redis", rdAddr1)
	cfg := rdConfig(t, rdAddr1)
	cfg.Pools[0].Servers[0].MaxActive = 1
	cfg.BorrowTimeout = 200 * time.Millisecond
	cfg.Breaker.FailureAllowance = 1
	r := newTestRedis(t, cfg)
	k := testKey(t, "list")
	var wg sync.WaitGroup
	wg.Go(func() {
		if v, err := r.Do(bg, "p", "BLPOP", k, 1); v != nil || err != nil {
			t.Errorf("BLPOP = %v, %v", v, err)
		}
	})
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	_, err := r.Do(bg, "p", "GET", k)
	if !errors.Is(err, ErrRedisExhausted) || time.Since(start) < 200*time.Millisecond {
		t.Fatalf("GET with the only connection busy: %v after %s", err, time.Since(start))
	}
	if !strings.Contains(err.Error(), "all connections busy: 1 connections busy for 200ms") {
		t.Errorf("message: %v", err)
	}
	wg.Wait()
	if _, err := r.Do(bg, "p", "GET", k); err != nil {
		t.Fatalf("GET after the BLPOP: %v", err)
	}
	if st := r.Stats("p"); st.Exhausted.Load() != 1 || st.BreakerOpen.Load() != 0 {
		t.Errorf("exhausted %d, breaker open %d", st.Exhausted.Load(), st.BreakerOpen.Load())
	}
}

// TestRedisBreaker: a port nobody listens on fails failure_allowance times,
// then the breaker refuses at once.
func TestRedisBreaker(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	cfg := rdConfig(t, dead)
	cfg.Breaker = BreakerConfig{FailureAllowance: 2, RetryInterval: time.Hour}
	r := newTestRedis(t, cfg)
	for i := 0; i < 2; i++ {
		if _, err := r.Do(bg, "p", "GET", "k"); !errors.Is(err, ErrRedisServer) || !strings.Contains(err.Error(), "dial") {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	_, err := r.Do(bg, "p", "GET", "k")
	if want := `redis GET "k": pool "p", server ` + dead + `: circuit open`; !errors.Is(err, ErrBreakerOpen) || err.Error() != want {
		t.Fatalf("after 2 failures: %v, want %q", err, want)
	}
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if _, err := r.Do(ctx, "p", "GET", "k"); !errors.Is(err, ErrRedisCanceled) && !errors.Is(err, ErrBreakerOpen) {
		t.Errorf("canceled call: %v", err)
	}
}

// TestRedisContextDeadline: a caller's deadline ends a slow command early, and
// the breaker (allowance 1) does not count it as the server's failure.
func TestRedisContextDeadline(t *testing.T) {
	requireTCP(t, "redis", rdAddr1)
	cfg := rdConfig(t, rdAddr1)
	cfg.Breaker.FailureAllowance = 1
	r := newTestRedis(t, cfg)
	ctx, cancel := context.WithTimeout(bg, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := r.Do(ctx, "p", "BLPOP", testKey(t, "list"), 3)
	if !errors.Is(err, ErrRedisCanceled) || time.Since(start) > time.Second {
		t.Fatalf("BLPOP past the caller's deadline: %v after %s", err, time.Since(start))
	}
	if _, err := r.Do(bg, "p", "GET", testKey(t, "k")); err != nil {
		t.Fatalf("GET after a canceled call: %v", err)
	}
	if st := r.Stats("p"); st.Canceled.Load() != 1 || st.ServerFailures.Load() != 0 {
		t.Errorf("canceled %d, failures %d", st.Canceled.Load(), st.ServerFailures.Load())
	}
}
