package main_test

import (
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/fae-go/fae/internal/testenv"
)

// The Redis servant through a running faed, against real Redis servers: the
// shared pair, and a server of the test's own for a restart.

// rdWant calls rd_call and checks its reply.
func rdWant(t *testing.T, c *client, pool, cmd string, args []string, want string) {
	t.Helper()
	got, err := c.RdCall(bg, ctx(), cmd, pool, args)
	if err != nil || got != want {
		t.Errorf("rd_call %s %q = %q, %v; want %q", cmd, args, got, err, want)
	}
}

// rdWantErr calls rd_call and checks that it fails with a message matching re.
func rdWantErr(t *testing.T, c *client, pool, cmd string, args []string, re string) {
	t.Helper()
	_, err := c.RdCall(bg, ctx(), cmd, pool, args)
	wantErr(t, "rd_call "+cmd, err, re)
}

// TestRedisCall: replies of every type, as strings; error replies, which do not
// trip the breaker (failure_allowance 1 here).
func TestRedisCall(t *testing.T) {
	testenv.RequireServer(t, "redis", testenv.RedisAddr)
	testenv.RequireServer(t, "redis2", testenv.Redis2Addr)
	_, c := startFaedSession(t, rdSection(`breaker: { failure_allowance: 1, retry_interval: "1m" }`,
		rdPool{"default", []string{testenv.RedisAddr, testenv.Redis2Addr}}))
	k, n, l, h, x := kvKey(t, "k"), kvKey(t, "n"), kvKey(t, "list"), kvKey(t, "hash"), kvKey(t, "stream")
	for _, key := range []string{k, n, l, h, x} {
		defer c.RdCall(bg, ctx(), "DEL", "default", []string{key})
	}
	rdWant(t, c, "default", "SET", []string{k, "v <&> \x00é", "EX", "60"}, "OK") // status
	rdWant(t, c, "default", "GET", []string{k}, "v <&> \x00é")                   // bulk
	rdWant(t, c, "default", "type", []string{k}, "string")
	rdWant(t, c, "default", "INCRBY", []string{n, "-42"}, "-42") // integer
	rdWant(t, c, "default", "HGET", []string{h, "nofield"}, "")  // nil
	rdWant(t, c, "default", "RPUSH", []string{l, "a", "", "<b>", "\"q\""}, "4")
	rdWant(t, c, "default", "LRANGE", []string{l, "0", "-1"}, `["a","","<b>","\"q\""]`)
	rdWant(t, c, "default", "LRANGE", []string{n + ".none", "0", "-1"}, `[]`)
	rdWant(t, c, "default", "HSET", []string{h, "f", "1"}, "1")
	rdWant(t, c, "default", "HGETALL", []string{h}, `["f","1"]`)
	// nested arrays: a stream entry is [id, [field, value, …]]
	id, err := c.RdCall(bg, ctx(), "XADD", "default", []string{x, "*", "f1", "v1", "f2", "v2"})
	if err != nil {
		t.Fatal(err)
	}
	rdWant(t, c, "default", "XRANGE", []string{x, "-", "+"}, `[["`+id+`",["f1","v1","f2","v2"]]]`)
	// integers and nils inside nested arrays (Lua false is a nil reply)
	rdWant(t, c, "default", "EVAL", []string{"return {1, 'a', {2, 'b', false}, false}", "0"}, `["1","a",["2","b",""],""]`)

	rdWantErr(t, c, "default", "GET", []string{k + ".missing"}, `^Internal error processing rd_call: redis GET ".*\.missing": pool "default": key not exists$`)
	rdWantErr(t, c, "default", "get", []string{k + ".missing"}, `key not exists`)
	rdWantErr(t, c, "default", "INCR", []string{k}, `redis INCR ".*": pool "default", server 127\.0\.0\.1:\d+: refused: error reply: ERR value is not an integer or out of range$`)
	rdWantErr(t, c, "default", "GET", []string{l}, `refused: error reply: WRONGTYPE Operation against a key holding the wrong kind of value$`)
	rdWantErr(t, c, "default", "NOSUCHCMD", []string{k}, `refused: error reply: ERR unknown command 'NOSUCHCMD'`)
	rdWant(t, c, "default", "GET", []string{k}, "v <&> \x00é") // the breaker is still closed
	testRedisRefusals(t, c)
}

