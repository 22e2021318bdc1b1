package servant

import (
	"fmt"
	"time"

	"github.com/fae-go/fae/cache"
	"github.com/fae-go/fae/pool"
	"github.com/fae-go/fae/proxy"
)

// Config is the servants section of faed.cf. A nil backend section means that
// backend is off; its methods then fail with "<name> is not configured (servants.<key>)".
type Config struct {
	IdgenWorkerID       int           `cf:"idgen_worker_id"`        // worker id in every id, 0..31; default 1
	SessionMaxItems     int           `cf:"session_max_items"`      // rid sessions tracked; default 20480
	CallSlowThreshold   time.Duration `cf:"call_slow_threshold"`    // calls slower are logged and counted; default 2s; 0 = off
	StatsOutputInterval time.Duration `cf:"stats_output_interval"`  // servant stats log line; default 10m; 0 = off
	ProfilerRate        int           `cf:"profiler_rate"`          // rids traced per 10000; default 1
	ProfilerMaxBodySize int           `cf:"profiler_max_body_size"` // bytes of call details logged; default 1024

	// MaxReplyBytes is rpc.max_reply_bytes, set by the config package: the
	// bytes one backend reply may hold (pool.Limits). 0 = no limit.
	MaxReplyBytes int `cf:"-"`
	// Plugins is plugin.plugins, set by the config package: the plugin chain
	// of every call (plugin.go), in order. Nil = none.
	Plugins []PluginSpec `cf:"-"`
	// HostMaxCallPerMinute is rpc.host_max_call_per_minute, set by the config
	// package: the calls per minute RateLimiter lets each client host make.
	// Default 6000 (the original's sample value).
	HostMaxCallPerMinute int `cf:"-"`

	Proxy    *proxy.Config        `cf:"proxy"`
	Lcache   *LcacheConfig        `cf:"lcache"`
	Lock     *LockConfig          `cf:"lock"`
	Mysql    *pool.MySQLConfig    `cf:"mysql"`
	Mongodb  *pool.MongoConfig    `cf:"mongodb"`
	Redis    *pool.RedisConfig    `cf:"redis"`
	Memcache *pool.MemcacheConfig `cf:"memcache"`
	// Couchbase is accepted so that original configs load; couchbase is not served.
	Couchbase map[string]any `cf:"couchbase"`
}

// SetDefaults fills in the original fae's defaults.
func (c *Config) SetDefaults() {
	*c = Config{IdgenWorkerID: 1, SessionMaxItems: 20480, CallSlowThreshold: 2 * time.Second,
		StatsOutputInterval: 10 * time.Minute, ProfilerRate: 1, ProfilerMaxBodySize: 1024,
		HostMaxCallPerMinute: DefaultHostMaxCallPerMinute}
}

// LcacheConfig is the servants.lcache section: the node-local cache of lc_*,
// bounded by items and by bytes (the least recently used go first).
type LcacheConfig struct {
	// MaxItems (max_items): items kept at most. Default 1073741824 (original fae).
	MaxItems int `cf:"max_items"`
	// MaxBytes (max_bytes): bytes of keys and values kept at most, each entry
	// also counting a fixed overhead. Default 256 MiB (new: the original
	// counted items only, so 1 MiB values could grow it without bound).
	MaxBytes int64 `cf:"max_bytes"`
	// MaxItemBytes (max_item_bytes): the largest value lc_set accepts; a larger
	// one is refused with both numbers. At most max_bytes/32 (one shard's
	// budget). Default 1 MiB.
	MaxItemBytes int `cf:"max_item_bytes"`
}

// Defaults of servants.lcache.
const (
	DefaultLcacheMaxItems     = 1 << 30   // original fae
	DefaultLcacheMaxBytes     = 256 << 20 // 256 MiB
	DefaultLcacheMaxItemBytes = 1 << 20   // 1 MiB
)

// SetDefaults fills in the defaults.
func (c *LcacheConfig) SetDefaults() {
	*c = LcacheConfig{MaxItems: DefaultLcacheMaxItems, MaxBytes: DefaultLcacheMaxBytes, MaxItemBytes: DefaultLcacheMaxItemBytes}
}

