package main_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/testenv"
)

// The memcache servant through a running faed, against real memcached servers:
// the shared pair for the methods and the key mapping, servers of the test's
// own for replicas and a restart.

func mcData(s string, flags int32) *rpc.TMemcacheData {
	return &rpc.TMemcacheData{Data: []byte(s), Flags: flags}
}

// TestMemcacheMethods: every mc_* method and its errors, on a pool of the
// shared pair.
func TestMemcacheMethods(t *testing.T) {
	testenv.RequireServer(t, "memcached", testenv.MemcacheAddr)
	testenv.RequireServer(t, "memcached2", testenv.Memcache2Addr)
	_, c := startFaedSession(t, mcSection("standard", 1, "", mcSrv{"default", testenv.MemcacheAddr}, mcSrv{"default", testenv.Memcache2Addr}))
	k := kvKey(t, "k")

	if ok, err := c.McSet(bg, ctx(), "default", k, mcData("v\x00\xff", -2), 60); !ok || err != nil {
		t.Fatalf("mc_set = %v, %v", ok, err)
	}
	v, err := c.McGet(bg, ctx(), "default", k)
	if err != nil || string(v.Data) != "v\x00\xff" || v.Flags != -2 {
		t.Fatalf("mc_get = %+v, %v; want the bytes and flags 0xfffffffe as set", v, err)
	}
	if ok, err := c.McAdd(bg, ctx(), "default", k, mcData("w", 0), 60); ok || err != nil {
		t.Errorf("mc_add of an existing key = %v, %v; want false, no error", ok, err)
	}
	if ok, err := c.McDelete(bg, ctx(), "default", k); !ok || err != nil {
		t.Errorf("mc_delete = %v, %v", ok, err)
	}
	if ok, err := c.McDelete(bg, ctx(), "default", k); ok || err != nil {
		t.Errorf("mc_delete of a missing key = %v, %v; want false, no error", ok, err)
	}
	_, err = c.McGet(bg, ctx(), "default", k)
	var miss *rpc.TCacheMissed
	if !errors.As(err, &miss) || miss.GetMessage() != "memcache: cache miss: "+k {
		t.Errorf("mc_get of a missing key: %v; want TCacheMissed", err)
	}
	testMemcacheIncrement(t, c, k)
	testMemcacheExpiration(t, c)
	testMemcacheMistakes(t, c)
}

// testMemcacheIncrement: incr, decr clamped at 0, and the errors of a missing
// key and of a non-numeric value.
func testMemcacheIncrement(t *testing.T, c *client, k string) {
	_, err := c.McIncrement(bg, ctx(), "default", k, 1)
	wantErr(t, "mc_increment of a missing key", err, `memcache incr ".*": pool "default", server 127.0.0.1:\d+: miss: cache miss$`)
	if ok, err := c.McAdd(bg, ctx(), "default", k, mcData("10", 0), 60); !ok || err != nil {
		t.Fatalf("mc_add of a missing key = %v, %v", ok, err)
	}
	for _, s := range []struct{ delta, want int64 }{{5, 15}, {0, 15}, {-4, 11}, {-1000, 0}, {7, 7}} {
		if n, err := c.McIncrement(bg, ctx(), "default", k, s.delta); n != s.want || err != nil {
			t.Errorf("mc_increment by %d = %d, %v; want %d", s.delta, n, err, s.want)
		}
	}
	c.McSet(bg, ctx(), "default", k, mcData("seven", 0), 60)
	_, err = c.McIncrement(bg, ctx(), "default", k, 1)
	wantErr(t, "mc_increment of a non-numeric value", err, `memcache incr ".*": pool "default", server .*: refused: value is not a decimal number: client error: cannot increment or decrement non-numeric value`)
}

// testMemcacheExpiration: seconds up to 30 days are relative, beyond that a Unix time.
func testMemcacheExpiration(t *testing.T, c *client) {
	now := int32(time.Now().Unix())
	for _, e := range []struct {
		exp  int32
		live bool
	}{{30 * 24 * 3600, true}, {now + 3600, true}, {now - 60, false}} {
		k := kvKey(t, fmt.Sprint("exp", e.exp))
		if ok, err := c.McSet(bg, ctx(), "default", k, mcData("x", 0), e.exp); !ok || err != nil {
			t.Fatalf("mc_set expiration %d = %v, %v", e.exp, ok, err)
		}
		_, err := c.McGet(bg, ctx(), "default", k)
		if live := err == nil; live != e.live {
			t.Errorf("expiration %d (now %d): alive = %v (%v), want %v", e.exp, now, live, err, e.live)
		}
	}
}