// testRedisRefusals: calls refused before any server is asked.
func testRedisRefusals(t *testing.T, c *client) {
	for cmd, re := range map[string]string{
		"FLUSHALL": `redis FLUSHALL "x": pool "default": refused: command denied: FLUSHALL is in servants\.redis\.deny_commands$`,
		"flushdb":  `redis FLUSHDB "x": pool "default": refused: command denied: FLUSHDB is in`,
		"Keys":     `redis KEYS "x": pool "default": refused: command denied: KEYS is in`,
		"config":   `command denied: CONFIG is in`,
		"SHUTDOWN": `command denied: SHUTDOWN is in`,
	} {
		rdWantErr(t, c, "default", cmd, []string{"x"}, re)
	}
	rdWantErr(t, c, "default", "GET", nil, `^Internal error processing rd_call: redis GET: pool "default": bad argument: no key: the first argument picks the server$`)
	rdWantErr(t, c, "default", "", []string{"x"}, `: redis "x": pool "default": bad argument: empty command$`)
	rdWantErr(t, c, "nopool", "GET", []string{"x"}, `redis GET "x": pool "nopool": unknown pool: not in servants\.redis\.pools$`)
}

// TestRedisRingAndPools: a key set through faed is on the server the original
// ring names (read directly with redigo), and pools are isolated.
func TestRedisRingAndPools(t *testing.T) {
	testenv.RequireServer(t, "redis", testenv.RedisAddr)
	testenv.RequireServer(t, "redis2", testenv.Redis2Addr)
	_, c := startFaedSession(t, rdSection("", rdPool{"both", []string{testenv.RedisAddr, testenv.Redis2Addr}},
		rdPool{"a", []string{testenv.RedisAddr}}, rdPool{"b", []string{testenv.Redis2Addr}}))
	direct := map[string]redis.Conn{}
	for _, a := range []string{testenv.RedisAddr, testenv.Redis2Addr} {
		conn, err := redis.Dial("tcp", a)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		direct[a] = conn
	}
	on := map[string]int{}
	for i := 0; i < 30; i++ {
		k := kvKey(t, "ring")
		rdWant(t, c, "both", "SET", []string{k, "x", "EX", "60"}, "OK")
		own := testenv.OriginalRedisRing([]string{testenv.RedisAddr, testenv.Redis2Addr}, k)
		on[own]++
		for a, conn := range direct {
			if n, _ := redis.Int(conn.Do("EXISTS", k)); (n == 1) != (a == own) {
				t.Errorf("%q: EXISTS on %s = %d; the original's ring puts it on %s", k, a, n, own)
			}
		}
	}
	if len(on) != 2 {
		t.Errorf("30 keys all on one server: %v", on)
	}
	k := kvKey(t, "iso")
	rdWant(t, c, "a", "SET", []string{k, "in a", "EX", "60"}, "OK")
	rdWant(t, c, "a", "GET", []string{k}, "in a")
	rdWantErr(t, c, "b", "GET", []string{k}, `pool "b": key not exists`)
}

