package main_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/fae-go/fae/internal/testenv"
)

// Hot reload through the faed binary: SIGHUP and the file watchdog, under
// load, a bad file, keys that need a restart.

// reloadConf is a faed.cf in mode m with top-level keys top, rpc keys
// rpcExtra and servants keys servantsExtra.
func reloadConf(m mode, dir, top, rpcExtra, servantsExtra string) string {
	return strings.Replace(m.config(dir, rpcExtra, servantsExtra), "{\n", "{\n    "+top+"\n", 1)
}

// rewriteConf replaces f's config file with conf atomically (write and
// rename), as the watchdog could otherwise read a half-written file.
func rewriteConf(t *testing.T, f *faed, conf string) {
	t.Helper()
	tmp := filepath.Join(f.dir, "faed.cf.new")
	if err := os.WriteFile(tmp, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(f.dir, "faed.cf")); err != nil {
		t.Fatal(err)
	}
}

// waitLog waits up to 10 s for faed's output to match re n times.
func waitLog(t *testing.T, f *faed, re string, n int) {
	t.Helper()
	rx := regexp.MustCompile(re)
	testenv.Eventually(t, 10*time.Second, "faed to log "+re, func() bool {
		return len(rx.FindAllString(f.out.String(), -1)) >= n
	})
}

// redisGet is GET key on the Redis at addr, asked directly ("" when missing).
func redisGet(t *testing.T, addr, key string) string {
	t.Helper()
	c, err := redis.Dial("tcp", addr, redis.DialReadTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v, err := redis.String(c.Do("GET", key))
	if err != nil && err != redis.ErrNil {
		t.Fatal(err)
	}
	return v
}

// TestReloadUnderLoad: 16 sessions call rd_call SET throughout a SIGHUP
// reload that replaces the pool's only Redis server by another and lowers
// call_slow_threshold to 1ns. No call fails; afterwards every session's
// writes land on the new server, the old server has no connection of faed's
// left (counted by the server), and calls are logged slow.
func TestReloadUnderLoad(t *testing.T) {
	oldSrv, newSrv := testenv.StartRedis(t), testenv.StartRedis(t)
	m, dir := allModes[0], t.TempDir()
	conf := func(addr, slow string) string {
		return reloadConf(m, dir, `reload_watchdog_interval: "0s"`, "",
			rdSection("", rdPool{"default", []string{addr}})+"\n        call_slow_threshold: \""+slow+"\"")
	}
	f := startFaedIn(t, dir, conf(oldSrv.Addr(), "10s"))
	sessions := make([]*client, 16)
	for i := range sessions {
		sessions[i] = f.dial(t, m)
	}
	key := kvKey(t, "w")
	l := startLoad(sessions, func(c *client, w, i int) error {
		_, err := c.RdCall(bg, ctx(), "SET", "default", []string{key + strconv.Itoa(w), strconv.Itoa(i)})
		return err
	})
	t.Cleanup(func() {
		select {
		case <-l.stop: // halted already
		default:
			l.halt()
		}
	})
	l.settle(t)
	if n := testenv.RedisInfo(t, oldSrv.Addr(), "connected_clients"); n < 2 {
		t.Fatalf("old server: %d connected clients under load, want faed's besides the asking one", n)
	}
	if strings.Contains(f.out.String(), "slow call") {
		t.Fatal("slow calls logged before the reload, with call_slow_threshold 10s")
	}

	rewriteConf(t, f, conf(newSrv.Addr(), "1ns"))
	start := time.Now()
	f.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, f, `msg="config reloaded".* reloads_ok=1 reloads_failed=0`, 1)
	t.Logf("reload applied in %s (signal to log line)", time.Since(start))
	l.settle(t)
	for w := range sessions {
		if redisGet(t, newSrv.Addr(), key+strconv.Itoa(w)) == "" {
			t.Errorf("session %d: no write on the new server after the reload", w)
		}
	}
	testenv.Eventually(t, 10*time.Second, "faed's connections to the old server to close", func() bool {
		return testenv.RedisInfo(t, oldSrv.Addr(), "connected_clients") == 1 // the asking one
	})
	waitLog(t, f, `msg="slow call"`, 1)
	l.halt()
	snap := l.reset()
	t.Logf("load: %d calls ok, %d failed", snap.ok, snap.failed)
	if snap.failed != 0 || snap.ok == 0 {
		t.Errorf("under reload: %d calls ok, %d failed (%v); want none failed", snap.ok, snap.failed, snap.errs)
	}
}

