package pool

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

func TestRedisBlockTimeoutParsing(t *testing.T) {
	io := 4 * time.Second
	for _, c := range []struct {
		cmd  string
		args []any
		want time.Duration
		kind Kind
		msg  string
	}{
		{"GET", []any{"k"}, 0, KindOK, ""},
		{"BLPOP", []any{"a", "b", "1.5"}, 1500 * time.Millisecond, KindOK, ""},
		{"BRPOP", []any{"a", 4}, 4 * time.Second, KindOK, ""},
		{"BLPOP", []any{"a", "0"}, 0, KindRefused, "BLPOP timeout 0 (forever) is longer than io_timeout 4s"},
		{"BLPOP", []any{"a", "0.0009"}, 0, KindRefused, "(forever)"}, // Redis truncates to ms: 0 = forever
		{"BZPOPMIN", []any{"z", "4.001"}, 0, KindRefused, "BZPOPMIN timeout 4.001s is longer than io_timeout 4s"},
		{"BZPOPMAX", []any{"z", "1e300"}, 0, KindRefused, "is longer than io_timeout"},
		{"BLPOP", []any{"a", "-1"}, 0, KindBadArgument, `BLPOP timeout "-1": want a non-negative number of seconds`},
		{"BLPOP", []any{"a", "NaN"}, 0, KindBadArgument, "non-negative number"},
		{"BLPOP", []any{"a"}, 0, KindOK, ""}, // Redis refuses the arity at once
		{"BRPOPLPUSH", []any{"s", "d", "2"}, 2 * time.Second, KindOK, ""},
		{"BLMOVE", []any{"s", "d", "LEFT", "RIGHT", "0"}, 0, KindRefused, "BLMOVE timeout 0 (forever)"},
		{"BLMPOP", []any{"0.25", "1", "k", "LEFT"}, 250 * time.Millisecond, KindOK, ""},
		{"BZMPOP", []any{"9", "1", "k", "MIN", "COUNT", "2"}, 0, KindRefused, "BZMPOP timeout 9s"},
		{"XREAD", []any{"COUNT", "1", "STREAMS", "s", "$"}, 0, KindOK, ""},
		{"XREAD", []any{"STREAMS", "BLOCK", "0", "1", "2"}, 0, KindOK, ""}, // keys named BLOCK and 0
		{"XREAD", []any{"count", "1", "block", "0", "STREAMS", "s", "$"}, 0, KindRefused, "XREAD timeout 0 (forever)"},
		{"XREAD", []any{"BLOCK", "4000", "STREAMS", "s", "$"}, 4 * time.Second, KindOK, ""},
		{"XREAD", []any{"BLOCK", "1.5", "STREAMS", "s", "$"}, 0, KindBadArgument, "want a non-negative integer number of milliseconds"},
		{"XREADGROUP", []any{"GROUP", "g", "c", "BLOCK", "5000", "NOACK", "STREAMS", "s", ">"}, 0, KindRefused, "XREADGROUP timeout 5s is longer"},
		{"XREADGROUP", []any{"GROUP", "BLOCK", "c", "COUNT", "BLOCK", "STREAMS", "s", ">"}, 0, KindOK, ""}, // a group named BLOCK, a bad count
		{"XREADGROUP", []any{"GROUP", "g", "BLOCK", "NOACK", "BLOCK", "10", "STREAMS", "s", ">"}, 10 * time.Millisecond, KindOK, ""},
		{"WAIT", []any{"1", "0"}, 0, KindRefused, "WAIT timeout 0 (forever)"},
		{"WAIT", []any{"1", "100"}, 100 * time.Millisecond, KindOK, ""},
		{"WAITAOF", []any{"1", "0", "99999999999999999999"}, 0, KindRefused, "WAITAOF timeout"},
		{"WAITAOF", []any{"1", "0", "250"}, 250 * time.Millisecond, KindOK, ""},
	} {
		d, kind, err := rdBlockTimeout(c.cmd, c.args, io)
		if d != c.want || kind != c.kind || (err == nil) != (c.msg == "") || err != nil && !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s %v: %s, %v, %v; want %s, %v, %q", c.cmd, c.args, d, kind, err, c.want, c.kind, c.msg)
		}
	}
}

