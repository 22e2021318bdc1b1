package pool

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/fae-go/fae/internal/testenv"
)

// rdConfig is a validated redis section with pool "p" over addrs.
func rdConfig(t testing.TB, addrs ...string) RedisConfig {
	t.Helper()
	var cfg RedisConfig
	cfg.SetDefaults()
	p := RedisPoolConfig{Name: "p"}
	for _, a := range addrs {
		s := RedisServerConfig{}
		s.SetDefaults()
		s.Addr = a
		p.Servers = append(p.Servers, s)
	}
	cfg.Pools = []RedisPoolConfig{p}
	if err := cfg.Validate("servants.redis"); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// newTestRedis builds cfg's cluster with counters and limits.
func newTestRedis(t testing.TB, cfg RedisConfig, limits Limits) (*Redis, *Counters) {
	t.Helper()
	c := NewCounters()
	r, err := NewRedis(cfg, c, limits)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, c
}

// rdDirect is a plain redigo connection to addr, for checking what a test did.
func rdDirect(t testing.TB, addr string) redis.Conn {
	t.Helper()
	c, err := redis.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// wantKind fails unless err is a *Error of kind whose text contains each part.
func wantKind(t testing.TB, what string, err error, kind Kind, parts ...string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, kind) {
		t.Errorf("%s: %v (%T), want a *Error of kind %v", what, err, err, kind)
		return
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %q does not contain %q", what, err, p)
		}
	}
}

// count is the number of operations of kind k named name on server ("" any).
func count(c *Counters, server, name string, k Kind) (n int64) {
	for _, oc := range c.Snapshot() {
		if oc.Backend == "redis" && (server == "" || oc.Server == server) && oc.Name == name {
			n += oc.Count(k)
		}
	}
	return n
}

var bg = context.Background()

func TestRedisDo(t *testing.T) {
	testenv.RequireServer(t, "redis", testenv.RedisAddr)
	testenv.RequireServer(t, "redis2", testenv.Redis2Addr)
	cfg := rdConfig(t, testenv.RedisAddr, testenv.Redis2Addr)
	cfg.Breaker.FailureAllowance = 1 // an error reply must not open it
	r, c := newTestRedis(t, cfg, Limits{})
	k := testKey(t, "k")
	if v, err := r.Do(bg, "p", "SET", k, "v", "EX", 60); v != "OK" || err != nil {
		t.Fatalf("SET = %v, %v", v, err)
	}
	if v, err := r.Do(bg, "p", "get", []byte(k)); err != nil || string(v.([]byte)) != "v" {
		t.Fatalf("GET = %v, %v", v, err)
	}
	_, err := r.Do(bg, "p", "INCR", k)
	var re redis.Error
	wantKind(t, "INCR of a string", err, KindRefused, `redis INCR "`+k+`": pool "p", server `,
		": refused: error reply: ERR value is not an integer or out of range")
	if !errors.As(err, &re) {
		t.Errorf("INCR: redis.Error not reachable in %v", err)
	}
	_, err = r.Do(bg, "p", "NOSUCHCMD", k)
	wantKind(t, "an unknown command", err, KindRefused, "error reply: ERR unknown command 'NOSUCHCMD'")
	for i := 0; i < 3; i++ {
		if v, err := r.Do(bg, "p", "DEL", k); err != nil || v != int64(1-min(i, 1)) {
			t.Fatalf("DEL %d = %v, %v", i, v, err)
		}
	}
	if v, err := r.Do(bg, "p", "GET", k); v != nil || err != nil {
		t.Fatalf("GET of a missing key = %v, %v", v, err)
	}
	if v, err := r.Do(bg, "p", "GET", k); v != nil || err != nil { // the breaker is still closed
		t.Fatalf("GET after an error reply = %v, %v", v, err)
	}
	for _, w := range []struct {
		name string
		kind Kind
		n    int64
	}{{"SET", KindOK, 1}, {"GET", KindOK, 1}, {"GET", KindMiss, 2}, {"INCR", KindRefused, 1},
		{"OTHER", KindRefused, 1}, {"DEL", KindOK, 3}} {
		if got := count(c, "", w.name, w.kind); got != w.n {
			t.Errorf("observed %s %v: %d, want %d", w.name, w.kind, got, w.n)
		}
	}
	if n := c.Sum("redis", KindServerFailure) + c.Sum("redis", KindBreakerOpen); n != 0 {
		t.Errorf("%d failures or refusals by the breaker", n)
	}
}