// LockConfig is the servants.lock section: the lock table of lock/unlock.
type LockConfig struct {
	MaxItems int           `cf:"max_items"` // locks kept at most (LRU); default 1048576
	Expires  time.Duration `cf:"expires"`   // a lock older than this is taken over; default 10s; 0 = never
	// MaxBytes bounds the bytes of the keys of the locks held (bytes; default
	// 64 MiB; 0 = none): the table keeps each held key in memory, and
	// max_items alone let 1 MB keys fill gigabytes. Not in the original.
	MaxBytes int64 `cf:"max_bytes"`
}

// SetDefaults fills in the original fae's defaults (max_bytes is fae-go's).
func (c *LockConfig) SetDefaults() {
	*c = LockConfig{MaxItems: 1 << 20, Expires: 10 * time.Second, MaxBytes: 64 << 20}
}

// Validate checks every key and backend section; prefix is "servants".
func (c *Config) Validate(prefix string) error {
	switch {
	case c.IdgenWorkerID < 0 || c.IdgenWorkerID > maxWorkerID:
		return fmt.Errorf("%s.idgen_worker_id: must be 0..%d, got %d", prefix, maxWorkerID, c.IdgenWorkerID)
	case c.SessionMaxItems < 1:
		return fmt.Errorf("%s.session_max_items: must be at least 1, got %d", prefix, c.SessionMaxItems)
	case c.CallSlowThreshold < 0:
		return fmt.Errorf("%s.call_slow_threshold: must not be negative, got %s", prefix, c.CallSlowThreshold)
	case c.StatsOutputInterval < 0:
		return fmt.Errorf("%s.stats_output_interval: must not be negative, got %s", prefix, c.StatsOutputInterval)
	case c.ProfilerRate < 0 || c.ProfilerRate > 10000:
		return fmt.Errorf("%s.profiler_rate: must be 0..10000 (per 10000 rids), got %d", prefix, c.ProfilerRate)
	case c.ProfilerMaxBodySize < 0:
		return fmt.Errorf("%s.profiler_max_body_size: must not be negative, got %d", prefix, c.ProfilerMaxBodySize)
	}
	if l := c.Lcache; l != nil {
		switch {
		case l.MaxItems < 1:
			return fmt.Errorf("%s.lcache.max_items: must be at least 1, got %d", prefix, l.MaxItems)
		case l.MaxBytes < 1<<20:
			return fmt.Errorf("%s.lcache.max_bytes: must be at least 1048576 (1 MiB), got %d", prefix, l.MaxBytes)
		case l.MaxItemBytes < 1 || int64(l.MaxItemBytes) > l.MaxBytes/cache.DefaultShards:
			return fmt.Errorf("%s.lcache.max_item_bytes: must be 1..%d (max_bytes/%d, one shard's budget), got %d",
				prefix, l.MaxBytes/cache.DefaultShards, cache.DefaultShards, l.MaxItemBytes)
		}
	}
	if c.Lock != nil && (c.Lock.MaxItems < 1 || c.Lock.Expires < 0 || c.Lock.MaxBytes < 0) {
		return fmt.Errorf("%s.lock: max_items must be at least 1, expires and max_bytes not negative", prefix)
	}
	for _, sec := range []struct {
		key     string
		present bool
		check   func(string) error
	}{
		{"proxy", c.Proxy != nil, func(p string) error { return c.Proxy.Validate(p) }},
		{"mysql", c.Mysql != nil, func(p string) error { return c.Mysql.Validate(p) }},
		{"mongodb", c.Mongodb != nil, func(p string) error { return c.Mongodb.Validate(p) }},
		{"redis", c.Redis != nil, func(p string) error { return c.Redis.Validate(p) }},
		{"memcache", c.Memcache != nil, func(p string) error { return c.Memcache.Validate(p) }},
	} {
		if sec.present {
			if err := sec.check(prefix + "." + sec.key); err != nil {
				return err
			}
		}
	}
	return nil
}
