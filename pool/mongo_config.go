package pool

import (
	"fmt"
	"time"
)

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
	// Mode (mode): "" (normal), "read_only" (insert, update, upsert, delete,
	// find_and_modify refused with TMongoReadOnly) or "degraded" (every call
	// refused with TMongoDegrade, no server asked); see Mode.
	Mode Mode `cf:"mode"`
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
	// MaxWaitingCalls (max_waiting_calls) caps the calls waiting for a
	// connection of one server entry (all max_conns_per_server in use, the
	// driver's wait queue); one more fails at once with KindBusy ("busy: 40
	// calls already waiting for a connection to 127.0.0.1:27017
	// (max_waiting_calls 40)"), which the breaker does not count. 0 = 4 ×
	// max_conns_per_server (DefaultWaitingPerConn); no bound when
	// max_conns_per_server is unlimited (nothing waits).
	MaxWaitingCalls int `cf:"max_waiting_calls"`
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
	if c.MaxWaitingCalls < 0 {
		return fmt.Errorf("%s.max_waiting_calls: must not be negative, got %d", prefix, c.MaxWaitingCalls)
	}
	c.MaxWaitingCalls = waitingBound(c.MaxWaitingCalls, c.MaxConnsPerServer)
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
	if err := validateEntries(prefix, c.Servers, func(s MongoServerConfig) serverEntry { return serverEntry{s.Pool, s.Host, s.DB, s.Port} }); err != nil {
		return err
	}
	if _, err := c.modes(prefix); err != nil {
		return err
	}
	return c.Breaker.Validate(prefix + ".breaker")
}

// Modes returns the switched server entries of the section (entry pool → mode):
// a call's mode is that of the entry its pool and shard id choose (Mongo.ServerName).
func (c *MongoConfig) Modes() map[string]Mode {
	m, _ := c.modes("servants.mongodb")
	return m
}

func (c *MongoConfig) modes(prefix string) (map[string]Mode, error) {
	return modesOf(len(c.Servers), func(i int) (string, []string, Mode) {
		return fmt.Sprintf("%s.servers[%d].mode", prefix, i), []string{c.Servers[i].Pool}, c.Servers[i].Mode
	})
}