// testMemcacheMistakes: the caller's mistakes, each with its own message.
func testMemcacheMistakes(t *testing.T, c *client) {
	long := strings.Repeat("k", 251)
	for what, call := range map[string]func() error{
		`memcache get "kvtest:a b": pool "default": bad argument: invalid key: control or space byte 0x20 at offset 8`: func() error {
			_, err := c.McGet(bg, ctx(), "default", "kvtest:a b")
			return err
		},
		`memcache set "kkk.*": pool "default": bad argument: invalid key: 251 bytes, at most 250 allowed`: func() error {
			_, err := c.McSet(bg, ctx(), "default", long, mcData("x", 0), 0)
			return err
		},
		`memcache add: pool "default": bad argument: invalid key: empty`: func() error {
			_, err := c.McAdd(bg, ctx(), "default", "", mcData("x", 0), 0)
			return err
		},
		`memcache delete "k": pool "nopool": unknown pool: not in servants.memcache.servers`: func() error {
			_, err := c.McDelete(bg, ctx(), "nopool", "k")
			return err
		},
		`memcache decr "k": pool "nopool": unknown pool`: func() error {
			_, err := c.McIncrement(bg, ctx(), "nopool", "k", -1)
			return err
		},
	} {
		wantErr(t, what, call(), regexpQuoteExceptDotStar(what))
	}
}

// regexpQuoteExceptDotStar quotes s for a regexp, keeping its ".*" wildcards.
func regexpQuoteExceptDotStar(s string) string {
	parts := strings.Split(s, ".*")
	for i, p := range parts {
		parts[i] = regexpQuote(p)
	}
	return strings.Join(parts, ".*")
}

