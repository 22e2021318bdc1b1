package pool

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/fae-go/fae/internal/testenv"
)

// mcConfig is a validated memcache section over addrs, all in pool "p".
func mcConfig(t testing.TB, strategy string, replicas int, addrs ...string) MemcacheConfig {
	t.Helper()
	var cfg MemcacheConfig
	cfg.SetDefaults()
	cfg.HashStrategy, cfg.ReplicaNum, cfg.Timeout = strategy, replicas, time.Second
	for _, a := range addrs {
		host, port, _ := net.SplitHostPort(a)
		p, _ := strconv.Atoi(port)
		cfg.Servers = append(cfg.Servers, MemcacheServerConfig{Host: host, Port: Port(p), Pool: "p"})
	}
	if err := cfg.Validate("servants.memcache"); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// newTestMemcache builds cfg's cluster, reporting to the Counters it returns.
// privateMemcached starts a memcached of the test's own and a Memcache of
// pool "p" over it (its config as tune leaves it), with the test's key k set
// to "v": the set-up of the tests that freeze or kill the server.
func privateMemcached(t *testing.T, tune func(*MemcacheConfig)) (srv *testenv.Server, cfg MemcacheConfig, m *Memcache, obs *Counters, k string) {
	t.Helper()
	srv = testenv.StartMemcached(t)
	cfg = mcConfig(t, "standard", 1, srv.Addr())
	tune(&cfg)
	m, obs = newTestMemcache(t, cfg, Limits{})
	k = testKey(t, "k")
	if err := m.Set("p", k, []byte("v"), 0, 60); err != nil {
		t.Fatal(err)
	}
	return srv, cfg, m, obs, k
}

func newTestMemcache(t testing.TB, cfg MemcacheConfig, limits Limits) (*Memcache, *Counters) {
	t.Helper()
	obs := NewCounters()
	m, err := NewMemcache(cfg, obs, limits)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, obs
}

func testKey(t testing.TB, name string) string {
	return fmt.Sprintf("kvtest:pool:%s:%s:%d", t.Name(), name, time.Now().UnixNano())
}

// mcCount is the number of memcache operations of kind k observed on server
// (any server when "*") named name (any when "").
func mcCount(c *Counters, server, name string, k Kind) int64 {
	var n int64
	for _, oc := range c.Snapshot() {
		if oc.Backend == "memcache" && (server == "*" || oc.Server == server) && (name == "" || oc.Name == name) {
			n += oc.Count(k)
		}
	}
	return n
}

// wantMcError fails unless err is a memcache *Error of kind on server whose
// text contains part.
func wantMcError(t testing.TB, what string, err error, kind Kind, server, part string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, kind) || e.Backend != "memcache" || e.Server != server ||
		!strings.Contains(err.Error(), part) {
		t.Fatalf("%s: %v (%T); want a memcache *Error of kind %q on server %q containing %q", what, err, err, kind, server, part)
	}
	return e
}

func TestMemcacheOperations(t *testing.T) {
	testenv.RequireServer(t, "memcached", testenv.MemcacheAddr)
	testenv.RequireServer(t, "memcached2", testenv.Memcache2Addr)
	m, obs := newTestMemcache(t, mcConfig(t, "standard", 1, testenv.MemcacheAddr, testenv.Memcache2Addr), Limits{})
	k := testKey(t, "k")
	own, _ := m.ServerOf("p", k)
	if err := m.Set("p", k, []byte("v\x00\xff"), 0xfffffffe, 60); err != nil {
		t.Fatal(err)
	}
	if v, f, err := m.Get("p", k); err != nil || string(v) != "v\x00\xff" || f != 0xfffffffe {
		t.Fatalf("get = %q, %#x, %v", v, f, err)
	}
	if ok, err := m.Add("p", k, []byte("w"), 0, 60); ok || err != nil {
		t.Fatalf("add of an existing key = %v, %v; want false, nil", ok, err)
	}
	if ok, err := m.Delete("p", k); !ok || err != nil {
		t.Fatalf("delete = %v, %v", ok, err)
	}
	if ok, err := m.Delete("p", k); ok || err != nil {
		t.Fatalf("delete of an absent key = %v, %v; want false, nil", ok, err)
	}
	_, _, err := m.Get("p", k)
	e := wantMcError(t, "get of an absent key", err, KindMiss, own, ": miss: cache miss")
	if e.Op != "get" || e.Key != k || e.Pool != "p" {
		t.Errorf("error fields %+v", e)
	}
	testMemcacheIncrement(t, m, k, own)
	for _, c := range []struct {
		kind Kind
		want int64
	}{{KindOK, 10}, {KindMiss, 3}, {KindRefused, 1}, {KindServerFailure, 0}} {
		if n := mcCount(obs, own, "", c.kind); n != c.want {
			t.Errorf("%d operations of kind %s observed on %s, want %d", n, c.kind, own, c.want)
		}
	}
	if n := mcCount(obs, "*", "", KindOK) + mcCount(obs, "*", "", KindMiss) + mcCount(obs, "*", "", KindRefused); n != 14 {
		t.Errorf("%d operations observed, want 14 (one per operation)", n)
	}
}

