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

// Mode is an operator's switch on one backend pool: the mode key of the
// pool's config entries, or POST /svt/pool/mode. New in this fae (the
// original declared TMongoDegrade and TMongoReadOnly and never threw them).
type Mode string

// The modes. ModeNormal serves every call; ModeReadOnly refuses the calls
// that write (each backend says which: servant package); ModeDegraded refuses
// every call without asking any server. A refusal is a *Error of kind
// KindModeRefused.
const (
	ModeNormal   Mode = ""
	ModeReadOnly Mode = "read_only"
	ModeDegraded Mode = "degraded"
)

// ParseMode returns the Mode named s: "", "normal" (both ModeNormal),
// "read_only" or "degraded"; else an error naming key and the values allowed.
func ParseMode(key, s string) (Mode, error) {
	switch Mode(s) {
	case ModeNormal, "normal":
		return ModeNormal, nil
	case ModeReadOnly, ModeDegraded:
		return Mode(s), nil
	}
	return "", fmt.Errorf(`%s: must be one of "" (normal), "read_only", "degraded", got %q`, key, s)
}

// setMode records the mode of one config entry of pool in modes (pool → mode),
// checking the value and that every entry of the pool agrees; key is the
// entry's mode key, for messages.
func setMode(modes map[string]Mode, seen map[string]bool, key, pool string, m Mode) error {
	if _, err := ParseMode(key, string(m)); err != nil {
		return err
	}
	if m == "normal" {
		m = ModeNormal
	}
	if seen[pool] && modes[pool] != m {
		return fmt.Errorf("%s: %q, but another server entry of pool %q has mode %q: every entry of a pool must have the same mode",
			key, m, pool, modes[pool])
	}
	seen[pool] = true
	modes[pool] = m
	return nil
}

// onlySwitched drops the pools whose mode is ModeNormal.
func onlySwitched(modes map[string]Mode) map[string]Mode {
	for p, m := range modes {
		if m == ModeNormal {
			delete(modes, p)
		}
	}
	return modes
}

// modesOf reads the mode keys of n config entries: entry(i) gives the i-th
// entry's mode key (for messages), the pools it belongs to (as calls name
// them) and its mode. It returns the switched pools (pool → mode) or the
// first bad value or disagreement.
func modesOf(n int, entry func(i int) (key string, pools []string, m Mode)) (map[string]Mode, error) {
	modes, seen := map[string]Mode{}, map[string]bool{}
	for i := range n {
		key, pools, m := entry(i)
		for _, p := range pools {
			if err := setMode(modes, seen, key, p, m); err != nil {
				return nil, err
			}
		}
	}
	return onlySwitched(modes), nil
}
