// This file holds the configuration sections of the backends (servants.mysql,
// servants.mongodb, servants.redis, servants.memcache) with the original fae's
// keys and defaults.

package pool

import (
	"fmt"
	"strings"
	"time"
)

// BreakerConfig is a `breaker` section: a circuit breaker in front of one server.
type BreakerConfig struct {
	// FailureAllowance (failure_allowance) is the number of consecutive connection or
	// server failures that open the breaker. Default 5 (original fae).
	FailureAllowance int `cf:"failure_allowance"`
	// RetryInterval (retry_interval) is how long an open breaker stays open before it
	// lets one probe call through. Default 10s (original fae).
	RetryInterval time.Duration `cf:"retry_interval"`
}

// SetDefaults fills in the original fae's breaker defaults (5 failures, 10s).
func (c *BreakerConfig) SetDefaults() {
	*c = BreakerConfig{FailureAllowance: 5, RetryInterval: 10 * time.Second}
}

// Validate checks ranges; prefix is the key path of the section, for messages.
func (c *BreakerConfig) Validate(prefix string) error {
	if c.FailureAllowance < 1 {
		return fmt.Errorf("%s.failure_allowance: must be at least 1, got %d", prefix, c.FailureAllowance)
	}
	if c.RetryInterval <= 0 {
		return fmt.Errorf("%s.retry_interval: must be positive, got %s", prefix, c.RetryInterval)
	}
	return nil
}