func testMemcacheIncrement(t *testing.T, m *Memcache, k, own string) {
	_, err := m.Increment("p", k, 1)
	wantMcError(t, "incr of an absent key", err, KindMiss, own, `memcache incr "`)
	if ok, err := m.Add("p", k, []byte("10"), 0, 60); !ok || err != nil {
		t.Fatalf("add of an absent key = %v, %v", ok, err)
	}
	for _, c := range []struct{ delta, want int64 }{{5, 15}, {-3, 12}, {-100, 0}, {0, 0}} {
		if v, err := m.Increment("p", k, c.delta); v != c.want || err != nil {
			t.Fatalf("increment by %d = %d, %v; want %d", c.delta, v, err, c.want)
		}
	}
	m.Set("p", k, []byte("ten"), 0, 60)
	_, err = m.Increment("p", k, 1)
	wantMcError(t, "incr of a non-numeric value", err, KindRefused, own,
		"refused: value is not a decimal number: client error: cannot increment or decrement non-numeric value")
	if !errors.Is(err, ErrNotNumeric) {
		t.Errorf("incr of a non-numeric value: %v does not wrap ErrNotNumeric", err)
	}
}

func TestMemcacheCallerMistakes(t *testing.T) {
	m, obs := newTestMemcache(t, mcConfig(t, "consistent", 1, testenv.MemcacheAddr), Limits{})
	for _, c := range []struct{ key, want string }{
		{"", "bad argument: invalid key: empty"},
		{strings.Repeat("k", 251), "bad argument: invalid key: 251 bytes, at most 250 allowed"},
		{"a b", "bad argument: invalid key: control or space byte 0x20 at offset 1"},
		{"a\nb", "bad argument: invalid key: control or space byte 0x0a at offset 1"},
	} {
		err := m.Set("p", c.key, nil, 0, 0)
		wantMcError(t, fmt.Sprintf("key %q", c.key), err, KindBadArgument, "", c.want)
	}
	_, _, err := m.Get("nope", "k")
	wantMcError(t, "unknown pool", err, KindUnknownPool, "", "")
	if want := `memcache get "k": pool "nope": unknown pool: not in servants.memcache.servers`; err.Error() != want {
		t.Errorf("unknown pool: %q, want %q", err, want)
	}
	snap := obs.Snapshot()
	if len(snap) != 2 || snap[0].Pool != "" || snap[0].Count(KindUnknownPool) != 1 ||
		snap[1].Pool != "p" || snap[1].Server != "" || snap[1].Count(KindBadArgument) != 4 {
		t.Errorf("observed %d series; want the unknown pool under pool \"\" and 4 bad keys of pool p, both with server \"\"", len(snap))
	}
}