func TestRedisRefusals(t *testing.T) {
	cfg := rdConfig(t, testenv.RedisAddr)
	r, c := newTestRedis(t, cfg, Limits{})
	for _, w := range []struct {
		cmd  string
		args []any
		kind Kind
		want string
	}{
		{"flushall", []any{"x"}, KindRefused, `redis FLUSHALL "x": pool "p": refused: command denied: FLUSHALL is in servants.redis.deny_commands`},
		{"Config", []any{"GET", "*"}, KindRefused, "command denied: CONFIG is in servants.redis.deny_commands"},
		{"select", []any{"3"}, KindRefused, `redis SELECT "3": pool "p": refused: SELECT changes the state of the connection (switches it to another database), which the next caller of the pooled connection would inherit`},
		{"QUIT", nil, KindRefused, "QUIT changes the state of the connection (closes it), which the next caller"},
		{"GET", nil, KindBadArgument, `redis GET: pool "p": bad argument: no key: the first argument picks the server`},
		{" ", []any{"k"}, KindBadArgument, `redis "k": pool "p": bad argument: empty command`},
		{"BLPOP", []any{"k", "0"}, KindRefused, "refused: BLPOP timeout 0 (forever) is longer than io_timeout 4s"},
		{"BLPOP", []any{"k", "x"}, KindBadArgument, `bad argument: BLPOP timeout "x": want a non-negative number of seconds`},
	} {
		_, err := r.Do(bg, "p", w.cmd, w.args...)
		wantKind(t, w.cmd, err, w.kind, w.want)
	}
	for name := range rdStateCommands { // refused whatever deny_commands says
		_, err := r.Do(bg, "p", strings.ToLower(name), "x")
		wantKind(t, name, err, KindRefused, name+" changes the state of the connection")
	}
	_, err := r.Do(bg, "nope", "GET", "k")
	wantKind(t, "unknown pool", err, KindUnknownPool)
	if err.Error() != `redis GET "k": pool "nope": unknown pool: not in servants.redis.pools` {
		t.Errorf("unknown pool: %q", err)
	}
	// Refusals are observed without a server; the unknown pool without a pool.
	for _, oc := range c.Snapshot() {
		if oc.Server != "" || oc.Pool != "p" && oc.Pool != "" || oc.Pool == "" && oc.Count(KindUnknownPool) != 1 {
			t.Errorf("observed %s %s %s: %d", oc.Pool, oc.Server, oc.Name, oc.Total())
		}
	}
	if n := count(c, "", "SELECT", KindRefused); n != 2 {
		t.Errorf("SELECT refusals observed: %d, want 2", n)
	}
	if n := count(c, "", "OTHER", KindBadArgument); n != 1 {
		t.Errorf("the empty command observed as OTHER: %d, want 1", n)
	}

	// deny_commands: [] allows a harmless CONFIG GET, never SELECT.
	testenv.RequireServer(t, "redis", testenv.RedisAddr)
	cfg.DenyCommands = nil
	open, _ := newTestRedis(t, cfg, Limits{})
	if v, err := open.Do(bg, "p", "CONFIG", "GET", "maxmemory"); err != nil || len(v.([]any)) != 2 {
		t.Errorf("CONFIG GET with an empty denylist = %v, %v", v, err)
	}
	_, err = open.Do(bg, "p", "SELECT", "1")
	wantKind(t, "SELECT with an empty denylist", err, KindRefused, "SELECT changes the state")
}

// TestRedisDoKey: DoKey routes by its key, not by args[0], and runs what Do
// refuses (CONFIG is denied, EVAL allowed either way).
func TestRedisDoKey(t *testing.T) {
	testenv.RequireServer(t, "redis", testenv.RedisAddr)
	testenv.RequireServer(t, "redis2", testenv.Redis2Addr)
	r, c := newTestRedis(t, rdConfig(t, testenv.RedisAddr, testenv.Redis2Addr), Limits{})
	route := testKey(t, "route")
	home, _ := r.ServerOf("p", route)
	other := testKey(t, "other")
	for i := 0; ; i++ { // a key whose own server is the other one
		if s, _ := r.ServerOf("p", other); s != home {
			break
		}
		other = testKey(t, "other"+strconv.Itoa(i))
	}
	if v, err := r.DoKey(bg, "p", route, "SET", other, "x", "EX", 60); v != "OK" || err != nil {
		t.Fatalf("DoKey SET = %v, %v", v, err)
	}
	if n, _ := redis.Int(rdDirect(t, home).Do("EXISTS", other)); n != 1 {
		t.Errorf("DoKey(%q) SET %q is not on %s, the server of its routing key", route, other, home)
	}
	if v, err := r.DoKey(bg, "p", route, "EVAL", "return redis.call('GET', KEYS[1])", 1, other); err != nil || string(v.([]byte)) != "x" {
		t.Errorf("DoKey EVAL = %v, %v", v, err)
	}
	if v, err := r.DoKey(bg, "p", route, "CONFIG", "GET", "maxmemory"); err != nil || len(v.([]any)) != 2 {
		t.Errorf("DoKey CONFIG GET = %v, %v", v, err)
	}
	if _, err := r.DoKey(bg, "p", route, "DEL", other); err != nil {
		t.Error(err)
	}
	if _, err := r.DoKey(bg, "nope", route, "GET", route); !errors.Is(err, KindUnknownPool) {
		t.Errorf("DoKey on an unknown pool: %v", err)
	}
	if n := count(c, home, "CONFIG", KindOK) + count(c, home, "EVAL", KindOK); n != 2 {
		t.Errorf("observed %d CONFIG and EVAL on %s, want 2", n, home)
	}
}

