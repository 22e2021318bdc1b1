package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

// backendsNode is a faed with every backend of -x on the shared test
// servers: memcache, redis and mongodb pools "default" (the tool's
// defaults) and a MySQL global pool "Global" on fae_test, whose table
// stress_user the test fills.
func backendsNode(t *testing.T) *node {
	t.Helper()
	testenv.RequireServer(t, "backends", testenv.MySQLAddr, testenv.RedisAddr, testenv.MemcacheAddr, testenv.MongoAddr)
	db := testenv.OpenMySQL(t, testenv.MySQLAddr, "fae_test")
	for _, q := range []string{
		"CREATE TABLE IF NOT EXISTS stress_user (uid INT PRIMARY KEY, name VARCHAR(64) NOT NULL)",
		"REPLACE INTO stress_user VALUES (1, 'one')",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	hostPort := func(addr string) (string, string) { h, p, _ := strings.Cut(addr, ":"); return h, p }
	mh, mp := hostPort(testenv.MySQLAddr)
	ch, cp := hostPort(testenv.MemcacheAddr)
	gh, gp := hostPort(testenv.MongoAddr)
	servants := fmt.Sprintf(`
        mysql: {
            servers: [ { pool: "Global", host: %q, port: %s, db: "fae_test", username: "fae", password: "fae" } ]
            global_pools: ["Global"]
        }
        memcache: { servers: [ { pool: "default", host: %q, port: %s } ] }
        redis: { pools: [ { name: "default", servers: [ { addr: %q } ] } ] }
        mongodb: { servers: [ { pool: "default", host: %q, port: %s, db: "stress_test" } ] }`,
		mh, mp, ch, cp, testenv.RedisAddr, gh, gp)
	return startNode(t, "faed", "", "", servants)
}

// myFlags point -x 64 at the test's table.
var myFlags = []string{"-my-pool", "Global", "-my-table", "stress_user", "-my-hint", "0",
	"-my-sql", "SELECT * FROM stress_user WHERE uid=?", "-my-args", "1", "-my-cachekey", "stress:user:1"}

// TestEveryBit: -x 255 makes every call of every bit, answered by faed
// from the real backends (faed's own per-method counts of ok outcomes), and
// the counts add up.
func TestEveryBit(t *testing.T) {
	n := backendsNode(t)
	before := n.stat(t)
	methods := map[string]int64{"ping": 0, "id.next": 0, "lc.set": 0, "lc.get": 0, "mc.set": 0, "mc.get": 0,
		"mg.upsert": 0, "mg.findOne": 0, "my.query": 0, "rd.call": 0}
	for m := range methods {
		methods[m] = n.methodCalls(t, m, "ok")
	}
	args := append([]string{"-addr", n.Addr(), "-x", "255", "-c", "2", "-n", "10", "-loop", "2", "-payload", "300",
		"-key-prefix", fmt.Sprintf("stress%d:", time.Now().UnixNano()), "-json"}, myFlags...)
	r := stress(t, args...)
	const rounds = 2 * 10 * 2
	if r.code != 0 || r.rep.Calls != rounds*13 || r.rep.Sessions != 20 {
		t.Errorf("exit status %d, %d calls, %d sessions; want 0, %d, 20", r.code, r.rep.Calls, r.rep.Sessions, rounds*13)
	}
	wantErrors(t, r.rep, nil)
	wantStat(t, n, before, stat{rounds * 13, 20})
	for m, was := range methods {
		want := int64(rounds)
		if m == "my.query" || m == "rd.call" {
			want *= 2
		}
		if got := n.methodCalls(t, m, "ok") - was; got != want {
			t.Errorf("faed answered %d %s calls ok, want %d", got, m, want)
		}
	}
}

// TestErrorKinds: errors are counted by kind with the first message, in
// the JSON and the text report, and a session ends at its first error.
func TestErrorKinds(t *testing.T) {
	n := backendsNode(t)
	for _, tc := range []struct {
		x     string
		flags []string
		first string // regexp of the first message
	}{
		{"16", []string{"-mc-pool", "nosuch"}, `^127\.0\.0\.1:\d+: mc_set: .*nosuch`},
		{"32", []string{"-mg-pool", "nosuch"}, `^127\.0\.0\.1:\d+: mg_upsert: .*nosuch`},
		{"64", []string{"-my-pool", "nosuch", "-my-hint", "0"}, `^127\.0\.0\.1:\d+: my_query with cacheKey: .*nosuch`},
		{"128", []string{"-rd-pool", "nosuch"}, `^127\.0\.0\.1:\d+: rd_call SET: .*nosuch`},
	} {
		r := stress(t, append([]string{"-addr", n.Addr(), "-x", tc.x, "-c", "2", "-n", "5", "-json", "-erroff"}, tc.flags...)...)
		if r.code != 1 || r.rep.Calls != 10 || r.rep.Sessions != 10 {
			t.Errorf("-x %s %v: exit status %d, %d calls, %d sessions; want 1, 10, 10 (one failed call per session)",
				tc.x, tc.flags, r.code, r.rep.Calls, r.rep.Sessions)
		}
		wantErrors(t, r.rep, map[string]int64{"call": 10})
		if first := r.rep.Errors["call"].First; !regexp.MustCompile(tc.first).MatchString(first) {
			t.Errorf("-x %s %v: first call error %q, want it to match %s", tc.x, tc.flags, first, tc.first)
		}
	}

	// connect: nothing listens; io: the wrong protocol (faed drops the
	// connection); timeout: faed frozen. In text, with each error printed.
	refused := testenv.FreeAddr(t)
	r := stress(t, "-addr", refused, "-x", "2", "-c", "2", "-n", "3")
	wantText(t, r, `errors: \{conn:6, io:0, timeout:0, call:0\}`,
		`First connect error: `+regexp.QuoteMeta(refused)+`: .*connection refused`)
	if got := strings.Count(r.stderr, "connect error: "); got != 6 {
		t.Errorf("%d error lines on stderr, want 6", got)
	}
	r = stress(t, "-addr", n.Addr(), "-x", "2", "-c", "2", "-n", "3", "-protocol", "compact", "-erroff")
	wantText(t, r, `errors: \{conn:0, io:6, timeout:0, call:0\}`, `First io error: 127\.0\.0\.1:\d+: ping: `)
	n.Freeze()
	defer n.Thaw()
	r = stress(t, "-addr", n.Addr(), "-x", "2", "-c", "2", "-n", "1", "-timeout", "300ms", "-erroff")
	wantText(t, r, `errors: \{conn:0, io:0, timeout:2, call:0\}`, `First timeout error: 127\.0\.0\.1:\d+: ping: .*timeout`)
}

// wantText fails unless r exited with 1 and its text report matches each of res.
func wantText(t *testing.T, r result, res ...string) {
	t.Helper()
	if r.code != 1 {
		t.Errorf("exit status %d, want 1", r.code)
	}
	for _, re := range res {
		if !regexp.MustCompile(`(?m)` + re).MatchString(r.stdout) {
			t.Errorf("report lacks a match for %s", re)
		}
	}
}