// TestMemcacheDeadServer: a port nobody listens on (a real refused connection)
// fails failure_allowance times as a dial failure, then the breaker answers at
// once, without dialling.
func TestMemcacheDeadServer(t *testing.T) {
	dead := testenv.FreeAddr(t)
	cfg := mcConfig(t, "standard", 1, dead)
	cfg.Breaker = BreakerConfig{FailureAllowance: 3, RetryInterval: time.Hour}
	m, obs := newTestMemcache(t, cfg, Limits{})
	for i := 0; i < 3; i++ {
		_, _, err := m.Get("p", "k")
		wantMcError(t, fmt.Sprint("call ", i), err, KindServerFailure, dead, "connection refused")
		var de *DialError
		if !errors.As(err, &de) {
			t.Fatalf("call %d: %v is not a *DialError", i, err)
		}
	}
	start := time.Now()
	_, _, err := m.Get("p", "k")
	wantMcError(t, "after 3 failures", err, KindBreakerOpen, dead, "")
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("refusal took %s, want it at once", d)
	}
	if want := `memcache get "k": pool "p", server ` + dead + `: circuit open`; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if mcCount(obs, dead, "get", KindServerFailure) != 3 || mcCount(obs, dead, "get", KindBreakerOpen) != 1 {
		t.Errorf("observed %d failures, %d refusals; want 3 and 1", mcCount(obs, dead, "get", KindServerFailure),
			mcCount(obs, dead, "get", KindBreakerOpen))
	}
}

// TestMemcacheConnLimit: with max_conns_per_server busy (its slots taken here
// directly: holding real connections busy would need a server that stalls),
// a call waits timeout, fails with KindBusy, and the breaker does not count it.
func TestMemcacheConnLimit(t *testing.T) {
	testenv.RequireServer(t, "memcached", testenv.MemcacheAddr)
	cfg := mcConfig(t, "standard", 1, testenv.MemcacheAddr)
	cfg.MaxConnsPerServer, cfg.Timeout = 2, 200*time.Millisecond
	cfg.Breaker.FailureAllowance = 1
	m, obs := newTestMemcache(t, cfg, Limits{})
	s := m.pools["p"].servers[0]
	s.gate.slots <- struct{}{}
	s.gate.slots <- struct{}{}
	start := time.Now()
	err := m.Set("p", "kvtest:pool:connlimit", []byte("x"), 0, 10)
	wantMcError(t, "set with every slot busy", err, KindBusy, testenv.MemcacheAddr,
		"busy: all connections busy: max_conns_per_server 2, none free within timeout 200ms")
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("gave up after %s, want timeout (200ms)", d)
	}
	<-s.gate.slots
	if err := m.Set("p", "kvtest:pool:connlimit", []byte("x"), 0, 10); err != nil {
		t.Fatalf("set with a free slot: %v (breaker %s)", err, s.breaker.State())
	}
	if n := mcCount(obs, testenv.MemcacheAddr, "set", KindBusy); n != 1 {
		t.Errorf("%d busy operations observed, want 1", n)
	}
}

// TestMemcacheRefused: memcached's error reply (an item over its 1 MiB item
// size limit) is KindRefused with memcached's words, and the breaker counts it
// as an answer.
func TestMemcacheRefused(t *testing.T) {
	testenv.RequireServer(t, "memcached", testenv.MemcacheAddr)
	cfg := mcConfig(t, "standard", 1, testenv.MemcacheAddr)
	cfg.Breaker.FailureAllowance = 1
	m, obs := newTestMemcache(t, cfg, Limits{})
	k := testKey(t, "big")
	err := m.Set("p", k, make([]byte, 2<<20), 0, 10)
	wantMcError(t, "set of 2 MiB", err, KindRefused, testenv.MemcacheAddr, "SERVER_ERROR object too large for cache")
	if errors.Is(err, ErrNotNumeric) {
		t.Errorf("%v wraps ErrNotNumeric", err)
	}
	if err := m.Set("p", k, []byte("small"), 0, 10); err != nil {
		t.Fatalf("set after a refusal: %v (breaker %s)", err, m.pools["p"].servers[0].breaker.State())
	}
	if n := mcCount(obs, testenv.MemcacheAddr, "set", KindRefused); n != 1 {
		t.Errorf("%d refusals observed, want 1", n)
	}
}

