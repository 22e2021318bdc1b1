package pool

import (
	"fmt"
	"time"
)

// MemcacheServerConfig is one entry of servants.memcache.servers.
type MemcacheServerConfig struct {
	Host string `cf:"host"` // required
	Port Port   `cf:"port"` // required; a number or a numeric string, as in the original sample
	Pool string `cf:"pool"` // default "default"
	// Mode (mode): "" (normal), "read_only" (set, add, delete, increment
	// refused) or "degraded" (every call refused, no server asked): the mode of
	// the pool, which every entry of the pool must state alike; see Mode.
	Mode Mode `cf:"mode"`
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
	// kept per server. Default 3; 0 = gomemcache's default, 2. With coalesce,
	// one of them is the gets' connection (two in all when this is 1).
	MaxIdleConnsPerServer int `cf:"max_idle_conns_per_server"`
	// MaxConnsPerServer (max_conns_per_server) caps the connections open to one
	// server; a call waits up to timeout for one. 0 = 10 × max_idle_conns_per_server.
	MaxConnsPerServer int `cf:"max_conns_per_server"`
	// MaxWaitingCalls (max_waiting_calls) caps the calls waiting for a
	// connection of one server (all max_conns_per_server in use); one more
	// fails at once with KindBusy ("busy: 12 calls already waiting for a
	// connection to 127.0.0.1:11211 (max_waiting_calls 12)"), which the
	// breaker does not count. 0 = 4 × max_conns_per_server (DefaultWaitingPerConn).
	MaxWaitingCalls int `cf:"max_waiting_calls"`
	// ReplicaNum (replica_num) is the number of servers of its pool a key is
	// written to: its own server and the next ones in config order (at most the
	// pool's servers). Reads take the first of them that answers. Default 1.
	ReplicaNum int           `cf:"replica_num"`
	Breaker    BreakerConfig `cf:"breaker"`
	// Coalesce (coalesce): concurrent gets of one server share round trips
	// (issue 12): a get that finds none in flight is sent at once; those
	// arriving meanwhile go out together in the next, one multi-get of up to
	// max_conns_per_server keys, each caller answered with its own item or
	// miss, its own timeout counted from its start; a failed or timed-out
	// round trip is sent again once, on a fresh connection, for the gets with
	// time left. Writes keep a round trip each, never retried.
	// false = a connection per get, as the original. Default true.
	Coalesce bool `cf:"coalesce"`
}

// SetDefaults fills in the original fae's defaults.
func (c *MemcacheConfig) SetDefaults() {
	*c = MemcacheConfig{HashStrategy: "standard", Timeout: 4 * time.Second, MaxIdleConnsPerServer: 3, ReplicaNum: 1, Coalesce: true}
	c.Breaker.SetDefaults()
}

// Validate checks the section and fills in derived defaults; prefix is its key path.
func (c *MemcacheConfig) Validate(prefix string) error {
	if c.MaxConnsPerServer == 0 {
		c.MaxConnsPerServer = 10 * c.MaxIdleConnsPerServer
	}
	if c.MaxWaitingCalls < 0 {
		return fmt.Errorf("%s.max_waiting_calls: must not be negative, got %d", prefix, c.MaxWaitingCalls)
	}
	c.MaxWaitingCalls = waitingBound(c.MaxWaitingCalls, c.MaxConnsPerServer)
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
	if _, err := c.modes(prefix); err != nil {
		return err
	}
	return c.Breaker.Validate(prefix + ".breaker")
}

// Modes returns the switched pools of the section (pool name → mode).
func (c *MemcacheConfig) Modes() map[string]Mode {
	m, _ := c.modes("servants.memcache")
	return m
}

func (c *MemcacheConfig) modes(prefix string) (map[string]Mode, error) {
	return modesOf(len(c.Servers), func(i int) (string, []string, Mode) {
		return fmt.Sprintf("%s.servers[%d].mode", prefix, i), []string{c.Servers[i].Pool}, c.Servers[i].Mode
	})
}