// TestReloadBadFile: a file with a bad value is refused whole at SIGHUP: the
// error names the key, the failure is counted, faed goes on serving on the
// running config (its Redis server, not the bad file's). A good file then
// applies: memory_limit is set at once (hot); a change of rpc.protocol and
// servants.idgen_worker_id is logged as ignored, and the session (binary)
// goes on working.
func TestReloadBadFile(t *testing.T) {
	testenv.RequireServer(t, "redis", testenv.RedisAddr)
	testenv.RequireServer(t, "redis2", testenv.Redis2Addr)
	m, dir := allModes[0], t.TempDir()
	conf := func(addr, extra string) string {
		return reloadConf(m, dir, `reload_watchdog_interval: "0s"`, "", rdSection("", rdPool{"default", []string{addr}})+"\n"+extra)
	}
	f := startFaedIn(t, dir, conf(testenv.RedisAddr, ""))
	c := f.dial(t, m)
	key := kvKey(t, "k")
	defer c.RdCall(bg, ctx(), "DEL", "default", []string{key})

	rewriteConf(t, f, conf(testenv.Redis2Addr, `call_slow_threshold: "-1s"`))
	f.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, f, `msg="config reload failed; the running config stays" err=".*servants\.call_slow_threshold: must not be negative.* reloads_ok=0 reloads_failed=1`, 1)
	rdWant(t, c, "default", "SET", []string{key, "v1"}, "OK")
	if got := redisGet(t, testenv.RedisAddr, key); got != "v1" {
		t.Errorf("after the refused reload: %q on the running config's server, want v1", got)
	}

	good := strings.Replace(strings.Replace(conf(testenv.RedisAddr, ""), `"binary"`, `"compact"`, 1),
		"idgen_worker_id: 7", "idgen_worker_id: 9", 1)
	rewriteConf(t, f, strings.Replace(good, "{\n", "{\n    memory_limit: 134217728\n", 1))
	f.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, f, `msg="config reloaded".* reloads_ok=1 reloads_failed=1`, 1)
	waitLog(t, f, `msg="memory_limit set" bytes=134217728 was=0`, 1)
	waitLog(t, f, `msg="config keys changed that only a restart applies: ignored" keys="rpc.protocol, servants.idgen_worker_id"`, 1)
	rdWant(t, c, "default", "GET", []string{key}, "v1")
}

// TestReloadWatchdog: a change of the file without SIGHUP is picked up by the
// watchdog (reload_watchdog_interval 100ms): call_slow_threshold drops to
// 1ns and ping calls are then logged slow. A rewrite with the same content
// reloads nothing.
func TestReloadWatchdog(t *testing.T) {
	m, dir := allModes[0], t.TempDir()
	conf := func(slow string) string {
		return reloadConf(m, dir, `reload_watchdog_interval: "100ms"`, "", `call_slow_threshold: "`+slow+`"`)
	}
	f := startFaedIn(t, dir, conf("10s"))
	c := f.dial(t, m)
	rewriteConf(t, f, conf("10s"))
	if _, err := c.Ping(bg, ctx()); err != nil {
		t.Fatal(err)
	}
	rewriteConf(t, f, conf("1ns"))
	waitLog(t, f, `msg="config file changed: reloading"`, 1)
	waitLog(t, f, `msg="config reloaded".* reloads_ok=1 reloads_failed=0`, 1)
	if n := strings.Count(f.out.String(), "config file changed"); n != 1 {
		t.Errorf("%d watchdog reloads, want 1 (the same content rewritten is no change)", n)
	}
	if _, err := c.Ping(bg, ctx()); err != nil {
		t.Fatal(err)
	}
	waitLog(t, f, `msg="slow call" method=ping`, 1)
}