// MySQLServerConfig is one entry of servants.mysql.servers: one MySQL server named by its pool.
type MySQLServerConfig struct {
	Pool     string `cf:"pool"`     // server name: a global pool or <sharded pool><shard id>; required
	Host     string `cf:"host"`     // required
	Port     Port   `cf:"port"`     // default 3306
	DB       string `cf:"db"`       // database name; required
	Username string `cf:"username"` // login user
	Password string `cf:"password"` // login password
	Charset  string `cf:"charset"`  // connection charset; default utf8
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
	Timeout                      time.Duration       `cf:"timeout"`                          // connect timeout; default 10s
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
	seen := map[string]bool{}
	for i, s := range c.Servers {
		p := fmt.Sprintf("%s.servers[%d]", prefix, i)
		if err := required(p, "pool", s.Pool, "host", s.Host, "db", s.DB); err != nil {
			return err
		}
		if err := s.Port.Validate(p + ".port"); err != nil {
			return err
		}
		if seen[s.Pool] {
			return fmt.Errorf("%s.pool: %q is listed twice", p, s.Pool)
		}
		seen[s.Pool] = true
	}
	return c.Breaker.Validate(prefix + ".breaker")
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

// MongoServerConfig is one entry of servants.mongodb.servers: one MongoDB server
// (or replica set) named by its pool; faed keeps one driver client per entry.
type MongoServerConfig struct {
	Pool         string `cf:"pool"`           // server name (see shard_strategy); required, unique
	Host         string `cf:"host"`           // required
	Port         Port   `cf:"port"`           // default 27017
	DB           string `cf:"db"`             // database of every collection (table) of the pool; required
	User         string `cf:"user"`           // when set, authenticate as user (source: db); the original ignored it
	Pass         string `cf:"pass"`           // password of user
	ReplicaSet   string `cf:"replicaSet"`     // replica set name; empty = connect directly to host:port
	ShardBaseNum int    `cf:"shard_base_num"` // accepted for compatibility; the section's key is used
}

// SetDefaults fills in port 27017 (original fae).
func (s *MongoServerConfig) SetDefaults() { *s = MongoServerConfig{Port: 27017} }

// MongoConfig is the servants.mongodb section. Absent = MongoDB off.
type MongoConfig struct {
	Servers []MongoServerConfig `cf:"servers"`
	// ShardBaseNum (shard_base_num): with shard_strategy standard, shard ids
	// per "db<n>" server. Default 100000.
	ShardBaseNum int `cf:"shard_base_num"`
	// ShardStrategy (shard_strategy) picks the server entry of a call:
	// legacy = the entry named like the pool (a leading "database." dropped);
	// standard = "db<shardId/shard_base_num+1>" for pools starting with "db",
	// else the entry named like the pool. Default legacy.
	ShardStrategy string `cf:"shard_strategy"`
	// ConnectTimeout (connect_timeout) bounds a TCP connect and the wait for a
	// usable server: a call to a dead server fails after it. Default 4s; must be positive.
	ConnectTimeout time.Duration `cf:"connect_timeout"`
	// IOTimeout (io_timeout) bounds each operation as a whole. Default 30s; 0 = none.
	IOTimeout time.Duration `cf:"io_timeout"`
	// MaxIdleConnsPerServer (max_idle_conns_per_server): default 2. Only feeds
	// the default of max_conns_per_server; the driver keeps idle connections itself.
	MaxIdleConnsPerServer int `cf:"max_idle_conns_per_server"`
	// MaxConnsPerServer (max_conns_per_server): open connections per server at
	// most (the driver's MaxPoolSize); more calls wait. 0 = 5 × max_idle_conns_per_server
	// (if that is 0 too: no limit).
	MaxConnsPerServer int `cf:"max_conns_per_server"`
	// HeartbeatInterval (heartbeat_interval): seconds between the driver's
	// checks of an idle server. Default 120; 0 = the driver's default (10 s).
	HeartbeatInterval int `cf:"heartbeat_interval"`
	// DebugProtocol, DebugHeartbeat (debug_protocol, debug_heartbeat) are
	// accepted for compatibility and unused.
	DebugProtocol  bool          `cf:"debug_protocol"`
	DebugHeartbeat bool          `cf:"debug_heartbeat"`
	Breaker        BreakerConfig `cf:"breaker"`
}

// SetDefaults fills in the original fae's defaults.
func (c *MongoConfig) SetDefaults() {
	*c = MongoConfig{ShardBaseNum: 100000, ShardStrategy: "legacy", ConnectTimeout: 4 * time.Second,
		IOTimeout: 30 * time.Second, MaxIdleConnsPerServer: 2, HeartbeatInterval: 120}
	c.Breaker.SetDefaults()
}

// Validate checks the section and fills in derived defaults; prefix is its key path.
func (c *MongoConfig) Validate(prefix string) error {
	if c.MaxConnsPerServer == 0 {
		c.MaxConnsPerServer = 5 * c.MaxIdleConnsPerServer
	}
	if err := oneOf(prefix+".shard_strategy", c.ShardStrategy, "legacy", "standard"); err != nil {
		return err
	}
	if c.ShardBaseNum < 1 {
		return fmt.Errorf("%s.shard_base_num: must be at least 1, got %d", prefix, c.ShardBaseNum)
	}
	if c.MaxIdleConnsPerServer < 0 || c.MaxConnsPerServer < 0 || c.HeartbeatInterval < 0 {
		return fmt.Errorf("%s: connection counts and heartbeat_interval must not be negative", prefix)
	}
	if c.ConnectTimeout <= 0 {
		return fmt.Errorf("%s.connect_timeout: must be positive, got %s", prefix, c.ConnectTimeout)
	}
	if c.IOTimeout < 0 {
		return fmt.Errorf("%s.io_timeout: must not be negative, got %s", prefix, c.IOTimeout)
	}
	seen := map[string]bool{}
	for i, s := range c.Servers {
		p := fmt.Sprintf("%s.servers[%d]", prefix, i)
		if err := required(p, "pool", s.Pool, "host", s.Host, "db", s.DB); err != nil {
			return err
		}
		if err := s.Port.Validate(p + ".port"); err != nil {
			return err
		}
		if seen[s.Pool] {
			return fmt.Errorf("%s.pool: %q is listed twice", p, s.Pool)
		}
		seen[s.Pool] = true
	}
	return c.Breaker.Validate(prefix + ".breaker")
}

// RedisServerConfig is one server of a Redis pool.
type RedisServerConfig struct {
	Addr        string        `cf:"addr"`         // host:port; required
	MaxIdle     int           `cf:"max_idle"`     // idle connections kept; default 10
	MaxActive   int           `cf:"max_active"`   // open connections at most; 0 = 2 × max_idle
	IdleTimeout time.Duration `cf:"idle_timeout"` // idle connections older than this are closed; default 10m; 0 = never
}

// SetDefaults fills in the original fae's defaults.
func (s *RedisServerConfig) SetDefaults() {
	*s = RedisServerConfig{MaxIdle: 10, IdleTimeout: 10 * time.Minute}
}

// RedisPoolConfig is one entry of servants.redis.pools.
type RedisPoolConfig struct {
	Name    string              `cf:"name"` // required
	Servers []RedisServerConfig `cf:"servers"`
}

// RedisConfig is the servants.redis section. Absent = Redis off.
type RedisConfig struct {
	Pools []RedisPoolConfig `cf:"pools"`
	// DenyCommands (deny_commands) are the commands refused before any server is
	// asked, case-insensitive. Default DefaultRedisDenyCommands; [] = allow all.
	DenyCommands []string `cf:"deny_commands"`
	// ConnectTimeout (connect_timeout) bounds dialling one server. Default 2s.
	ConnectTimeout time.Duration `cf:"connect_timeout"`
	// IOTimeout (io_timeout) bounds writing one command and reading its reply. Default 4s.
	IOTimeout time.Duration `cf:"io_timeout"`
	// BorrowTimeout (borrow_timeout) is how long a call waits for a connection when
	// max_active of its server are busy; then it fails (without tripping the breaker). Default 2s.
	BorrowTimeout time.Duration `cf:"borrow_timeout"`
	Breaker       BreakerConfig `cf:"breaker"`
}

// DefaultRedisDenyCommands is the default of servants.redis.deny_commands: commands
// that wipe, reconfigure, stop or scan a whole server, or hold a connection forever.
var DefaultRedisDenyCommands = []string{"FLUSHALL", "FLUSHDB", "CONFIG", "SHUTDOWN", "DEBUG", "KEYS",
	"SCRIPT", "MONITOR", "SLAVEOF", "REPLICAOF", "MIGRATE", "CLIENT", "BGSAVE", "SAVE"}

// SetDefaults fills in the breaker defaults (original fae) and the defaults of the
// keys this version adds (deny_commands, connect_timeout 2s, io_timeout 4s, borrow_timeout 2s).
func (c *RedisConfig) SetDefaults() {
	*c = RedisConfig{DenyCommands: append([]string(nil), DefaultRedisDenyCommands...),
		ConnectTimeout: 2 * time.Second, IOTimeout: 4 * time.Second, BorrowTimeout: 2 * time.Second}
	c.Breaker.SetDefaults()
}

// Validate checks the section and fills in derived defaults; prefix is its key path.
func (c *RedisConfig) Validate(prefix string) error {
	if c.ConnectTimeout <= 0 || c.IOTimeout <= 0 || c.BorrowTimeout <= 0 {
		return fmt.Errorf("%s: connect_timeout, io_timeout and borrow_timeout must be positive", prefix)
	}
	for i, cmd := range c.DenyCommands {
		if strings.TrimSpace(cmd) == "" {
			return fmt.Errorf("%s.deny_commands[%d]: empty command name", prefix, i)
		}
	}
	names := map[string]bool{}
	for i := range c.Pools {
		p := &c.Pools[i]
		pp := fmt.Sprintf("%s.pools[%d]", prefix, i)
		if p.Name == "" {
			return fmt.Errorf("%s.name: required", pp)
		}
		if names[p.Name] {
			return fmt.Errorf("%s.name: pool %q is listed twice", pp, p.Name)
		}
		names[p.Name] = true
		addrs := map[string]bool{}
		for j := range p.Servers {
			s := &p.Servers[j]
			sp := fmt.Sprintf("%s.servers[%d]", pp, j)
			if s.Addr == "" {
				return fmt.Errorf("%s.addr: required", sp)
			}
			if addrs[s.Addr] {
				return fmt.Errorf("%s.addr: %s is listed twice in pool %q", sp, s.Addr, p.Name)
			}
			addrs[s.Addr] = true
			if s.MaxActive == 0 {
				s.MaxActive = 2 * s.MaxIdle
			}
			if s.MaxIdle < 0 || s.MaxActive < 0 || s.IdleTimeout < 0 {
				return fmt.Errorf("%s: max_idle, max_active and idle_timeout must not be negative", sp)
			}
		}
	}
	return c.Breaker.Validate(prefix + ".breaker")
}

// MemcacheServerConfig is one entry of servants.memcache.servers.
type MemcacheServerConfig struct {
	Host string `cf:"host"` // required
	Port Port   `cf:"port"` // required; a number or a numeric string, as in the original sample
	Pool string `cf:"pool"` // default "default"
}

// SetDefaults fills in pool "default" (original fae).
func (s *MemcacheServerConfig) SetDefaults() { *s = MemcacheServerConfig{Pool: "default"} }

// MemcacheConfig is the servants.memcache section. Absent = memcache off.
type MemcacheConfig struct {
	Servers      []MemcacheServerConfig `cf:"servers"`
	HashStrategy string                 `cf:"hash_strategy"` // standard | consistent; default standard
	// Timeout (timeout) bounds dialling a server, each read and write of one
	// operation, and the wait for a free connection slot. Default 4s.
	Timeout time.Duration `cf:"timeout"`
	// MaxIdleConnsPerServer (max_idle_conns_per_server) are the idle connections
	// kept per server. Default 3; 0 = gomemcache's default, 2.
	MaxIdleConnsPerServer int `cf:"max_idle_conns_per_server"`
	// MaxConnsPerServer (max_conns_per_server) caps the connections open to one
	// server; a call waits up to timeout for one. 0 = 10 × max_idle_conns_per_server.
	MaxConnsPerServer int `cf:"max_conns_per_server"`
	// ReplicaNum (replica_num) is the number of servers of its pool a key is
	// written to: its own server and the next ones in config order (at most the
	// pool's servers). Reads take the first of them that answers. Default 1.
	ReplicaNum int           `cf:"replica_num"`
	Breaker    BreakerConfig `cf:"breaker"`
}

// SetDefaults fills in the original fae's defaults.
func (c *MemcacheConfig) SetDefaults() {
	*c = MemcacheConfig{HashStrategy: "standard", Timeout: 4 * time.Second, MaxIdleConnsPerServer: 3, ReplicaNum: 1}
	c.Breaker.SetDefaults()
}

// Validate checks the section and fills in derived defaults; prefix is its key path.
func (c *MemcacheConfig) Validate(prefix string) error {
	if c.MaxConnsPerServer == 0 {
		c.MaxConnsPerServer = 10 * c.MaxIdleConnsPerServer
	}
	if err := oneOf(prefix+".hash_strategy", c.HashStrategy, "standard", "consistent"); err != nil {
		return err
	}
	if c.ReplicaNum < 1 {
		return fmt.Errorf("%s.replica_num: must be at least 1, got %d", prefix, c.ReplicaNum)
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("%s.timeout: must be positive, got %s", prefix, c.Timeout)
	}
	if c.MaxIdleConnsPerServer < 0 || c.MaxConnsPerServer < 1 {
		return fmt.Errorf("%s: max_idle_conns_per_server must not be negative and max_conns_per_server must be at least 1, got %d and %d",
			prefix, c.MaxIdleConnsPerServer, c.MaxConnsPerServer)
	}
	seen := map[string]bool{}
	for i, s := range c.Servers {
		p := fmt.Sprintf("%s.servers[%d]", prefix, i)
		if err := required(p, "host", s.Host, "pool", s.Pool); err != nil {
			return err
		}
		if err := s.Port.Validate(p + ".port"); err != nil {
			return err
		}
		id := fmt.Sprintf("%s %s:%d", s.Pool, s.Host, s.Port)
		if seen[id] {
			return fmt.Errorf("%s: %s:%d is listed twice in pool %q", p, s.Host, s.Port, s.Pool)
		}
		seen[id] = true
	}
	return c.Breaker.Validate(prefix + ".breaker")
}

// Port is a TCP port, 1..65535. The config accepts a number or a numeric string
// (the original sample writes memcache ports as strings).
type Port int

// Validate checks the range; key is the key path, for messages.
func (p Port) Validate(key string) error {
	if p < 1 || p > 65535 {
		return fmt.Errorf("%s: must be a port 1..65535, got %d", key, p)
	}
	return nil
}

func oneOf(key, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("%s: must be one of %q, got %q", key, allowed, v)
}

// required checks name/value pairs for empty values.
func required(prefix string, kv ...string) error {
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			return fmt.Errorf("%s.%s: required", prefix, kv[i])
		}
	}
	return nil
}
