package servant

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"

	"github.com/fae-go/fae/idl/fun/rpc"
)

// LcacheStats count lc_get's outcomes since start.
type LcacheStats struct {
	Hits   atomic.Int64 // lc_get found the key
	Misses atomic.Int64 // lc_get did not (answered TCacheMissed)
}

var errLcacheOff = &NotConfiguredError{Name: "lcache", Key: "servants.lcache"}

// LcSet stores value under key in this node's LRU. Always true.
func (s *FunServant) LcSet(ctx context.Context, c *rpc.Context, key string, value []byte) (bool, error) {
	return run(s, ctx, "lc.set", c, true, func() string { return targs("key", key, "value", value) }, func(g *generation) (bool, error) {
		if s.lcache == nil {
			return false, errLcacheOff
		}
		if max := s.boot.Lcache.MaxItemBytes; len(value) > max {
			return false, fmt.Errorf("%w: lc_set of %d bytes, servants.lcache.max_item_bytes is %d", ErrValueTooLarge, len(value), max)
		}
		// The Thrift library reads a binary into a growing buffer: up to twice
		// its length in capacity. Keep only the bytes, so the budget is the truth.
		if cap(value)-len(value) > len(value)/8 {
			value = bytes.Clone(value)
		}
		if value == nil {
			// A client that sends no value (a PHP null) stores an empty one:
			// a nil one would make every lc_get of the key answer no result
			// at all (MISSING_RESULT), counted as a success (found by review).
			value = []byte{}
		}
		if err := s.lcache.Set(key, value); err != nil {
			return false, fmt.Errorf("lcache: %w", err)
		}
		return true, nil
	})
}

// LcGet returns the value under key; TCacheMissed "lcache missed: <key>" when absent.
func (s *FunServant) LcGet(ctx context.Context, c *rpc.Context, key string) ([]byte, error) {
	return run(s, ctx, "lc.get", c, true, func() string { return targs("key", key) }, func(g *generation) ([]byte, error) {
		if s.lcache == nil {
			return nil, errLcacheOff
		}
		if v, ok := s.lcache.Get(key); ok {
			s.Lcache.Hits.Add(1)
			return v, nil
		}
		s.Lcache.Misses.Add(1)
		msg := "lcache missed: " + key
		return nil, &rpc.TCacheMissed{Message: &msg}
	})
}

// LcDel removes key.
func (s *FunServant) LcDel(ctx context.Context, c *rpc.Context, key string) error {
	_, err := run(s, ctx, "lc.del", c, true, func() string { return targs("key", key) }, func(g *generation) (struct{}, error) {
		if s.lcache == nil {
			return struct{}{}, errLcacheOff
		}
		s.lcache.Del(key)
		return struct{}{}, nil
	})
	return err
}
