package pool

import (
	"maps"
	"strings"
	"testing"
)

// The mode keys: values checked, entries of one pool must agree, and Modes
// names the pools as calls name them (a MySQL shard by its sharded pool).
func TestConfigModes(t *testing.T) {
	var my MySQLConfig
	my.SetDefaults()
	my.GlobalPools = []string{"Global", "Log2"}
	my.Servers = []MySQLServerConfig{
		{Pool: "Global", Host: "h", Port: 1, DB: "d", Mode: ModeReadOnly},
		{Pool: "Log2", Host: "h", Port: 1, DB: "d", Mode: "normal"},
		{Pool: "User1", Host: "h", Port: 1, DB: "d", Mode: ModeDegraded},
		{Pool: "User2", Host: "h", Port: 1, DB: "d", Mode: ModeDegraded},
	}
	if err := my.Validate("servants.mysql"); err != nil {
		t.Fatal(err)
	}
	if got, want := my.Modes(), map[string]Mode{"Global": ModeReadOnly, "User": ModeDegraded}; !maps.Equal(got, want) {
		t.Errorf("mysql Modes = %v, want %v", got, want)
	}
	my.Servers[3].Mode = ""
	if err := my.Validate("servants.mysql"); err == nil || !strings.Contains(err.Error(),
		`servants.mysql.servers[3].mode: "", but another server entry of pool "User" has mode "degraded"`) {
		t.Errorf("shards disagreeing: %v", err)
	}

	var mc MemcacheConfig
	mc.SetDefaults()
	mc.Servers = []MemcacheServerConfig{{Host: "a", Port: 1, Pool: "p", Mode: "read-only"}}
	if err := mc.Validate("servants.memcache"); err == nil || err.Error() !=
		`servants.memcache.servers[0].mode: must be one of "" (normal), "read_only", "degraded", got "read-only"` {
		t.Errorf("bad memcache mode: %v", err)
	}
	mc.Servers = []MemcacheServerConfig{{Host: "a", Port: 1, Pool: "p", Mode: ModeReadOnly}, {Host: "b", Port: 1, Pool: "p", Mode: ModeDegraded}}
	if err := mc.Validate("servants.memcache"); err == nil || !strings.Contains(err.Error(), `servants.memcache.servers[1].mode`) {
		t.Errorf("memcache entries disagreeing: %v", err)
	}

	var rd RedisConfig
	rd.SetDefaults()
	rd.Pools = []RedisPoolConfig{{Name: "a", Mode: ModeDegraded}, {Name: "b"}}
	if err := rd.Validate("servants.redis"); err != nil {
		t.Fatal(err)
	}
	if got := rd.Modes(); !maps.Equal(got, map[string]Mode{"a": ModeDegraded}) {
		t.Errorf("redis Modes = %v", got)
	}
}

// Which Redis commands a read_only pool refuses: writes (COMMAND's write
// flag), scripts that may write, and unknown commands.
func TestRedisWrites(t *testing.T) {
	for cmd, want := range map[string]bool{"get": false, "MGET": false, "HGETALL": false, "PING": false, "EVAL_RO": false,
		"set": true, "DEL": true, "incr": true, "HSET": true, "EXPIRE": true, "EVAL": true, "FCALL": true, "XGROUP": true, "NOSUCH": true} {
		if got := RedisWrites(cmd); got != want {
			t.Errorf("RedisWrites(%s) = %v, want %v", cmd, got, want)
		}
	}
	if KindModeRefused.String() != "mode_refused" || KindModeRefused.Reusable() != true || KindModeRefused.Answered() {
		t.Errorf("KindModeRefused: %s reusable %v answered %v", KindModeRefused, KindModeRefused.Reusable(), KindModeRefused.Answered())
	}
}
