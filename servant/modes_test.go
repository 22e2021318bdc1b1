package servant

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/testenv"
	"github.com/fae-go/fae/pool"
)

// What read_only refuses of MySQL: statements that return no rows, and WITH
// statements that modify data; reads pass.
func TestMysqlWrites(t *testing.T) {
	for sql, want := range map[string]bool{
		"SELECT * FROM t":                                  false,
		"select 1 for update":                              false,
		"(SELECT 1)":                                       false,
		"SHOW TABLES":                                      false,
		"EXPLAIN SELECT 1":                                 false,
		"WITH c AS (SELECT 1) SELECT * FROM c":             false,
		"SELECT 'UPDATE t SET a = 1'":                      false, // a word in a string is not a keyword
		"UPDATE t SET a = 1":                               true,
		"insert into t values (1)":                         true,
		"DELETE FROM t":                                    true,
		"REPLACE INTO t VALUES (1)":                        true,
		"CREATE TABLE x (a INT)":                           true,
		"WITH c AS (SELECT 1) UPDATE t JOIN c SET t.a = 1": true,
		"BEGIN": true, // refused by classify: counted a write
	} {
		if got := mysqlWrites(sql); got != want {
			t.Errorf("mysqlWrites(%q) = %v, want %v", sql, got, want)
		}
	}
}

// Memcache on a memcached of the test's own: read_only from the config lets
// get through and refuses set, add, delete and increment with the message;
// SetPoolMode degraded refuses get too, and the server is asked nothing
// (its cmd_get and cmd_set do not move); a Reload puts the config's mode back
// and keeps the pools (the mode is not a pool key).
func TestMemcacheModes(t *testing.T) {
	srv := testenv.StartMemcached(t)
	cfg := baseConfig()
	cfg.Memcache = memcacheConfig(2 * time.Second)
	cfg.Memcache.Servers = []pool.MemcacheServerConfig{{Host: "127.0.0.1", Port: pool.Port(srv.Port), Pool: "default", Mode: pool.ModeReadOnly}}
	s := newTestServant(t, cfg, Options{})
	ctx, val := context.Background(), &rpc.TMemcacheData{Data: []byte("v")}
	direct := memcache.New(srv.Addr())
	if err := direct.Set(&memcache.Item{Key: "k", Value: []byte("v0")}); err != nil {
		t.Fatal(err)
	}

	if v, err := s.McGet(ctx, validCtx(), "default", "k"); err != nil || string(v.Data) != "v0" {
		t.Fatalf("mc_get on read_only = %v, %v", v, err)
	}
	const roMsg = `pool "default": refused by the pool's mode: read_only, set by servants.memcache.servers[].mode: writes are refused`
	writes := map[string]func() error{
		"set": func() error { _, err := s.McSet(ctx, validCtx(), "default", "k", val, 0); return err },
		"add": func() error { _, err := s.McAdd(ctx, validCtx(), "default", "k2", val, 0); return err },
		"delete": func() error {
			_, err := s.McDelete(ctx, validCtx(), "default", "k")
			return err
		},
		"incr": func() error { _, err := s.McIncrement(ctx, validCtx(), "default", "k", 1); return err },
	}
	for op, call := range writes {
		err := call()
		if !errors.Is(err, pool.KindModeRefused) || err.Error() != "memcache "+op+": "+roMsg {
			t.Errorf("%s on read_only: %v", op, err)
		}
	}
	if it, err := direct.Get("k"); err != nil || string(it.Value) != "v0" {
		t.Errorf("k after the refused writes = %v, %v; want v0", it, err)
	}

	before := memcachedStat(t, srv.Addr())
	if _, err := s.SetPoolMode("memcache", "default", "degraded"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := s.McGet(ctx, validCtx(), "default", "k"); !errors.Is(err, pool.KindModeRefused) ||
			!strings.Contains(err.Error(), "degraded, set by POST /svt/pool/mode at ") {
			t.Errorf("mc_get on degraded: %v", err)
		}
	}
	if after := memcachedStat(t, srv.Addr()); after != before {
		t.Errorf("memcached cmd_get/cmd_set went from %s to %s: a degraded pool asked the server", before, after)
	}
	if got := s.Backends.Snapshot(); modeRefusals(got, "memcache", "default", "get") != 3 || modeRefusals(got, "memcache", "default", "set") != 1 {
		t.Errorf("mode_refused counted: get %d, set %d; want 3, 1", modeRefusals(got, "memcache", "default", "get"), modeRefusals(got, "memcache", "default", "set"))
	}

	old := s.gen.Load().mc
	if _, err := s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if pm := s.PoolModes(); len(pm) != 1 || pm[0].Mode != pool.ModeReadOnly || pm[0].Source != ModeFromConfig {
		t.Errorf("PoolModes after reload = %+v, want the config's read_only", pm)
	}
	cfg.Memcache.Servers[0].Mode = ""
	if _, err := s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if s.gen.Load().mc != old {
		t.Errorf("a reload that changed only the mode rebuilt the memcache pool")
	}
	if _, err := s.McSet(ctx, validCtx(), "default", "k", val, 0); err != nil {
		t.Errorf("mc_set after the mode was removed: %v", err)
	}
}