// TestRedisBlockingCalls: BLPOP 0 is refused at once; accepted BLPOPs that
// wait out their own timeout answer nil and never open the breaker (allowance 1).
func TestRedisBlockingCalls(t *testing.T) {
	testenv.RequireServer(t, "redis", testenv.RedisAddr)
	cfg := rdConfig(t, testenv.RedisAddr)
	cfg.IOTimeout = time.Second
	cfg.Breaker.FailureAllowance = 1
	r, c := newTestRedis(t, cfg, Limits{})
	k := testKey(t, "list")
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			start := time.Now()
			_, err := r.Do(bg, "p", "BLPOP", k, "0")
			wantKind(t, "BLPOP 0", err, KindRefused, "BLPOP timeout 0 (forever) is longer than io_timeout 1s")
			if d := time.Since(start); d > 100*time.Millisecond {
				t.Errorf("refusal took %s", d)
			}
		})
	}
	wg.Wait()
	for range 4 { // their own timeout equal to io_timeout: the read allows both
		wg.Go(func() {
			start := time.Now()
			v, err := r.Do(bg, "p", "BLPOP", k, "1")
			if d := time.Since(start); v != nil || err != nil || d < time.Second {
				t.Errorf("BLPOP 1 = %v, %v after %s; want nil after 1s", v, err, d)
			}
		})
	}
	wg.Go(func() {
		if v, err := r.Do(bg, "p", "XREAD", "BLOCK", "100", "STREAMS", k+".stream", "$"); v != nil || err != nil {
			t.Errorf("XREAD BLOCK 100 = %v, %v", v, err)
		}
	})
	wg.Go(func() {
		if v, err := r.Do(bg, "p", "WAIT", "1", "100"); v != int64(0) || err != nil {
			t.Errorf("WAIT 1 100 = %v, %v", v, err)
		}
	})
	wg.Wait()
	if _, err := r.Do(bg, "p", "GET", k); err != nil {
		t.Errorf("GET after the BLPOPs: %v", err)
	}
	if count(c, testenv.RedisAddr, "BLPOP", KindMiss) != 4 || c.Sum("redis", KindTimeout)+c.Sum("redis", KindBreakerOpen) != 0 {
		t.Errorf("observed %d BLPOP nil replies (want 4), %d timeouts, %d breaker refusals", count(c, testenv.RedisAddr, "BLPOP", KindMiss),
			c.Sum("redis", KindTimeout), c.Sum("redis", KindBreakerOpen))
	}
}

// TestRedisReplyScan: the reply scanner, fed every reply in chunks of every
// size, fails exactly when the reply passes the limit.
func TestRedisReplyScan(t *testing.T) {
	for _, reply := range []string{
		"+OK\r\n", "$-1\r\n", ":-12\r\n", "-ERR no\r\n", "$5\r\nab\r\nc\r\n", "*-1\r\n", "*0\r\n",
		"*3\r\n$1\r\na\r\n*2\r\n:1\r\n$-1\r\n+x\r\n", "$20\r\n" + strings.Repeat("9", 20) + "\r\n",
	} {
		for _, limit := range []int{len(reply), len(reply) - 1} {
			for chunk := 1; chunk <= len(reply); chunk++ {
				c := newRdNetConn(nil, limit)
				var err error
				for i := 0; i < len(reply) && err == nil; i += chunk {
					err = c.scan([]byte(reply[i:min(i+chunk, len(reply))]))
				}
				if (err == nil) != (limit == len(reply)) {
					t.Errorf("%q with limit %d in chunks of %d: %v", reply, limit, chunk, err)
				}
			}
		}
	}
	// A header announcing more than the limit fails before its body comes.
	c := newRdNetConn(nil, 100)
	if err := c.scan([]byte("$1000\r\n")); err == nil || err.Error() != "reply exceeds max_reply_bytes (100 bytes): at least 1009 bytes" {
		t.Errorf("bulk header: %v", err)
	}
	c = newRdNetConn(nil, 100)
	if err := c.scan([]byte("*40\r\n")); err == nil {
		t.Errorf("array header of 40 elements under a limit of 100 bytes: no error")
	}
	c = newRdNetConn(nil, 100)
	if err := c.scan([]byte("$99999999999999999999999999\r\n")); err == nil {
		t.Errorf("a huge bulk header: no error")
	}
}

// TestRedisMaxReplyBytes: replies over max_reply_bytes (1 MiB here) fail with
// KindTooLarge, their connection closed, without being held; a reply of
// exactly the limit passes, and the pool keeps working.
func TestRedisMaxReplyBytes(t *testing.T) {
	srv := testenv.StartRedis(t)
	const limit = 1 << 20
	cfg := rdConfig(t, srv.Addr())
	cfg.Breaker.FailureAllowance = 1
	r, c := newTestRedis(t, cfg, Limits{MaxReplyBytes: limit})
	s := r.pools["p"].servers[srv.Addr()]
	direct := rdDirect(t, srv.Addr())
	n := limit - len("$1048564\r\n") - 2 // a bulk reply of exactly limit bytes
	direct.Do("SET", "exact", strings.Repeat("e", n))
	direct.Do("SET", "over", strings.Repeat("o", n+1))
	direct.Do("SET", "huge", strings.Repeat("h", 32<<20))
	items := make([]any, 0, 150_001)
	items = append(items, "list")
	for range 150_000 { // 150000 × "$6\r\nabcdef\r\n" = 1.8 MB, its header only 450 kB by the minimum
		items = append(items, "abcdef")
	}
	direct.Do("RPUSH", items...)

	if v, err := r.Do(bg, "p", "GET", "exact"); err != nil || len(v.([]byte)) != n {
		t.Fatalf("GET of a reply of exactly max_reply_bytes: %v", err)
	}
	for _, args := range [][]any{{"GET", "over"}, {"GET", "huge"}, {"LRANGE", "list", 0, -1}} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := r.Do(bg, "p", args[0].(string), args[1:]...)
		runtime.ReadMemStats(&after)
		wantKind(t, args[0].(string)+" "+args[1].(string), err, KindTooLarge,
			"server "+srv.Addr()+": too large: reply exceeds max_reply_bytes (1048576 bytes): at least ")
		if a := after.TotalAlloc - before.TotalAlloc; a > 8<<20 {
			t.Errorf("%v: %d bytes allocated for a reply refused at 1 MiB", args, a)
		}
		if st := s.pool.Stats(); st.ActiveCount != 0 {
			t.Errorf("%v: %d connections left open, want the one used closed", args, st.ActiveCount)
		}
		if v, err := r.Do(bg, "p", "GET", "exact"); err != nil || len(v.([]byte)) != n {
			t.Fatalf("GET after a reply too large: %v", err)
		}
	}
	if count(c, srv.Addr(), "GET", KindTooLarge) != 2 || count(c, srv.Addr(), "LRANGE", KindTooLarge) != 1 || s.breaker.State() != "closed" {
		t.Errorf("observed %d GET and %d LRANGE too large, breaker %s", count(c, srv.Addr(), "GET", KindTooLarge),
			count(c, srv.Addr(), "LRANGE", KindTooLarge), s.breaker.State())
	}
}