// TestRedisRing: keys land where the original put them, and a key SET through
// the pool is on that server (read directly with redigo), not on the other.
func TestRedisRing(t *testing.T) {
	addrs := []string{"10.1.1.1:6379", "10.1.1.2:6379", "10.1.1.3:6380"}
	rf, _ := newTestRedis(t, rdConfig(t, addrs...), Limits{})
	for i := 0; i < 3000; i++ {
		k := "user:" + strconv.Itoa(i)
		if got, _ := rf.ServerOf("p", k); got != testenv.OriginalRedisRing(addrs, k) {
			t.Fatalf("%q → %s, original → %s", k, got, testenv.OriginalRedisRing(addrs, k))
		}
	}
	testenv.RequireServer(t, "redis", testenv.RedisAddr)
	testenv.RequireServer(t, "redis2", testenv.Redis2Addr)
	r, _ := newTestRedis(t, rdConfig(t, testenv.RedisAddr, testenv.Redis2Addr), Limits{})
	direct := map[string]redis.Conn{testenv.RedisAddr: rdDirect(t, testenv.RedisAddr), testenv.Redis2Addr: rdDirect(t, testenv.Redis2Addr)}
	seen := map[string]bool{}
	for i := 0; i < 20; i++ {
		k := testKey(t, strconv.Itoa(i))
		if _, err := r.Do(bg, "p", "SET", k, "x", "EX", 60); err != nil {
			t.Fatal(err)
		}
		own := testenv.OriginalRedisRing([]string{testenv.RedisAddr, testenv.Redis2Addr}, k)
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

// rdInUse is the number of connections of addr's pool that a call holds.
func rdInUse(r *Redis, addr string) int {
	for _, p := range r.pools {
		if s := p.servers[addr]; s != nil {
			st := s.pool.Stats()
			return st.ActiveCount - st.IdleCount
		}
	}
	return -1
}

// TestRedisBusy: with max_active 1 held by a real BLPOP, another call
// waits borrow_timeout and fails with KindBusy; the breaker (allowance 1)
// does not count it.
func TestRedisBusy(t *testing.T) {
	testenv.RequireServer(t, "redis", testenv.RedisAddr)
	cfg := rdConfig(t, testenv.RedisAddr)
	cfg.Pools[0].Servers[0].MaxActive = 1
	cfg.BorrowTimeout = 200 * time.Millisecond
	cfg.Breaker.FailureAllowance = 1
	r, c := newTestRedis(t, cfg, Limits{})
	k := testKey(t, "list")
	var wg sync.WaitGroup
	wg.Go(func() {
		if v, err := r.Do(bg, "p", "BLPOP", k, 1); v != nil || err != nil {
			t.Errorf("BLPOP = %v, %v", v, err)
		}
	})
	testenv.Eventually(t, 5*time.Second, "the BLPOP to hold the only connection", func() bool { return rdInUse(r, testenv.RedisAddr) == 1 })
	start := time.Now()
	_, err := r.Do(bg, "p", "GET", k)
	wantKind(t, "GET with the only connection busy", err, KindBusy,
		"busy: all connections busy: max_active 1, none free within borrow_timeout 200ms")
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("gave up after %s, before borrow_timeout", d)
	}
	wg.Wait()
	if _, err := r.Do(bg, "p", "GET", k); err != nil {
		t.Fatalf("GET after the BLPOP: %v", err)
	}
	if count(c, testenv.RedisAddr, "GET", KindBusy) != 1 || c.Sum("redis", KindBreakerOpen) != 0 {
		t.Errorf("busy %d, breaker open %d", count(c, testenv.RedisAddr, "GET", KindBusy), c.Sum("redis", KindBreakerOpen))
	}
}

// TestRedisDeadPort: a port nobody listens on fails failure_allowance dials,
// then the breaker refuses at once.
func TestRedisDeadPort(t *testing.T) {
	dead := testenv.FreeAddr(t)
	cfg := rdConfig(t, dead)
	cfg.Breaker = BreakerConfig{FailureAllowance: 2, RetryInterval: time.Hour}
	r, c := newTestRedis(t, cfg, Limits{})
	for i := 0; i < 2; i++ {
		_, err := r.Do(bg, "p", "GET", "k")
		wantKind(t, "GET "+strconv.Itoa(i), err, KindServerFailure, "server failure: dial tcp "+dead, "connection refused")
	}
	start := time.Now()
	_, err := r.Do(bg, "p", "GET", "k")
	if want := `redis GET "k": pool "p", server ` + dead + `: circuit open`; !errors.Is(err, KindBreakerOpen) || err.Error() != want {
		t.Fatalf("after 2 failures: %v, want %q", err, want)
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("refusal took %s", d)
	}
	if count(c, dead, "GET", KindServerFailure) != 2 || count(c, dead, "GET", KindBreakerOpen) != 1 {
		t.Errorf("observed: %d failures, %d refusals", count(c, dead, "GET", KindServerFailure), count(c, dead, "GET", KindBreakerOpen))
	}
}

func TestRedisClosed(t *testing.T) {
	testenv.RequireServer(t, "redis", testenv.RedisAddr)
	r, _ := newTestRedis(t, rdConfig(t, testenv.RedisAddr), Limits{})
	if _, err := r.Do(bg, "p", "GET", testKey(t, "k")); err != nil {
		t.Fatal(err)
	}
	r.Close()
	_, err := r.Do(bg, "p", "GET", "k")
	wantKind(t, "GET after Close", err, KindClosed, `redis GET "k": pool "p": closed`)
	_, err = r.DoKey(bg, "p", "k", "GET", "k")
	wantKind(t, "DoKey after Close", err, KindClosed)
}

// TestRedisScriptKilled: a script looping for ever (EVAL "while true do
// end"), run through faed, holds Redis from every client: past
// busy-reply-threshold (100 ms here) Redis answers every other command BUSY,
// which faed counts as a server failure naming the script; when the
// script's call times out (io_timeout 2 s), faed sends SCRIPT KILL, and the
// other callers are answered again. Before (found by a hostile client's
// review), the script ran until someone sent SCRIPT KILL by hand, which
// faed refuses to clients, and BUSY counted as the command's own refusal.
func TestRedisScriptKilled(t *testing.T) {
	srv := testenv.StartRedis(t)
	direct := rdDirect(t, srv.Addr())
	if _, err := direct.Do("CONFIG", "SET", "busy-reply-threshold", "100"); err != nil {
		t.Fatal(err)
	}
	cfg := rdConfig(t, srv.Addr())
	cfg.IOTimeout = 2 * time.Second
	cfg.Breaker.FailureAllowance = 1000
	r, _ := newTestRedis(t, cfg, Limits{})
	script := make(chan error, 1)
	go func() {
		_, err := r.Do(bg, "p", "EVAL", "while true do end", "0")
		script <- err
	}()
	testenv.Eventually(t, 5*time.Second, "Redis busy with the script", func() bool {
		_, err := direct.Do("PING")
		return err != nil && strings.HasPrefix(err.Error(), "BUSY ")
	})
	_, err := r.Do(bg, "p", "GET", "k")
	wantKind(t, "GET while a script holds Redis", err, KindServerFailure, "busy running a script")
	wantKind(t, "EVAL of a script looping for ever", <-script, KindTimeout)
	testenv.Eventually(t, 5*time.Second, "GET answered once faed killed the script", func() bool {
		_, err := r.Do(bg, "p", "GET", "k")
		return err == nil
	})
	if n := r.pools["p"].servers[srv.Addr()].scriptKills.Load(); n != 1 {
		t.Errorf("%d SCRIPT KILL sent, want 1", n)
	}
}

// TestRedisScriptBusyReplyOwn: a script's own error reply that begins
// "BUSY " is the script's refusal, not the server busy: 20 of them leave a
// healthy server's breaker closed (found by review: 5 opened it for every
// caller when every BUSY counted as a server failure).
func TestRedisScriptBusyReplyOwn(t *testing.T) {
	testenv.RequireServer(t, "Redis", testenv.RedisAddr)
	r, _ := newTestRedis(t, rdConfig(t, testenv.RedisAddr), Limits{})
	for range 20 {
		_, err := r.Do(bg, "p", "eval", "return redis.error_reply('BUSY not really')", "0")
		wantKind(t, "EVAL returning its own BUSY error", err, KindRefused, "BUSY not really")
	}
	if _, err := r.Do(bg, "p", "GET", "k"); err != nil && !isKind(err, KindMiss) {
		t.Fatalf("GET after the scripts' BUSY replies: %v", err)
	}
}
