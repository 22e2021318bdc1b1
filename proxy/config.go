// Package proxy holds pooled Thrift clients to remote faed peers.
//
// This file holds the servants.proxy section with the original fae's keys and
// defaults; the pools come with the cluster issue.
package proxy

import (
	"fmt"
	"time"
)

// Config is the servants.proxy section: connection pools to peers.
type Config struct {
	PoolCapacity       int           `cf:"pool_capacity"`       // connections per peer at most; default 10
	IdleTimeout        time.Duration `cf:"idle_timeout"`        // a pooled connection idle longer is redialled; 0 = never
	IOTimeout          time.Duration `cf:"io_timeout"`          // dial and read/write timeout to a peer; default 10s; 0 = none
	BorrowTimeout      time.Duration `cf:"borrow_timeout"`      // longest wait for a free connection; default 10s
	DiagnosticInterval time.Duration `cf:"diagnostic_interval"` // pool health log interval; default 5s; 0 = off
	TCPNoDelay         bool          `cf:"tcp_nodelay"`         // Nagle off on peer sockets; default true
	BufferSize         int           `cf:"buffer_size"`         // bytes of the buffered transport; default 4096
}

// SetDefaults fills in the original fae's defaults.
func (c *Config) SetDefaults() {
	*c = Config{PoolCapacity: 10, IOTimeout: 10 * time.Second, BorrowTimeout: 10 * time.Second,
		DiagnosticInterval: 5 * time.Second, TCPNoDelay: true, BufferSize: 4096}
}

// Validate checks ranges; prefix is the key path of the section.
func (c *Config) Validate(prefix string) error {
	if c.PoolCapacity < 1 {
		return fmt.Errorf("%s.pool_capacity: must be at least 1, got %d", prefix, c.PoolCapacity)
	}
	if c.BufferSize < 1 {
		return fmt.Errorf("%s.buffer_size: must be at least 1, got %d", prefix, c.BufferSize)
	}
	if c.IdleTimeout < 0 || c.IOTimeout < 0 || c.BorrowTimeout < 0 || c.DiagnosticInterval < 0 {
		return fmt.Errorf("%s: timeouts and intervals must not be negative", prefix)
	}
	return nil
}
