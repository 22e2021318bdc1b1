package config

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fae-go/fae/pool"
)

// TestRedisNewKeys: the keys this version adds to servants.redis take their
// defaults when absent, and a deny_commands list replaces the default list
// (an empty one allows every command).
func TestRedisNewKeys(t *testing.T) {
	parse := func(redis string) *pool.RedisConfig {
		t.Helper()
		c, err := Parse("test", []byte(`{ rpc: { listen_addr: "127.0.0.1:0" }, servants: { redis: {`+redis+`} } }`))
		if err != nil {
			t.Fatal(err)
		}
		return c.Servants.Redis
	}
	r := parse(`pools: [ { name: "a", servers: [ { addr: "127.0.0.1:1" } ] } ]`)
	if !slices.Equal(r.DenyCommands, pool.DefaultRedisDenyCommands) || r.ConnectTimeout != 2*time.Second ||
		r.IOTimeout != 4*time.Second || r.BorrowTimeout != 2*time.Second {
		t.Errorf("defaults: %+v", r)
	}
	if r := parse(`deny_commands: [ "keys" ], borrow_timeout: "50ms"`); !slices.Equal(r.DenyCommands, []string{"keys"}) || r.BorrowTimeout != 50*time.Millisecond {
		t.Errorf("deny_commands [keys]: %q, borrow_timeout %s", r.DenyCommands, r.BorrowTimeout)
	}
	if r := parse(`deny_commands: []`); len(r.DenyCommands) != 0 {
		t.Errorf("deny_commands []: %q", r.DenyCommands)
	}
	if len(pool.DefaultRedisDenyCommands) != 14 || pool.DefaultRedisDenyCommands[0] != "FLUSHALL" {
		t.Errorf("the default list was changed by decoding: %q", pool.DefaultRedisDenyCommands)
	}
}

func TestKVConfigErrors(t *testing.T) {
	for servants, want := range map[string]string{
		`redis: { pools: [ { name: "a" }, { name: "a" } ] }`:                                 `servants.redis.pools[1].name: pool "a" is listed twice`,
		`redis: { pools: [ { name: "a", servers: [ { addr: "h:1" }, { addr: "h:1" } ] } ] }`: `servants.redis.pools[0].servers[1].addr: h:1 is listed twice in pool "a"`,
		`redis: { io_timeout: "0s" }`:                                                        `connect_timeout, io_timeout and borrow_timeout must be positive`,
		`redis: { deny_commands: [ "" ] }`:                                                   `servants.redis.deny_commands[0]: empty command name`,
		`memcache: { servers: [ { host: "h", port: 1 }, { host: "h", port: 1 } ] }`:          `servants.memcache.servers[1]: h:1 is listed twice in pool "default"`,
		`memcache: { max_idle_conns_per_server: 0, servers: [ { host: "h", port: 1 } ] }`:    `max_conns_per_server must be at least 1`,
		`memcache: { servers: [ { host: "h", port: 1 } ], hash_strategy: "ketama" }`:         `servants.memcache.hash_strategy: must be one of`,
	} {
		_, err := Parse("test", []byte(`{ rpc: { listen_addr: "127.0.0.1:0" }, servants: { `+servants+` } }`))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v; want %q", servants, err, want)
		}
	}
}
