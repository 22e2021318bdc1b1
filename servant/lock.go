package servant

import (
	"context"
	"time"

	"github.com/fae-go/fae/idl/fun/rpc"
)

var errLockOff = &NotConfiguredError{Name: "lock", Key: "servants.lock"}

// Lock takes the lock named key on the key's owner, without waiting: true if
// it was free or held for longer than servants.lock.expires (then it is taken
// over, as in the original, and logged), false if it is held. The lock
// records the caller's rid: only the same rid unlocks it before it expires.
// A lock lives on its owner: when that node dies, or the key moves to another
// owner (a member joins or leaves), the lock is lost. Errors: lock not
// configured, lock table full, no cluster member known, the owner unreachable
// (naming it).
func (s *FunServant) Lock(ctx context.Context, c *rpc.Context, why string, key string) (bool, error) {
	return run(s, ctx, "lock", c, true, func() string { return targs("why", why, "key", key) }, func(g *generation) (bool, error) {
		if p, remote, err := s.route(g, c, key); err != nil || remote {
			if err != nil {
				return false, err
			}
			return forward(s, ctx, p, "lock", c, func(ctx context.Context, cl *rpc.FunServantClient, fc *rpc.Context) (bool, error) {
				return cl.Lock(ctx, fc, why, key)
			})
		}
		if s.locks == nil {
			return false, errLockOff
		}
		got, tookOver, err := s.locks.lock(key, c.Rid, time.Now(), g.cfg.Lock.Expires)
		if tookOver {
			s.log.Warn("lock expired, taken over", "key", key, "reason", why, "rid", c.Rid)
		}
		return got, err
	})
}

// Unlock frees the lock named key on the key's owner if the caller's rid took
// it, or once it has expired. Another rid's unlock returns normally and leaves
// the lock held; it is counted and logged (the original let anyone unlock).
// PHP rids (hexdec(uniqid())) can collide across web hosts.
func (s *FunServant) Unlock(ctx context.Context, c *rpc.Context, why string, key string) error {
	_, err := run(s, ctx, "unlock", c, true, func() string { return targs("why", why, "key", key) }, func(g *generation) (struct{}, error) {
		if p, remote, err := s.route(g, c, key); err != nil || remote {
			if err != nil {
				return struct{}{}, err
			}
			return forward(s, ctx, p, "unlock", c, func(ctx context.Context, cl *rpc.FunServantClient, fc *rpc.Context) (struct{}, error) {
				return struct{}{}, cl.Unlock(ctx, fc, why, key)
			})
		}
		if s.locks == nil {
			return struct{}{}, errLockOff
		}
		if held, holder := s.locks.unlock(key, c.Rid, time.Now(), g.cfg.Lock.Expires); held && holder != 0 {
			s.log.Warn("unlock by another rid ignored; the lock stays held", "key", key, "rid", c.Rid, "holder", holder, "reason", why)
		}
		return struct{}{}, nil
	})
	return err
}
