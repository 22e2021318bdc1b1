package servant

import (
	"context"
	"time"

	"github.com/fae-go/fae/idl/fun/rpc"
)

var errLockOff = &NotConfiguredError{Name: "lock", Key: "servants.lock"}

// Lock takes the lock named key without waiting: true if it was free or held for
// longer than servants.lock.expires (then it is taken over, as in the original),
// false if it is held. Node-local here; the cluster issue routes it to the key's owner.
func (s *FunServant) Lock(_ context.Context, c *rpc.Context, why string, key string) (bool, error) {
	return run(s, "lock", c, true, func(g *generation) (bool, error) {
		if s.locks == nil {
			return false, errLockOff
		}
		got, tookOver, err := s.locks.lock(key, time.Now(), g.cfg.Lock.Expires)
		if tookOver {
			s.log.Warn("lock expired, taken over", "key", key, "reason", why, "rid", c.Rid)
		}
		return got, err
	})
}

// Unlock frees the lock named key, whoever holds it.
func (s *FunServant) Unlock(_ context.Context, c *rpc.Context, why string, key string) error {
	_, err := run(s, "unlock", c, true, func(g *generation) (struct{}, error) {
		if s.locks == nil {
			return struct{}{}, errLockOff
		}
		s.locks.unlock(key)
		return struct{}{}, nil
	})
	return err
}
