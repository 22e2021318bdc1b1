// This file holds the servants.proxy section, with the original fae's keys and
// defaults and a breaker subsection of its own.

package proxy

import (
	"fmt"
	"time"

	"github.com/fae-go/fae/pool"
)

// IOTimeoutWhenZero is the bound of one forwarded call when io_timeout is 0.
// The original's sample config has `io_timeout: 0s`, which there meant no
// timeout at all: a call stuck on a frozen peer blocked forever (ORIGINAL-FAE
// §5.2). Here 0 means this bound (issue 8), so a forwarded call always ends.
const IOTimeoutWhenZero = 5 * time.Second

// Config is the servants.proxy section: one connection pool per peer.
type Config struct {
	// PoolCapacity (pool_capacity) is the number of connections to one peer,
	// open or being dialled, at most. Default 10. (The original also retried a
	// borrow that many times, each a fresh connect; here a call dials at most once.)
	PoolCapacity int `cf:"pool_capacity"`
	// IdleTimeout (idle_timeout) closes a pooled connection unused for this
	// long; 0 = never. Default 0. Whatever it is, a connection the peer has
	// closed meanwhile (its rpc.session_timeout) is seen and dropped when it is
	// next borrowed, before any call is written to it.
	IdleTimeout time.Duration `cf:"idle_timeout"`
	// IOTimeout (io_timeout) bounds dialling a peer, and one forwarded call from
	// writing its request to reading the end of its reply. 0 means
	// IOTimeoutWhenZero (5s), never "no bound". Default 10s.
	IOTimeout time.Duration `cf:"io_timeout"`
	// BorrowTimeout (borrow_timeout) is the longest wait for a connection while
	// pool_capacity connections to the peer are busy; then the call fails with
	// pool.KindBusy naming the peer. 0 = do not wait. Default 10s. (The original
	// used it as a watchdog closing connections borrowed longer than this;
	// io_timeout bounds a call here.)
	BorrowTimeout time.Duration `cf:"borrow_timeout"`
	// DiagnosticInterval (diagnostic_interval) is how often faed logs the pools'
	// figures (Proxies.Stats); 0 = never. Default 5s. This package does not read it.
	DiagnosticInterval time.Duration `cf:"diagnostic_interval"`
	// TCPNoDelay (tcp_nodelay) turns Nagle's algorithm off on peer sockets. Default true.
	TCPNoDelay bool `cf:"tcp_nodelay"`
	// BufferSize (buffer_size) is the size in bytes of each peer connection's
	// read buffer and of its write buffer. Default 4096.
	BufferSize int `cf:"buffer_size"`
	// PipeConnections (pipe_connections) is the number of pipelined
	// connections to one peer, shared by every lock and unlock forwarded to it
	// (many calls in flight on each, their requests written in batches; calls
	// gather on the first and spill to the next at 64 in flight: pipes); 0
	// sends them on the pool_capacity connections like the other methods.
	// Default 2 (new in this fae), at most 64. A call on them is bounded by
	// io_timeout as any other; one that times out closes its connection and
	// fails every call pending on it (each may or may not have run).
	PipeConnections int `cf:"pipe_connections"`
	// Breaker (breaker) is the circuit breaker in front of each peer (new in this
	// fae; pool.BreakerConfig's defaults: failure_allowance 5, retry_interval 10s).
	// A dead or frozen peer opens it after failure_allowance failed dials or
	// timed-out calls (a timeout counts when the peer also fails a health check);
	// calls to it then fail at once with pool.KindBreakerOpen.
	Breaker pool.BreakerConfig `cf:"breaker"`
}

// SetDefaults fills in the original fae's defaults, and the breaker's.
func (c *Config) SetDefaults() {
	*c = Config{PoolCapacity: 10, IOTimeout: 10 * time.Second, BorrowTimeout: 10 * time.Second,
		DiagnosticInterval: 5 * time.Second, TCPNoDelay: true, BufferSize: 4096, PipeConnections: 2}
	c.Breaker.SetDefaults()
}

// Validate checks ranges; prefix is the key path of the section.
func (c *Config) Validate(prefix string) error {
	if c.PoolCapacity < 1 {
		return fmt.Errorf("%s.pool_capacity: must be at least 1, got %d", prefix, c.PoolCapacity)
	}
	if c.BufferSize < 1 {
		return fmt.Errorf("%s.buffer_size: must be at least 1, got %d", prefix, c.BufferSize)
	}
	if c.PipeConnections < 0 || c.PipeConnections > 64 {
		return fmt.Errorf("%s.pipe_connections: must be 0 to 64, got %d", prefix, c.PipeConnections)
	}
	if c.IdleTimeout < 0 || c.IOTimeout < 0 || c.BorrowTimeout < 0 || c.DiagnosticInterval < 0 {
		return fmt.Errorf("%s: timeouts and intervals must not be negative", prefix)
	}
	return c.Breaker.Validate(prefix + ".breaker")
}

// CallTimeout is the bound of one forwarded call and of one dial: io_timeout,
// or IOTimeoutWhenZero when io_timeout is 0.
func (c *Config) CallTimeout() time.Duration {
	if c.IOTimeout == 0 {
		return IOTimeoutWhenZero
	}
	return c.IOTimeout
}
