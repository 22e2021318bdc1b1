package servant

import (
	"context"

	"github.com/fae-go/fae/idl/fun/rpc"
)

func (s *FunServant) redis() backend {
	return s.backend("redis", "servants.redis", s.cfg.Redis != nil)
}

// RdCall runs one Redis command; served from the Redis issue on.
func (s *FunServant) RdCall(_ context.Context, c *rpc.Context, cmd, pool string, keysAndArgs []string) (string, error) {
	return "", s.unserved("rd.call", c, s.redis())
}