func regexpQuote(s string) string {
	const special = `\.+*?()|[]{}^$`
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(special, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// TestMemcacheStandardMapping: keys set through faed are on the server PHP's
// formula names (read directly with gomemcache), and only there.
func TestMemcacheStandardMapping(t *testing.T) {
	testenv.RequireServer(t, "memcached", testenv.MemcacheAddr)
	testenv.RequireServer(t, "memcached2", testenv.Memcache2Addr)
	addrs := []string{testenv.MemcacheAddr, testenv.Memcache2Addr}
	_, c := startFaedSession(t, mcSection("standard", 1, "", mcSrv{"default", addrs[0]}, mcSrv{"default", addrs[1]}))
	direct := []*memcache.Client{memcache.New(addrs[0]), memcache.New(addrs[1])}
	on := [2]int{}
	for i := 0; i < 40; i++ {
		k := kvKey(t, fmt.Sprint(i))
		if ok, err := c.McSet(bg, ctx(), "default", k, mcData("x", 5), 60); !ok || err != nil {
			t.Fatalf("mc_set = %v, %v", ok, err)
		}
		own := phpStandardIndex(k, 2)
		on[own]++
		if it, err := direct[own].Get(k); err != nil || it.Flags != 5 {
			t.Errorf("%q is not on %s, the server PHP names: %v", k, addrs[own], err)
		}
		if _, err := direct[1-own].Get(k); err != memcache.ErrCacheMiss {
			t.Errorf("%q is also on %s: %v", k, addrs[1-own], err)
		}
	}
	if on[0] == 0 || on[1] == 0 {
		t.Errorf("40 keys all on one server: %v", on)
	}
}

// TestMemcachePoolIsolation: two pools on different servers. A key set in one
// pool is not visible from the other, and a pool hashes only over its own
// servers: every key of pool a is on a's server, whatever its hash.
func TestMemcachePoolIsolation(t *testing.T) {
	testenv.RequireServer(t, "memcached", testenv.MemcacheAddr)
	testenv.RequireServer(t, "memcached2", testenv.Memcache2Addr)
	_, c := startFaedSession(t, mcSection("consistent", 2, "", mcSrv{"a", testenv.MemcacheAddr}, mcSrv{"b", testenv.Memcache2Addr}))
	onA := memcache.New(testenv.MemcacheAddr)
	for i := 0; i < 10; i++ {
		k := kvKey(t, fmt.Sprint(i))
		if ok, err := c.McSet(bg, ctx(), "a", k, mcData("in a", 0), 60); !ok || err != nil {
			t.Fatalf("mc_set in a = %v, %v", ok, err)
		}
		var miss *rpc.TCacheMissed
		if _, err := c.McGet(bg, ctx(), "b", k); !errors.As(err, &miss) {
			t.Errorf("%q set in pool a, mc_get from pool b: %v; want a miss", k, err)
		}
		if it, err := onA.Get(k); err != nil || string(it.Value) != "in a" {
			t.Errorf("%q set in pool a is not on a's only server: %v", k, err)
		}
		if v, err := c.McGet(bg, ctx(), "a", k); err != nil || string(v.Data) != "in a" {
			t.Errorf("mc_get from a = %v, %v", v, err)
		}
	}
}

// TestMemcacheReplicas: with replica_num 2, a key is on both servers of its
// pool, and with one server stopped every read is still answered and writes go on.
func TestMemcacheReplicas(t *testing.T) {
	a, b := testenv.StartMemcached(t), testenv.StartMemcached(t)
	_, c := startFaedSession(t, mcSection("standard", 2, `timeout: "500ms"`, mcSrv{"p", a.Addr()}, mcSrv{"p", b.Addr()}))
	var keys []string
	for i := 0; i < 20; i++ {
		k := kvKey(t, fmt.Sprint(i))
		keys = append(keys, k)
		if ok, err := c.McSet(bg, ctx(), "p", k, mcData(k, 3), 600); !ok || err != nil {
			t.Fatalf("mc_set = %v, %v", ok, err)
		}
		for _, s := range []*testenv.Server{a, b} {
			if it, err := memcache.New(s.Addr()).Get(k); err != nil || string(it.Value) != k || it.Flags != 3 {
				t.Fatalf("%q is not on %s: %v", k, s.Addr(), err)
			}
		}
	}
	a.Stop()
	for round := 0; round < 3; round++ { // past the breaker opening for a
		for _, k := range keys {
			if v, err := c.McGet(bg, ctx(), "p", k); err != nil || string(v.Data) != k || v.Flags != 3 {
				t.Fatalf("round %d, with %s stopped: mc_get %q = %v, %v", round, a.Addr(), k, v, err)
			}
		}
	}
	k := kvKey(t, "while-down")
	if ok, err := c.McSet(bg, ctx(), "p", k, mcData("w", 0), 60); !ok || err != nil {
		t.Fatalf("mc_set with one replica down = %v, %v", ok, err)
	}
	if v, err := c.McGet(bg, ctx(), "p", k); err != nil || string(v.Data) != "w" {
		t.Fatalf("mc_get of a key written while a replica was down = %v, %v", v, err)
	}
}

// TestMemcacheServerRestart: a server of the test's own is stopped while 16
// sessions call mc_set and mc_get, then started again on the same port.
func TestMemcacheServerRestart(t *testing.T) {
	srv := testenv.StartMemcached(t)
	retry := time.Second
	f, _ := startFaedSession(t, mcSection("standard", 1,
		`timeout: "500ms", breaker: { failure_allowance: 3, retry_interval: "1s" }`, mcSrv{"p", srv.Addr()}))
	prefix := kvKey(t, "w")
	errRE := `^Internal error processing mc_(set|get): memcache (set|get) "kvtest:.*": pool "p", server ` +
		regexpQuote(srv.Addr()) + `: (circuit open|server failure: .*(connection refused|EOF|reset by peer|broken pipe).*)$`
	restartUnderLoad(t, f, srv, retry, errRE, func(c *client, w, i int) error {
		k := fmt.Sprintf("%s.%d", prefix, w)
		if i%2 == 0 {
			_, err := c.McSet(bg, ctx(), "p", k, mcData("v", 0), 60)
			return err
		}
		_, err := c.McGet(bg, ctx(), "p", k)
		return err
	})
}

// TestMemcacheQuickRestart: a server restarted between two calls resets every
// pooled connection. The first call finds that out; faed then drops the other
// idle connections of that server instead of failing once per connection, so
// the breaker (failure_allowance 3, fewer than the idle connections, as
// checked on the server before the restart) stays closed and the server is
// used again at once.
func TestMemcacheQuickRestart(t *testing.T) {
	srv := testenv.StartMemcached(t)
	const allowance = 3
	f, c := startFaedSession(t, mcSection("standard", 1, fmt.Sprintf(`max_idle_conns_per_server: 16
            breaker: { failure_allowance: %d, retry_interval: "1m" }`, allowance), mcSrv{"p", srv.Addr()}))
	sessions := make([]*client, 16)
	for i := range sessions {
		sessions[i] = f.dial(t, allModes[0])
	}
	l := startLoad(sessions, func(c *client, w, i int) error {
		_, err := c.McSet(bg, ctx(), "p", kvKey(t, "warm"), mcData("v", 0), 60)
		return err
	})
	testenv.Eventually(t, 10*time.Second, fmt.Sprintf("more than %d connections from faed to %s", allowance, srv.Addr()),
		func() bool { return testenv.MemcachedClients(t, srv.Addr()) > allowance })
	l.halt()
	if s := l.reset(); s.failed > 0 {
		t.Fatalf("warm-up: %d failures %v", s.failed, s.errs)
	}
	idle := testenv.MemcachedClients(t, srv.Addr())
	if idle <= allowance {
		t.Fatalf("%d idle connections from faed before the restart, want more than failure_allowance (%d)", idle, allowance)
	}
	t.Logf("%d idle connections from faed before the restart", idle)
	srv.Stop()
	srv.Start()
	failed := 0
	for i := 0; i < 20; i++ {
		if _, err := c.McSet(bg, ctx(), "p", kvKey(t, "x"), mcData("v", 0), 60); err != nil {
			failed++
			t.Logf("call %d after the restart: %v", i, err)
		}
	}
	if failed > 1 {
		t.Errorf("%d of 20 calls failed after a restart; want at most the first", failed)
	}
}