// TestRedisCancel: a caller giving up stops its command at once — the server
// sees the connection close — with KindCanceled, uncounted by the breaker;
// a ctx deadline does the same, and a ctx already ended asks nothing.
func TestRedisCancel(t *testing.T) {
	srv := testenv.StartRedis(t)
	cfg := rdConfig(t, srv.Addr())
	cfg.Breaker.FailureAllowance = 1
	r, c := newTestRedis(t, cfg, Limits{})
	s := r.pools["p"].servers[srv.Addr()]

	ctx, cancel := context.WithCancel(bg)
	done := make(chan error, 1)
	go func() { _, err := r.Do(ctx, "p", "BLPOP", "list", "3"); done <- err }()
	testenv.Eventually(t, 5*time.Second, "the BLPOP to block on the server", func() bool { return testenv.RedisInfo(t, srv.Addr(), "blocked_clients") == 1 })
	cancel()
	canceled := time.Now()
	err := <-done
	wantKind(t, "BLPOP canceled", err, KindCanceled, `redis BLPOP "list": pool "p", server `+srv.Addr()+": canceled: context canceled")
	if d := time.Since(canceled); d > 200*time.Millisecond {
		t.Errorf("the canceled BLPOP returned %s after cancel", d)
	}
	testenv.Eventually(t, 5*time.Second, "the server to see the connection closed", func() bool { return testenv.RedisInfo(t, srv.Addr(), "blocked_clients") == 0 })
	if st := s.pool.Stats(); st.ActiveCount != 0 {
		t.Errorf("%d connections left after a canceled call, want it closed", st.ActiveCount)
	}

	dctx, dcancel := context.WithTimeout(bg, 200*time.Millisecond)
	defer dcancel()
	start := time.Now()
	_, err = r.Do(dctx, "p", "BLPOP", "list", "3")
	wantKind(t, "BLPOP past the caller's deadline", err, KindCanceled, "canceled: context deadline exceeded")
	// The socket's read deadline is set from the ctx's wall-clock deadline: a
	// clock step can end it a few ms early, hence the 190ms floor.
	if d := time.Since(start); d < 190*time.Millisecond || d > time.Second || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("BLPOP past a 200ms deadline: %v after %s", err, d)
	}

	_, err = r.Do(ctx, "p", "GET", "k") // ctx is already canceled
	wantKind(t, "GET with a canceled ctx", err, KindCanceled)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("GET with a canceled ctx: %v", err)
	}
	if _, err := r.Do(bg, "p", "GET", "k"); err != nil {
		t.Fatalf("GET after canceled calls: %v", err)
	}
	if count(c, srv.Addr(), "BLPOP", KindCanceled) != 2 || count(c, srv.Addr(), "GET", KindCanceled) != 1 ||
		s.breaker.Checks.Load() != 0 || s.breaker.State() != "closed" {
		t.Errorf("observed %d BLPOP and %d GET canceled, %d health checks, breaker %s",
			count(c, srv.Addr(), "BLPOP", KindCanceled), count(c, srv.Addr(), "GET", KindCanceled), s.breaker.Checks.Load(), s.breaker.State())
	}
}

// TestRedisOpNames: metric labels stay bounded whatever command names clients send.
func TestRedisOpNames(t *testing.T) {
	for cmd, want := range map[string]string{"GET": "GET", "XREADGROUP": "XREADGROUP", "WAITAOF": "WAITAOF",
		"HEXPIRE": "HEXPIRE", "NOSUCH": "OTHER", "": "OTHER", "GET\x00": "OTHER"} {
		if got := rdOpName(cmd); got != want {
			t.Errorf("rdOpName(%q) = %q, want %q", cmd, got, want)
		}
	}
	if n := len(rdCommands); n != 250 {
		t.Errorf("%d command names, want 240 (Redis 7.0) + 10", n)
	}
}
