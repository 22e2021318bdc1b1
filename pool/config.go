// This file holds what the backends' config sections share (the breaker section,
// ports, checks); each backend's own section is in <backend>_config.go, with the
// original fae's keys and defaults.

package pool

import (
	"fmt"
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

// serverEntry is what validateEntries checks of a MySQL or MongoDB server entry.
type serverEntry struct {
	pool, host, db string
	port           Port
}

// validateEntries checks the server entries of a section (prefix.servers):
// pool, host and db are required, the port valid, and each pool named once.
func validateEntries[T any](prefix string, servers []T, entry func(T) serverEntry) error {
	seen := map[string]bool{}
	for i, srv := range servers {
		s := entry(srv)
		p := fmt.Sprintf("%s.servers[%d]", prefix, i)
		if err := required(p, "pool", s.pool, "host", s.host, "db", s.db); err != nil {
			return err
		}
		if err := s.port.Validate(p + ".port"); err != nil {
			return err
		}
		if seen[s.pool] {
			return fmt.Errorf("%s.pool: %q is listed twice", p, s.pool)
		}
		seen[s.pool] = true
	}
	return nil
}
