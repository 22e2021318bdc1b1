package pool

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// MySQLServerConfig is one entry of servants.mysql.servers: one MySQL server named by its pool.
type MySQLServerConfig struct {
	Pool     string `cf:"pool"`     // server name: a global pool or <sharded pool><shard id>; required
	Host     string `cf:"host"`     // required
	Port     Port   `cf:"port"`     // default 3306
	DB       string `cf:"db"`       // database name; required
	Username string `cf:"username"` // login user
	Password string `cf:"password"` // login password
	Charset  string `cf:"charset"`  // connection charset; default utf8
	// Mode (mode): "" (normal), "read_only" (statements that return no rows
	// refused) or "degraded" (every call refused, no server asked): the mode of
	// the pool calls name — a global pool's own entry, or a sharded pool,
	// whose every shard entry must state it alike; see Mode.
	Mode Mode `cf:"mode"`
}

// SetDefaults fills in port 3306 and charset utf8 (original fae).
func (s *MySQLServerConfig) SetDefaults() { *s = MySQLServerConfig{Port: 3306, Charset: "utf8"} }

// MySQLConfig is the servants.mysql section. Absent = MySQL off.
type MySQLConfig struct {
	Servers                      []MySQLServerConfig `cf:"servers"`
	ShardStrategy                string              `cf:"shard_strategy"`                   // standard | vbucket; default standard
	GlobalPools                  []string            `cf:"global_pools"`                     // pools that are not sharded
	LookupPool                   string              `cf:"lookup_pool"`                      // server holding the lookup tables; default ShardLookup
	LookupTables                 map[string]string   `cf:"lookup_tables"`                    // sharded pool → lookup table
	DefaultLookupTable           string              `cf:"default_lookup_table"`             // lookup table of a sharded pool missing above
	LookupCacheMaxItems          int                 `cf:"lookup_cache_max_items"`           // items; default 1048576
	Timeout                      time.Duration       `cf:"timeout"`                          // connect timeout, and the longest wait for a free connection (then busy); default 10s
	MaxIdleTime                  time.Duration       `cf:"max_idle_time"`                    // keep-alive ping interval; 0 = none
	MaxIdleConnsPerServer        int                 `cf:"max_idle_conns_per_server"`        // default 2
	MaxConnsPerServer            int                 `cf:"max_conns_per_server"`             // 0 = 5 × max_idle_conns_per_server
	CachePrepareStmtMaxItems     int                 `cf:"cache_prepare_stmt_max_items"`     // per server; 0 = off
	AllowNullableColumns         bool                `cf:"allow_nullable_columns"`           // NULL → "NULL"; default true
	CacheStore                   string              `cf:"cache_store"`                      // mem | redis; default mem
	CacheStoreMemMaxItems        int                 `cf:"cache_store_mem_max_items"`        // items; default 10485760
	CacheStoreMemMaxBytes        int64               `cf:"cache_store_mem_max_bytes"`        // bytes of results in the mem store; default 256 MiB
	CacheStoreRedisPool          string              `cf:"cache_store_redis_pool"`           // default db_cache
	CacheKeyHash                 bool                `cf:"cache_key_hash"`                   // store a hash of the cache key
	JSONMergeMaxOutstandingItems int                 `cf:"json_merge_max_outstanding_items"` // default 8388608
	HeartbeatInterval            int                 `cf:"heartbeat_interval"`               // seconds; accepted, unused as in the original
	Breaker                      BreakerConfig       `cf:"breaker"`

	// Keys new in this fae.
	LookupCacheTTL  time.Duration `cf:"lookup_cache_ttl"`  // a cached shard lookup is trusted this long; default 60s
	VbucketSize     int           `cf:"vbucket_size"`      // ids per shard with shard_strategy vbucket; default 200000
	ConnMaxLifetime time.Duration `cf:"conn_max_lifetime"` // connections are closed after this, before MySQL's wait_timeout kills them; default 5m
	QueryTimeout    time.Duration `cf:"query_timeout"`     // longest one statement may take; default 60s; 0 = none
	CacheTTL        time.Duration `cf:"cache_ttl"`         // query cache entries expire after this; default 0 = never (as the original)
	// MaxWaitingCalls (max_waiting_calls) caps the calls waiting for a
	// connection of one server (all max_conns_per_server in use; a call waits
	// at most timeout, then fails with KindBusy); one more fails at once with
	// KindBusy ("busy: 40 calls already waiting for a connection to
	// 127.0.0.1:3306 (max_waiting_calls 40)"). The breaker counts neither.
	// 0 = 4 × max_conns_per_server (DefaultWaitingPerConn); no bound when
	// max_conns_per_server is 0 (unlimited: nothing waits).
	MaxWaitingCalls int `cf:"max_waiting_calls"`
}

// SetDefaults fills in the original fae's defaults.
func (c *MySQLConfig) SetDefaults() {
	*c = MySQLConfig{
		ShardStrategy:                "standard",
		LookupPool:                   "ShardLookup",
		LookupCacheMaxItems:          1 << 20,
		Timeout:                      10 * time.Second,
		MaxIdleConnsPerServer:        2,
		AllowNullableColumns:         true,
		CacheStore:                   "mem",
		CacheStoreMemMaxItems:        10485760,
		CacheStoreMemMaxBytes:        256 << 20,
		CacheStoreRedisPool:          "db_cache",
		JSONMergeMaxOutstandingItems: 8388608,
		HeartbeatInterval:            120,
		LookupCacheTTL:               60 * time.Second,
		VbucketSize:                  200000,
		ConnMaxLifetime:              5 * time.Minute,
		QueryTimeout:                 60 * time.Second,
	}
	c.Breaker.SetDefaults()
}

