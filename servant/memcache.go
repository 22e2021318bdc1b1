package servant

import (
	"context"
	"errors"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/pool"
)

var errMemcacheOff = &NotConfiguredError{Name: "memcache", Key: "servants.memcache"}

// memcache is the memcache cluster of g, or the "not configured" error.
func (g *generation) memcache() (*pool.Memcache, error) {
	if g.mc == nil {
		return nil, errMemcacheOff
	}
	return g.mc, nil
}

// mcItem is the bytes and client flags of a TMemcacheData (nil = empty, flags 0).
// The flags are memcached's 32-bit client flags, carried bit for bit in the i32.
func mcItem(v *rpc.TMemcacheData) ([]byte, uint32) {
	if v == nil {
		return nil, 0
	}
	return v.Data, uint32(v.Flags)
}

// McSet stores value (its bytes and client flags) under key in pool, on each of
// the key's replica_num servers. expiration is in seconds: 0 = never, up to 30
// days relative, beyond that a Unix time. Always true when it returns no error.
// Errors: memcache not configured, and the *pool.Error kinds of pool.Memcache
// (unknown pool, bad argument "invalid key", server failure, timeout, circuit
// open, busy "all connections busy", refused).
func (s *FunServant) McSet(ctx context.Context, c *rpc.Context, poolName, key string, value *rpc.TMemcacheData, expiration int32) (bool, error) {
	return run(s, ctx, "mc.set", c, true, func() string { return targs("pool", poolName, "key", key, "value", value, "expiration", expiration) }, func(g *generation) (bool, error) {
		m, err := g.memcache()
		if err != nil {
			return false, err
		}
		if err := s.modeRefusal(g, "memcache", poolName, "set", true); err != nil {
			return false, err
		}
		data, flags := mcItem(value)
		if err := m.Set(poolName, key, data, flags, expiration); err != nil {
			return false, err
		}
		return true, nil
	})
}

// McGet returns the value and client flags under key in pool, from the first of
// the key's servers that answers. Throws TCacheMissed "memcache: cache miss: <key>"
// when absent; errors as McSet.
func (s *FunServant) McGet(ctx context.Context, c *rpc.Context, poolName, key string) (*rpc.TMemcacheData, error) {
	return run(s, ctx, "mc.get", c, true, func() string { return targs("pool", poolName, "key", key) }, func(g *generation) (*rpc.TMemcacheData, error) {
		m, err := g.memcache()
		if err != nil {
			return nil, err
		}
		if err := s.modeRefusal(g, "memcache", poolName, "get", false); err != nil {
			return nil, err
		}
		data, flags, err := m.Get(poolName, key)
		if errors.Is(err, pool.KindMiss) {
			msg := "memcache: cache miss: " + key
			return nil, &rpc.TCacheMissed{Message: &msg}
		}
		if err != nil {
			return nil, err
		}
		return &rpc.TMemcacheData{Data: data, Flags: int32(flags)}, nil
	})
}

// McAdd is McSet only when key is absent: false, and no error, when it exists.
func (s *FunServant) McAdd(ctx context.Context, c *rpc.Context, poolName, key string, value *rpc.TMemcacheData, expiration int32) (bool, error) {
	return run(s, ctx, "mc.add", c, true, func() string { return targs("pool", poolName, "key", key, "value", value, "expiration", expiration) }, func(g *generation) (bool, error) {
		m, err := g.memcache()
		if err != nil {
			return false, err
		}
		if err := s.modeRefusal(g, "memcache", poolName, "add", true); err != nil {
			return false, err
		}
		data, flags := mcItem(value)
		return m.Add(poolName, key, data, flags, expiration)
	})
}

// McDelete removes key from pool: false, and no error, when it was absent.
func (s *FunServant) McDelete(ctx context.Context, c *rpc.Context, poolName, key string) (bool, error) {
	return run(s, ctx, "mc.del", c, true, func() string { return targs("pool", poolName, "key", key) }, func(g *generation) (bool, error) {
		m, err := g.memcache()
		if err != nil {
			return false, err
		}
		if err := s.modeRefusal(g, "memcache", poolName, "delete", true); err != nil {
			return false, err
		}
		return m.Delete(poolName, key)
	})
}

// McIncrement adds delta to the decimal value under key (memcached incr), or
// subtracts -delta when delta < 0 (decr, clamped at 0 by memcached), and returns
// the new value. Errors: a missing key (pool.KindMiss, "cache miss"), a value
// that is not a decimal number (pool.KindRefused wrapping pool.ErrNotNumeric),
// and those of McSet.
func (s *FunServant) McIncrement(ctx context.Context, c *rpc.Context, poolName, key string, delta int64) (int64, error) {
	return run(s, ctx, "mc.inc", c, true, func() string { return targs("pool", poolName, "key", key, "delta", delta) }, func(g *generation) (int64, error) {
		m, err := g.memcache()
		if err != nil {
			return 0, err
		}
		op := "incr"
		if delta < 0 {
			op = "decr"
		}
		if err := s.modeRefusal(g, "memcache", poolName, op, true); err != nil {
			return 0, err
		}
		return m.Increment(poolName, key, delta)
	})
}