// memcachedStat is "cmd_get/cmd_set" of the memcached at addr (its "stats").
func memcachedStat(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprint(c, "stats\r\n")
	st, r := map[string]string{}, bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if f := strings.Fields(line); len(f) == 3 && f[0] == "STAT" {
			st[f[1]] = f[2]
		} else if strings.TrimSpace(line) == "END" {
			return st["cmd_get"] + "/" + st["cmd_set"]
		}
	}
}

func modeRefusals(ops []*pool.OpCounters, backend, poolName, op string) int64 {
	for _, oc := range ops {
		if oc.Backend == backend && oc.Pool == poolName && oc.Name == op && oc.Server == "" {
			return oc.Count(pool.KindModeRefused)
		}
	}
	return 0
}

// SetPoolMode refuses unknown backends, pools and modes, and names what calls
// give: a MySQL sharded pool, not one of its shard entries.
func TestSetPoolModeErrors(t *testing.T) {
	cfg := baseConfig()
	var my pool.MySQLConfig
	my.SetDefaults()
	my.GlobalPools = []string{"Global"}
	my.Servers = []pool.MySQLServerConfig{{Pool: "Global", Host: "127.0.0.1", Port: 1, DB: "g"}, {Pool: "User1", Host: "127.0.0.1", Port: 1, DB: "u"}}
	cfg.Mysql = &my
	s := newTestServant(t, cfg, Options{})
	for _, tc := range []struct{ backend, pool, mode, want string }{
		{"mysql", "User1", "degraded", `pool: mysql has no pool "User1"`},
		{"mysql", "Global", "off", `mode: must be one of "" (normal), "read_only", "degraded", got "off"`},
		{"redis", "Global", "degraded", `pool: redis has no pool "Global"`},
		{"pg", "Global", "degraded", `backend: must be one of`},
	} {
		if _, err := s.SetPoolMode(tc.backend, tc.pool, tc.mode); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SetPoolMode(%s, %s, %s) = %v, want %s", tc.backend, tc.pool, tc.mode, err, tc.want)
		}
	}
	if _, err := s.SetPoolMode("mysql", "User", "read_only"); err != nil {
		t.Fatal(err)
	}
	_, err := s.MyQuery(context.Background(), validCtx(), "User", "t", 1, "DELETE FROM t", nil, "")
	if !errors.Is(err, pool.KindModeRefused) {
		t.Errorf("DELETE on read_only User: %v", err)
	}
	if pm := s.PoolModes(); len(pm) != 1 || pm[0].Pool != "User" || pm[0].Source != ModeFromAPI {
		t.Errorf("PoolModes = %+v", pm)
	}
}

// With no pool switched the check is one atomic load (the call path's cost).
func BenchmarkModeCheckNone(b *testing.B) {
	g := &generation{}
	s := &FunServant{}
	for b.Loop() {
		if s.modeRefusal(g, "redis", "default", "GET", false) != nil {
			b.Fatal("refused")
		}
	}
}
