package servant

import (
	"context"

	"github.com/fae-go/fae/idl/fun/rpc"
)

// memcacheServant serves the memcache methods; built by initMemcache when its section is present.
type memcacheServant struct{}

// initMemcache builds the memcache servant when its config section is present.
func (s *FunServant) initMemcache() error { return nil }

// closeMemcache releases its pools.
func (s *FunServant) closeMemcache() {}

func (s *FunServant) memcache() backend {
	return s.backend("memcache", "servants.memcache", s.cfg.Memcache != nil)
}

// McSet is memcached's set; served from the memcache issue on.
func (s *FunServant) McSet(_ context.Context, c *rpc.Context, pool, key string, value *rpc.TMemcacheData, expiration int32) (bool, error) {
	return false, s.unserved("mc.set", c, s.memcache())
}

// McGet is memcached's get.
func (s *FunServant) McGet(_ context.Context, c *rpc.Context, pool, key string) (*rpc.TMemcacheData, error) {
	return nil, s.unserved("mc.get", c, s.memcache())
}

// McAdd is memcached's add.
func (s *FunServant) McAdd(_ context.Context, c *rpc.Context, pool, key string, value *rpc.TMemcacheData, expiration int32) (bool, error) {
	return false, s.unserved("mc.add", c, s.memcache())
}

// McDelete is memcached's delete.
func (s *FunServant) McDelete(_ context.Context, c *rpc.Context, pool, key string) (bool, error) {
	return false, s.unserved("mc.del", c, s.memcache())
}

// McIncrement is memcached's incr/decr.
func (s *FunServant) McIncrement(_ context.Context, c *rpc.Context, pool, key string, delta int64) (int64, error) {
	return 0, s.unserved("mc.inc", c, s.memcache())
}
