package pool

import (
	"fmt"
	"strings"
	"time"
)

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
	// Mode (mode): "" (normal), "read_only" (commands that write refused) or
	// "degraded" (every command refused, no server asked); see Mode.
	Mode Mode `cf:"mode"`
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
	// MaxWaitingCalls (max_waiting_calls) caps the calls waiting for a
	// connection of one server (all its max_active in use); one more fails at
	// once with KindBusy ("busy: 80 calls already waiting for a connection to
	// 127.0.0.1:6379 (max_waiting_calls 80)"), which the breaker does not
	// count. 0 = 4 × the server's max_active (DefaultWaitingPerConn); no bound
	// for a server whose max_active is 0 (unlimited: nothing waits).
	MaxWaitingCalls int           `cf:"max_waiting_calls"`
	Breaker         BreakerConfig `cf:"breaker"`
	// Pipeline (pipeline): the commands that neither block nor change the
	// state of the connection share rdPipeConns (2) connections per server,
	// taken from its max_active, with pipelining (issue 12); false = every
	// command on a connection of its own, as the original fae. Servers whose
	// max_active is under 4 do not pipeline. Default true.
	Pipeline bool `cf:"pipeline"`
}

// DefaultRedisDenyCommands is the default of servants.redis.deny_commands: commands
// that wipe, reconfigure, stop or scan a whole server, or hold a connection forever.
var DefaultRedisDenyCommands = []string{"FLUSHALL", "FLUSHDB", "CONFIG", "SHUTDOWN", "DEBUG", "KEYS",
	"SCRIPT", "MONITOR", "SLAVEOF", "REPLICAOF", "MIGRATE", "CLIENT", "BGSAVE", "SAVE"}

// SetDefaults fills in the breaker defaults (original fae) and the defaults of the
// keys this version adds (deny_commands, connect_timeout 2s, io_timeout 4s, borrow_timeout 2s,
// pipeline true).
func (c *RedisConfig) SetDefaults() {
	*c = RedisConfig{DenyCommands: append([]string(nil), DefaultRedisDenyCommands...),
		ConnectTimeout: 2 * time.Second, IOTimeout: 4 * time.Second, BorrowTimeout: 2 * time.Second,
		Pipeline: true}
	c.Breaker.SetDefaults()
}

// Validate checks the section and fills in derived defaults; prefix is its key path.
func (c *RedisConfig) Validate(prefix string) error {
	if c.ConnectTimeout <= 0 || c.IOTimeout <= 0 || c.BorrowTimeout <= 0 {
		return fmt.Errorf("%s: connect_timeout, io_timeout and borrow_timeout must be positive", prefix)
	}
	if c.MaxWaitingCalls < 0 {
		return fmt.Errorf("%s.max_waiting_calls: must not be negative, got %d", prefix, c.MaxWaitingCalls)
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
	if _, err := c.modes(prefix); err != nil {
		return err
	}
	return c.Breaker.Validate(prefix + ".breaker")
}

// Modes returns the switched pools of the section (pool name → mode).
func (c *RedisConfig) Modes() map[string]Mode {
	m, _ := c.modes("servants.redis")
	return m
}

func (c *RedisConfig) modes(prefix string) (map[string]Mode, error) {
	return modesOf(len(c.Pools), func(i int) (string, []string, Mode) {
		return fmt.Sprintf("%s.pools[%d].mode", prefix, i), []string{c.Pools[i].Name}, c.Pools[i].Mode
	})
}