// TestRedisExhaustion: with max_active 1 held by a real BLPOP (on a server of
// the test's own, so that its blocked_clients counts only this one), another
// call waits borrow_timeout and fails with its own error; the breaker
// (failure_allowance 1) does not count it.
func TestRedisExhaustion(t *testing.T) {
	srv := testenv.StartRedis(t)
	f, c := startFaedSession(t, `redis: {
            pools: [ { name: "p", servers: [ { addr: "`+srv.Addr()+`", max_idle: 1, max_active: 1 } ] } ]
            borrow_timeout: "300ms"
            breaker: { failure_allowance: 1, retry_interval: "1m" }
        }`)
	blocker := f.dial(t, allModes[0])
	k := kvKey(t, "list")
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := blocker.RdCall(bg, ctx(), "BLPOP", "p", []string{k, "2"}); err != nil {
			t.Errorf("BLPOP: %v", err)
		}
	})
	testenv.Eventually(t, 5*time.Second, "the BLPOP to block on the server", func() bool { return testenv.RedisInfo(t, srv.Addr(), "blocked_clients") == 1 })
	start := time.Now()
	rdWantErr(t, c, "p", "SET", []string{k + ".x", "v"},
		`^Internal error processing rd_call: redis SET ".*": pool "p", server `+regexp.QuoteMeta(srv.Addr())+
			`: busy: all connections busy: max_active 1, none free within borrow_timeout 300ms$`)
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("the call gave up after %s, before borrow_timeout", d)
	}
	wg.Wait()
	rdWant(t, c, "p", "SET", []string{k + ".x", "v", "EX", "60"}, "OK")
}

// TestRedisServerRestart: a server of the test's own is stopped while 16
// sessions call rd_call SET and GET, then started again on the same port.
func TestRedisServerRestart(t *testing.T) {
	srv := testenv.StartRedis(t)
	retry := time.Second
	f, _ := startFaedSession(t, rdSection(`connect_timeout: "500ms", io_timeout: "500ms"
            breaker: { failure_allowance: 3, retry_interval: "1s" }`, rdPool{"p", []string{srv.Addr()}}))
	prefix := kvKey(t, "w")
	errRE := `^Internal error processing rd_call: redis (SET|GET) "kvtest:.*": pool "p", server ` +
		regexp.QuoteMeta(srv.Addr()) + `: (circuit open|server failure: .*(connection refused|EOF|reset by peer|broken pipe).*)$`
	restartUnderLoad(t, f, srv, retry, errRE, func(c *client, w, i int) error {
		k := prefix + "." + string(rune('a'+w))
		if i%2 == 0 {
			_, err := c.RdCall(bg, ctx(), "SET", "p", []string{k, "v"})
			return err
		}
		_, err := c.RdCall(bg, ctx(), "GET", "p", []string{k})
		if err != nil && regexp.MustCompile(`key not exists$`).MatchString(err.Error()) {
			return nil // answered: the restarted server has no data
		}
		return err
	})
}

// TestRedisQuickRestart: a server restarted between two calls resets every
// pooled connection. The first call finds that out; faed then drops the other
// idle connections of that server instead of failing once per connection, so
// the breaker (failure_allowance 3, fewer than the 10 idle connections) stays
// closed and the server is used again at once.
func TestRedisQuickRestart(t *testing.T) {
	srv := testenv.StartRedis(t)
	f, c := startFaedSession(t, rdSection(`breaker: { failure_allowance: 3, retry_interval: "1m" }`, rdPool{"p", []string{srv.Addr()}}))
	k := kvKey(t, "list")
	var wg sync.WaitGroup
	for range 10 { // 10 connections at once, all idle afterwards
		s := f.dial(t, allModes[0])
		wg.Go(func() { s.RdCall(bg, ctx(), "BLPOP", "p", []string{k, "0.3"}) })
	}
	wg.Wait()
	srv.Stop()
	srv.Start()
	failed := 0
	for i := 0; i < 20; i++ {
		if _, err := c.RdCall(bg, ctx(), "SET", "p", []string{k + ".x", "v", "EX", "60"}); err != nil {
			failed++
			t.Logf("call %d after the restart: %v", i, err)
		}
	}
	if failed > 1 {
		t.Errorf("%d of 20 calls failed after a restart; want at most the first", failed)
	}
}