// TestMemcacheTooLarge: a value over max_reply_bytes is refused with its size
// and the limit.
func TestMemcacheTooLarge(t *testing.T) {
	testenv.RequireServer(t, "memcached", testenv.MemcacheAddr)
	m, obs := newTestMemcache(t, mcConfig(t, "standard", 1, testenv.MemcacheAddr), Limits{MaxReplyBytes: 10})
	k := testKey(t, "k")
	if err := m.Set("p", k, make([]byte, 100), 0, 10); err != nil {
		t.Fatal(err)
	}
	_, _, err := m.Get("p", k)
	wantMcError(t, "get of 100 bytes", err, KindTooLarge, testenv.MemcacheAddr, "too large: value of 100 bytes, over max_reply_bytes 10")
	if err := m.Set("p", k, make([]byte, 10), 0, 10); err != nil {
		t.Fatal(err)
	}
	if v, _, err := m.Get("p", k); err != nil || len(v) != 10 {
		t.Fatalf("get of 10 bytes = %d bytes, %v", len(v), err)
	}
	if n := mcCount(obs, testenv.MemcacheAddr, "get", KindTooLarge); n != 1 {
		t.Errorf("%d too-large gets observed, want 1", n)
	}
}

// TestMemcacheClosed: after Close every operation fails with KindClosed,
// before any server is asked.
func TestMemcacheClosed(t *testing.T) {
	testenv.RequireServer(t, "memcached", testenv.MemcacheAddr)
	m, obs := newTestMemcache(t, mcConfig(t, "standard", 1, testenv.MemcacheAddr), Limits{})
	k := testKey(t, "k")
	if err := m.Set("p", k, []byte("x"), 0, 10); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	_, _, err := m.Get("p", k)
	wantMcError(t, "get after Close", err, KindClosed, "", `pool "p": closed`)
	err = m.Set("p", k, []byte("x"), 0, 10)
	wantMcError(t, "set after Close", err, KindClosed, "", "closed")
	if m.Close() != nil {
		t.Error("second Close failed")
	}
	if n := mcCount(obs, "", "", KindClosed); n != 2 {
		t.Errorf("%d closed operations observed with server \"\", want 2", n)
	}
}

// TestMemcacheReplicaWrites: with replica_num 2 a write is one operation on
// each server, and the item is on both.
func TestMemcacheReplicaWrites(t *testing.T) {
	testenv.RequireServer(t, "memcached", testenv.MemcacheAddr)
	testenv.RequireServer(t, "memcached2", testenv.Memcache2Addr)
	m, obs := newTestMemcache(t, mcConfig(t, "standard", 2, testenv.MemcacheAddr, testenv.Memcache2Addr), Limits{})
	k := testKey(t, "k")
	if err := m.Set("p", k, []byte("both"), 0, 60); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Get("p", k); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{testenv.MemcacheAddr, testenv.Memcache2Addr} {
		if n := mcCount(obs, a, "set", KindOK); n != 1 {
			t.Errorf("%d sets observed on %s, want 1", n, a)
		}
		if it, err := memcache.New(a).Get(k); err != nil || string(it.Value) != "both" {
			t.Errorf("%q on %s: %v", k, a, err)
		}
	}
	if n := mcCount(obs, "*", "get", KindOK); n != 1 {
		t.Errorf("%d gets observed, want 1 (the key's own server answered)", n)
	}
}

// TestMemcacheStandardMapping: a key set through the pool is on the server the
// PHP formula names, read directly with gomemcache.
func TestMemcacheStandardMapping(t *testing.T) {
	testenv.RequireServer(t, "memcached", testenv.MemcacheAddr)
	testenv.RequireServer(t, "memcached2", testenv.Memcache2Addr)
	addrs := []string{testenv.MemcacheAddr, testenv.Memcache2Addr}
	m, _ := newTestMemcache(t, mcConfig(t, "standard", 1, addrs...), Limits{})
	for i := 0; i < 20; i++ {
		k := testKey(t, strconv.Itoa(i))
		if err := m.Set("p", k, []byte("x"), 7, 60); err != nil {
			t.Fatal(err)
		}
		own := addrs[mcStandardIndex(k, 2)]
		if s, _ := m.ServerOf("p", k); s != own {
			t.Fatalf("ServerOf %q = %s, want %s", k, s, own)
		}
		if it, err := memcache.New(own).Get(k); err != nil || it.Flags != 7 {
			t.Fatalf("%q on %s: %v", k, own, err)
		}
		if _, err := memcache.New(addrs[1-mcStandardIndex(k, 2)]).Get(k); err != memcache.ErrCacheMiss {
			t.Fatalf("%q is on the other server too: %v", k, err)
		}
	}
}
