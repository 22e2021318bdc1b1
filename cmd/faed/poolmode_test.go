package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/fae-go/fae/internal/testenv"
)

// The pool modes (servant/modes.go) through the faed binary: read_only and
// degraded, set by the config and by POST /svt/pool/mode, reset by a reload,
// shown in /svt/stat and /metrics; real MariaDB, Redis and FerretDB.

// postPoolMode posts a JSON body to /svt/pool/mode and returns the status and body.
func postPoolMode(t *testing.T, f *faed, backend, pool, mode string) (int, string) {
	t.Helper()
	body := fmt.Sprintf(`{"backend": %q, "pool": %q, "mode": %q}`, backend, pool, mode)
	resp, err := http.Post("http://"+f.httpAddr+"/svt/pool/mode", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// poolModes reads the pool_modes of /svt/stat, as "backend/pool=mode(source)".
func poolModes(t *testing.T, f *faed) []string {
	t.Helper()
	body, code := httpGet(t, "http://"+f.httpAddr+"/svt/stat")
	if code != 200 {
		t.Fatalf("/svt/stat: %d %s", code, body)
	}
	var st struct {
		PoolModes []struct{ Backend, Pool, Mode, Source string } `json:"pool_modes"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/svt/stat: %v", err)
	}
	out := []string{}
	for _, pm := range st.PoolModes {
		out = append(out, fmt.Sprintf("%s/%s=%s(%s)", pm.Backend, pm.Pool, pm.Mode, pm.Source))
	}
	return out
}

// mgStat is the /svt/stat figures of method name ("mg.insert").
func mgStat(t *testing.T, f *faed, name string) struct{ Calls, Errors, Misses int64 } {
	t.Helper()
	body, code := httpGet(t, "http://"+f.httpAddr+"/svt/stat")
	if code != 200 {
		t.Fatalf("/svt/stat: %d %s", code, body)
	}
	var st struct {
		Methods map[string]struct{ Calls, Errors, Misses int64 } `json:"methods"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/svt/stat: %v", err)
	}
	return st.Methods[name]
}

// redisCommands is total_commands_processed of the Redis at addr, asked on a
// connection of its own (the INFO itself is counted by Redis).
func redisCommands(t *testing.T, addr string) int {
	t.Helper()
	conn, err := redis.Dial("tcp", addr, redis.DialReadTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	text, err := redis.String(conn.Do("INFO", "stats"))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, line := range strings.Split(text, "\r\n") {
		if v, ok := strings.CutPrefix(line, "total_commands_processed:"); ok {
			fmt.Sscan(v, &n)
			return n
		}
	}
	t.Fatalf("no total_commands_processed in INFO stats of %s", addr)
	return 0
}

// TestPoolModeMysqlConfig: read_only on the global pool Global and degraded
// on the sharded pool UserShard (each of its shard entries), from the config:
// SELECT works, UPDATE is refused naming the pool, the mode and the key, and
// the row is unchanged; every call to UserShard is refused; /svt/stat and
// /metrics show the switches and count the refusals.
func TestPoolModeMysqlConfig(t *testing.T) {
	testenv.RequireServer(t, "MariaDB", testenv.MySQLAddr)
	db := setupMysqlSchema(t, testenv.MySQLAddr)
	sec := mysqlSection(testenv.MySQLAddr, "")
	sec = strings.Replace(sec, `{ pool: "Global",`, `{ pool: "Global", mode: "read_only",`, 1)
	for n := 1; n <= 3; n++ {
		sec = strings.Replace(sec, fmt.Sprintf(`{ pool: "UserShard%d",`, n), fmt.Sprintf(`{ pool: "UserShard%d", mode: "degraded",`, n), 1)
	}
	m := allModes[0]
	dir := t.TempDir()
	f := startFaedIn(t, dir, m.config(dir, "", sec))
	c := f.dial(t, m)

	r, err := c.MyQuery(bg, ctx(), "Global", "Setting", 0, "SELECT v FROM Setting WHERE k = ?", []string{"a"}, "")
	if err != nil || len(r.Rows) != 1 || r.Rows[0][0] != "1" {
		t.Fatalf("SELECT on read_only Global = %v, %v; want [[1]]", r, err)
	}
	_, err = c.MyQuery(bg, ctx(), "Global", "Setting", 0, "UPDATE Setting SET v = '9' WHERE k = ?", []string{"a"}, "")
	wantErr(t, "UPDATE on read_only Global", err, `mysql exec: pool "Global": refused by the pool's mode: read_only, set by servants\.mysql\.servers\[\]\.mode: writes are refused$`)
	var v string
	if err := db.QueryRow("SELECT v FROM " + faet + "Global.Setting WHERE k = 'a'").Scan(&v); err != nil || v != "1" {
		t.Fatalf("row after the refused UPDATE: %q, %v; want 1", v, err)
	}
	_, err = c.MyBulkExec(bg, ctx(), []string{"Global"}, []string{"Setting"}, []int64{0}, []string{"DELETE FROM Setting"}, [][]string{nil}, []string{""})
	wantErr(t, "my_bulk_exec DELETE on read_only Global", err, `my_bulk_exec\[0\].*refused by the pool's mode: read_only`)
	_, err = c.MyMerge(bg, ctx(), "Global", "Setting", 0, "k = 'c'", "", "data", `{"y":2}`)
	wantErr(t, "my_merge on read_only Global", err, `mysql tx: pool "Global": refused by the pool's mode: read_only`)

	_, err = c.MyQuery(bg, ctx(), "UserShard", "UserInfo", 1, "SELECT name FROM UserInfo WHERE uid = 1", nil, "")
	wantErr(t, "SELECT on degraded UserShard", err, `mysql query: pool "UserShard": refused by the pool's mode: degraded, set by servants\.mysql\.servers\[\]\.mode: every call is refused, no server is asked$`)
	_, err = c.MyQueryShards(bg, ctx(), "UserShard", "UserInfo", "SELECT uid FROM UserInfo", nil)
	wantErr(t, "my_query_shards on degraded UserShard", err, `pool "UserShard": refused by the pool's mode: degraded`)

	if got := strings.Join(poolModes(t, f), " "); got != "mysql/Global=read_only(config) mysql/UserShard=degraded(config)" {
		t.Errorf("/svt/stat pool_modes = %s", got)
	}
	s := scrape(t, f.httpAddr)
	for key, want := range map[string]float64{
		`fae_backend_operations_total{backend="mysql",kind="mode_refused",op="exec",pool="Global",server=""}`:     2,
		`fae_backend_operations_total{backend="mysql",kind="mode_refused",op="tx",pool="Global",server=""}`:       1,
		`fae_backend_operations_total{backend="mysql",kind="mode_refused",op="query",pool="UserShard",server=""}`: 2,
		`fae_pool_mode{backend="mysql",mode="degraded",pool="UserShard",source="config"}`:                         1,
	} {
		if s[key] != want {
			t.Errorf("/metrics %s = %v, want %v", key, s[key], want)
		}
	}
}

// TestPoolModeRedisPost: POST degraded on a Redis pool of a Redis the test
// owns: every rd_call is refused, and that Redis processes no command from
// faed (INFO stats total_commands_processed moves by the INFO calls only);
// POST read_only refuses SET and lets GET through; a reload puts the config's
// mode (none) back; bad requests are refused with 400 and change nothing.
func TestPoolModeRedisPost(t *testing.T) {
	own := testenv.StartRedis(t)
	conf := func(dir string) string { // reloads by SIGHUP only: no watchdog racing the POSTs
		return reloadConf(allModes[0], dir, `reload_watchdog_interval: "0s"`, "", rdSection("", rdPool{"own", []string{own.Addr()}}))
	}
	dir := t.TempDir()
	f := startFaedIn(t, dir, conf(dir))
	c := f.dial(t, allModes[0])
	key := kvKey(t, "k")
	if _, err := c.RdCall(bg, ctx(), "SET", "own", []string{key, "v1"}); err != nil {
		t.Fatal(err)
	}

	code, body := postPoolMode(t, f, "redis", "own", "degraded")
	if code != 200 || !strings.Contains(body, `"status": "set"`) {
		t.Fatalf("POST degraded: %d %s", code, body)
	}
	if got := strings.Join(poolModes(t, f), " "); got != "redis/own=degraded(api)" {
		t.Errorf("/svt/stat pool_modes = %s", got)
	}
	base := redisCommands(t, own.Addr())
	idle := redisCommands(t, own.Addr()) - base // what one INFO adds
	for i, cmd := range [][]string{{"GET", key}, {"SET", key, "v2"}, {"PING"}, {"INCR", key}, {"GET", key}} {
		_, err := c.RdCall(bg, ctx(), cmd[0], "own", cmd[1:])
		wantErr(t, fmt.Sprintf("rd_call %d %s on degraded", i, cmd[0]), err,
			`redis `+cmd[0]+`: pool "own": refused by the pool's mode: degraded, set by POST /svt/pool/mode at \S+ \(until the next reload\): every call is refused, no server is asked$`)
	}
	if n := redisCommands(t, own.Addr()) - base; n != 2*idle {
		t.Errorf("Redis processed %d commands during 5 refused rd_calls, want %d (the INFO calls only)", n, 2*idle)
	}
	s := scrape(t, f.httpAddr)
	if k := `fae_backend_operations_total{backend="redis",kind="mode_refused",op="GET",pool="own",server=""}`; s[k] != 2 {
		t.Errorf("/metrics %s = %v, want 2", k, s[k])
	}

	if code, body := postPoolMode(t, f, "redis", "own", "read_only"); code != 200 {
		t.Fatalf("POST read_only: %d %s", code, body)
	}
	if v, err := c.RdCall(bg, ctx(), "GET", "own", []string{key}); err != nil || v != "v1" {
		t.Errorf("GET on read_only = %q, %v; want v1", v, err)
	}
	_, err := c.RdCall(bg, ctx(), "set", "own", []string{key, "v3"})
	wantErr(t, "SET on read_only", err, `redis SET: pool "own": refused by the pool's mode: read_only, set by POST /svt/pool/mode at .*: writes are refused$`)
	_, err = c.RdCall(bg, ctx(), "EVAL", "own", []string{"return 1", "0"})
	wantErr(t, "EVAL on read_only", err, `refused by the pool's mode: read_only`)

	for _, bad := range []struct{ backend, pool, mode, want string }{
		{"redis", "nope", "degraded", `pool: redis has no pool \"nope\"`},
		{"redis", "own", "off", `mode: must be one of`},
		{"couchbase", "own", "degraded", `backend: must be one of`},
	} {
		if code, body := postPoolMode(t, f, bad.backend, bad.pool, bad.mode); code != 400 || !strings.Contains(body, bad.want) {
			t.Errorf("POST %v: %d %s, want 400 with %s", bad, code, body, bad.want)
		}
	}
	if got := strings.Join(poolModes(t, f), " "); got != "redis/own=read_only(api)" {
		t.Errorf("/svt/stat pool_modes after bad POSTs = %s", got)
	}

	// A reload (SIGHUP, the same file) builds a generation from the config: the switch is gone.
	f.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, f, `msg="config reloaded"`, 1)
	if got := strings.Join(poolModes(t, f), " "); got != "" {
		t.Errorf("/svt/stat pool_modes after reload = %s, want none", got)
	}
	if _, err := c.RdCall(bg, ctx(), "SET", "own", []string{key, "v4"}); err != nil {
		t.Errorf("SET after reload: %v", err)
	}
	if v := redisGet(t, own.Addr(), key); v != "v4" {
		t.Errorf("the key after reload = %q, want v4", v)
	}

	// A mode in the config survives the reload, and POST "normal" clears it until the next.
	rewriteConf(t, f, strings.Replace(conf(dir), `name: "own",`, `name: "own", mode: "degraded",`, 1))
	f.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, f, `msg="config reloaded"`, 2)
	_, err = c.RdCall(bg, ctx(), "GET", "own", []string{key})
	wantErr(t, "GET after a reload with mode degraded", err, `refused by the pool's mode: degraded, set by servants\.redis\.pools\[\]\.mode:`)
	if code, body := postPoolMode(t, f, "redis", "own", "normal"); code != 200 {
		t.Fatalf("POST normal: %d %s", code, body)
	}
	if v, err := c.RdCall(bg, ctx(), "GET", "own", []string{key}); err != nil || v != "v4" {
		t.Errorf("GET after POST normal = %q, %v", v, err)
	}
}