// Validate checks the section and fills in derived defaults; prefix is its key path.
func (c *MySQLConfig) Validate(prefix string) error {
	if c.MaxConnsPerServer == 0 {
		c.MaxConnsPerServer = 5 * c.MaxIdleConnsPerServer
	}
	if c.MaxWaitingCalls < 0 {
		return fmt.Errorf("%s.max_waiting_calls: must not be negative, got %d", prefix, c.MaxWaitingCalls)
	}
	c.MaxWaitingCalls = waitingBound(c.MaxWaitingCalls, c.MaxConnsPerServer)
	if err := oneOf(prefix+".shard_strategy", c.ShardStrategy, "standard", "vbucket"); err != nil {
		return err
	}
	if err := oneOf(prefix+".cache_store", c.CacheStore, "mem", "redis"); err != nil {
		return err
	}
	for _, n := range []struct {
		key string
		v   int
	}{
		{"lookup_cache_max_items", c.LookupCacheMaxItems},
		{"max_idle_conns_per_server", c.MaxIdleConnsPerServer},
		{"max_conns_per_server", c.MaxConnsPerServer},
		{"cache_prepare_stmt_max_items", c.CachePrepareStmtMaxItems},
		{"cache_store_mem_max_items", c.CacheStoreMemMaxItems},
		{"json_merge_max_outstanding_items", c.JSONMergeMaxOutstandingItems},
		{"heartbeat_interval", c.HeartbeatInterval},
	} {
		if n.v < 0 {
			return fmt.Errorf("%s.%s: must not be negative, got %d", prefix, n.key, n.v)
		}
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"timeout", c.Timeout}, {"max_idle_time", c.MaxIdleTime}, {"lookup_cache_ttl", c.LookupCacheTTL},
		{"conn_max_lifetime", c.ConnMaxLifetime}, {"query_timeout", c.QueryTimeout}, {"cache_ttl", c.CacheTTL}} {
		if d.v < 0 {
			return fmt.Errorf("%s.%s: must not be negative, got %s", prefix, d.key, d.v)
		}
	}
	if c.VbucketSize < 1 {
		return fmt.Errorf("%s.vbucket_size: must be at least 1, got %d", prefix, c.VbucketSize)
	}
	if c.LookupCacheMaxItems < 1 {
		return fmt.Errorf("%s.lookup_cache_max_items: must be at least 1, got %d", prefix, c.LookupCacheMaxItems)
	}
	if c.CacheStoreMemMaxBytes < 1<<20 {
		return fmt.Errorf("%s.cache_store_mem_max_bytes: must be at least 1048576 (1 MiB), got %d", prefix, c.CacheStoreMemMaxBytes)
	}
	if c.CacheStoreMemMaxItems < 1 {
		return fmt.Errorf("%s.cache_store_mem_max_items: must be at least 1, got %d", prefix, c.CacheStoreMemMaxItems)
	}
	for _, name := range append(append([]string{c.LookupPool, c.DefaultLookupTable}, c.GlobalPools...), lookupTables(c.LookupTables)...) {
		if name != "" && !IsIdentifier(name) {
			return fmt.Errorf("%s: %q is not a plain identifier (letters, digits, _, $)", prefix, name)
		}
	}
	if err := validateEntries(prefix, c.Servers, func(s MySQLServerConfig) serverEntry { return serverEntry{s.Pool, s.Host, s.DB, s.Port} }); err != nil {
		return err
	}
	if _, err := c.modes(prefix); err != nil {
		return err
	}
	return c.Breaker.Validate(prefix + ".breaker")
}

// Modes returns the switched pools of the section, by the name calls give:
// a global pool, or a sharded pool (every <pool><n> entry) → mode.
func (c *MySQLConfig) Modes() map[string]Mode {
	m, _ := c.modes("servants.mysql")
	return m
}

func (c *MySQLConfig) modes(prefix string) (map[string]Mode, error) {
	return modesOf(len(c.Servers), func(i int) (string, []string, Mode) {
		s := c.Servers[i]
		return fmt.Sprintf("%s.servers[%d].mode", prefix, i), []string{c.CallPool(s.Pool)}, s.Mode
	})
}

// CallPool is the pool name calls give to reach the server entry named
// entry: a global pool's own name, or a shard's sharded pool (the name
// without its trailing digits: "UserShard3" → "UserShard").
func (c *MySQLConfig) CallPool(entry string) string {
	if sharded := strings.TrimRight(entry, "0123456789"); sharded != entry && sharded != "" && !slices.Contains(c.GlobalPools, entry) {
		return sharded
	}
	return entry
}

func lookupTables(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k, v)
	}
	return out
}

// IsIdentifier reports whether s is a plain SQL identifier: 1..64 bytes of
// ASCII letters, digits, '_' and '$', so it can be quoted with backticks safely.
func IsIdentifier(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '$') {
			return false
		}
	}
	return true
}
