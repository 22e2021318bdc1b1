package main_test

import (
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/fae-go/fae/internal/testenv"
)

// What one client cannot do to the others through rd_call, and a Redis that
// hangs: through a running faed, against real Redis servers.

// TestRedisFrozenServer: a Redis of the test's own frozen with SIGSTOP (the
// kernel still completes TCP handshakes; nothing answers). Calls fail after
// io_timeout, the breaker opens after failure_allowance of them and then
// refuses at once, and after SIGCONT calls succeed again within retry_interval.
func TestRedisFrozenServer(t *testing.T) {
	srv := testenv.StartRedis(t)
	_, c := startFaedSession(t, rdSection(`connect_timeout: "300ms", io_timeout: "500ms"
            breaker: { failure_allowance: 2, retry_interval: "1s" }`, rdPool{"p", []string{srv.Addr()}}))
	k := kvKey(t, "k")
	rdWant(t, c, "p", "SET", []string{k, "v"}, "OK")
	srv.Freeze()
	at := `^Internal error processing rd_call: redis GET ".*": pool "p", server ` + regexp.QuoteMeta(srv.Addr())
	for i := 0; i < 2; i++ {
		start := time.Now()
		rdWantErr(t, c, "p", "GET", []string{k}, at+`: timeout: no reply within io_timeout 500ms: .*i/o timeout$`)
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("call %d failed after %s, want about io_timeout (500ms) + a health check (at most 1s)", i, d)
		}
	}
	start := time.Now()
	rdWantErr(t, c, "p", "GET", []string{k}, at+`: circuit open$`)
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("refusal took %s, want it at once", d)
	}
	srv.Thaw()
	resumed := time.Now()
	testenv.Eventually(t, 5*time.Second, "rd_call GET to succeed after SIGCONT", func() bool {
		v, err := c.RdCall(bg, ctx(), "GET", "p", []string{k})
		return err == nil && v == "v"
	})
	if d := time.Since(resumed); d > 2500*time.Millisecond {
		t.Errorf("calls came back %s after SIGCONT, want within retry_interval (1s) and a little", d)
	}
}

// TestRdCallStateCommands: commands that change or end the connection's state
// are refused whatever deny_commands says ([] here). On a pool of one
// connection, one client's SELECT 3 is refused while another client's SETs go
// on, and they land in db 0; QUIT is refused and the connection keeps working.
func TestRdCallStateCommands(t *testing.T) {
	testenv.RequireServer(t, "redis", testenv.RedisAddr)
	f, c := startFaedSession(t, `redis: {
            pools: [ { name: "p", servers: [ { addr: "`+testenv.RedisAddr+`", max_idle: 1, max_active: 1 } ] } ]
            deny_commands: []
            breaker: { failure_allowance: 1, retry_interval: "1m" }
        }`)
	for _, cmd := range []string{"SELECT", "HELLO", "AUTH", "RESET", "QUIT", "CLIENT", "SUBSCRIBE", "PSUBSCRIBE",
		"SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE", "MONITOR", "MULTI", "EXEC", "WATCH", "UNWATCH",
		"DISCARD", "READONLY", "READWRITE"} {
		rdWantErr(t, c, "p", strings.ToLower(cmd), []string{"3"}, `^Internal error processing rd_call: redis `+cmd+
			` "3": pool "p": refused: `+cmd+` changes the state of the connection \(.+\), which the next caller of the pooled connection would inherit$`)
	}
	victim := kvKey(t, "victim")
	other := f.dial(t, allModes[0])
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 30 {
			rdWantErr(t, other, "p", "SELECT", []string{"3"}, `refused: SELECT changes the state of the connection \(switches it to another database\)`)
		}
	})
	wg.Go(func() {
		for range 30 {
			rdWant(t, c, "p", "SET", []string{victim, "x", "EX", "60"}, "OK")
		}
	})
	wg.Wait()
	direct, err := redis.Dial("tcp", testenv.RedisAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	if n, _ := redis.Int(direct.Do("EXISTS", victim)); n != 1 {
		t.Errorf("the SETs are not in db 0")
	}
	direct.Do("SELECT", 3)
	if n, _ := redis.Int(direct.Do("EXISTS", victim)); n != 0 {
		t.Errorf("a SET landed in db 3")
	}
	rdWantErr(t, c, "p", "QUIT", nil, `refused: QUIT changes the state of the connection \(closes it\)`)
	rdWant(t, c, "p", "GET", []string{victim}, "x") // the breaker (allowance 1) is closed, the connection alive
	rdWant(t, c, "p", "DEL", []string{victim}, "1")
}

// TestRdCallBlocking: a blocking command whose timeout is 0 (forever) or
// longer than io_timeout is refused at once; accepted ones answer nil at their
// own timeout, even several at once, and never open the breaker
// (failure_allowance 1).
func TestRdCallBlocking(t *testing.T) {
	testenv.RequireServer(t, "redis", testenv.RedisAddr)
	f, c := startFaedSession(t, rdSection(`io_timeout: "2s"
            breaker: { failure_allowance: 1, retry_interval: "1m" }`, rdPool{"p", []string{testenv.RedisAddr}}))
	k := kvKey(t, "list")
	sessions := []*client{c}
	for range 3 {
		sessions = append(sessions, f.dial(t, allModes[0]))
	}
	var wg sync.WaitGroup
	for _, s := range sessions {
		wg.Go(func() {
			start := time.Now()
			rdWantErr(t, s, "p", "BLPOP", []string{k, "0"},
				`^Internal error processing rd_call: redis BLPOP ".*": pool "p": refused: BLPOP timeout 0 \(forever\) is longer than io_timeout 2s$`)
			if d := time.Since(start); d > 500*time.Millisecond {
				t.Errorf("refusal took %s", d)
			}
		})
	}
	wg.Wait()
	rdWantErr(t, c, "p", "BRPOP", []string{k, "2.5"}, `refused: BRPOP timeout 2.5s is longer than io_timeout 2s$`)
	rdWantErr(t, c, "p", "XREAD", []string{"BLOCK", "0", "STREAMS", k + ".s", "$"}, `refused: XREAD timeout 0 \(forever\) is longer than io_timeout 2s$`)
	start := time.Now()
	rdWant(t, c, "p", "BLPOP", []string{k, "1"}, "")
	if d := time.Since(start); d < time.Second {
		t.Errorf("BLPOP 1 answered after %s", d)
	}
	for _, s := range sessions { // their own timeout equal to io_timeout
		wg.Go(func() { rdWant(t, s, "p", "BLPOP", []string{k, "2"}, "") })
	}
	wg.Wait()
	rdWantErr(t, c, "p", "GET", []string{k}, `pool "p": key not exists$`) // answered: the breaker is closed
	rdWant(t, c, "p", "RPUSH", []string{k, "a"}, "1")
	rdWant(t, c, "p", "BLPOP", []string{k, "1"}, `["`+k+`","a"]`)
}
