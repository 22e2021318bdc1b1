package servant

import (
	"context"

	"github.com/fae-go/fae/idl/fun/rpc"
)

// redisServant serves the redis methods; built by initRedis when its section is present.
type redisServant struct{}

// initRedis builds the redis servant when its config section is present.
func (s *FunServant) initRedis() error { return nil }

// closeRedis releases its pools.
func (s *FunServant) closeRedis() {}

func (s *FunServant) redis() backend {
	return s.backend("redis", "servants.redis", s.cfg.Redis != nil)
}

// RdCall runs one Redis command; served from the Redis issue on.
func (s *FunServant) RdCall(_ context.Context, c *rpc.Context, cmd, pool string, keysAndArgs []string) (string, error) {
	return "", s.unserved("rd.call", c, s.redis())
}
