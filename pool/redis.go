package pool

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/golang/groupcache/consistenthash"
)

// rdVnodes is the number of points per server on a pool's ring (the original's 32).
const rdVnodes = 32

// Redis is the Redis cluster of servants.redis: named pools of servers. A call
// goes to the server its first argument hashes to on the pool's ring — the
// original fae's ring (crc32-IEEE, 32 points per server hashed from
// "<i><addr>", first point ≥ hash(key), wrapping around), so keys stay where
// the original put them; it is groupcache's consistenthash, which is that ring.
// Each server has a redigo pool of its own (max_idle, max_active, idle_timeout;
// a call waits up to borrow_timeout for a connection) and a breaker that counts
// only its connection failures, never an error reply. Safe for concurrent use;
// many commands run at once on each server.
//
// Every error is a *BackendError naming the command, key, pool and server, with
// one of the ErrRedis* kinds (or ErrBreakerOpen) that errors.Is matches.
type Redis struct {
	pools       map[string]*rdPool // read-only after NewRedis
	deny        map[string]bool    // upper-case command names
	cfg         RedisConfig
	unknownPool atomic.Int64
	closed      atomic.Bool
}

type rdPool struct {
	name    string
	ring    *consistenthash.Map
	servers map[string]*rdServer // by addr
	stats   RedisStats
}

// NewRedis builds the pools of cfg, which must have passed Validate.
// Connections are opened on first use. Close releases them.
func NewRedis(cfg RedisConfig) (*Redis, error) {
	r := &Redis{pools: map[string]*rdPool{}, deny: map[string]bool{}, cfg: cfg}
	for _, c := range cfg.DenyCommands {
		r.deny[strings.ToUpper(strings.TrimSpace(c))] = true
	}
	for _, pc := range cfg.Pools {
		if r.pools[pc.Name] != nil {
			return nil, fmt.Errorf("redis: pool %q is listed twice", pc.Name)
		}
		p := &rdPool{name: pc.Name, ring: consistenthash.New(rdVnodes, nil), servers: map[string]*rdServer{}}
		for _, sc := range pc.Servers {
			if p.servers[sc.Addr] != nil {
				return nil, fmt.Errorf("redis: server %s is listed twice in pool %q", sc.Addr, pc.Name)
			}
			p.servers[sc.Addr] = newRdServer(sc, cfg)
			p.ring.Add(sc.Addr)
		}
		r.pools[pc.Name] = p
	}
	return r, nil
}

// Do runs command cmd with args on the server of pool that args[0] hashes to
// (args[0] as a string: itself for a string or []byte, else fmt.Sprint) and
// returns redigo's reply: []byte (bulk), string (status), int64, []any, or nil.
// It waits up to borrow_timeout for a connection and io_timeout for the reply;
// ctx ending stops the wait for a connection, and a ctx deadline also bounds the
// command. Errors (*BackendError): unknown pool, empty
// command, denied command, no args, an error reply (Redis's text), every
// connection busy, a server failure, an open breaker, ctx ended.
func (r *Redis) Do(ctx context.Context, pool, cmd string, args ...any) (any, error) {
	p, key, err := r.check(pool, cmd, args)
	if err != nil {
		return nil, err
	}
	s := p.servers[p.ring.Get(key)]
	reply, kind, cause := s.do(ctx, r.cfg.BorrowTimeout, cmd, args)
	if kind != nil {
		p.stats.count(kind)
		return nil, &BackendError{Backend: "redis", Op: strings.ToUpper(cmd), Pool: pool, Server: s.addr, Key: key, Kind: kind, Err: cause}
	}
	if reply == nil {
		p.stats.NilReplies.Add(1)
	}
	return reply, nil
}

// check finds the pool and the key of a call, refusing what goes nowhere.
func (r *Redis) check(pool, cmd string, args []any) (*rdPool, string, error) {
	p := r.pools[pool]
	if p == nil {
		r.unknownPool.Add(1)
		return nil, "", &BackendError{Backend: "redis", Op: strings.ToUpper(cmd), Pool: pool, Kind: ErrRedisUnknownPool,
			Err: errors.New("not in servants.redis.pools")}
	}
	p.stats.Calls.Add(1)
	var key string
	if len(args) > 0 {
		key = rdKey(args[0])
	}
	fail := func(kind, cause error) (*rdPool, string, error) {
		p.stats.count(kind)
		return nil, "", &BackendError{Backend: "redis", Op: strings.ToUpper(cmd), Pool: pool, Key: key, Kind: kind, Err: cause}
	}
	switch {
	case r.closed.Load():
		return fail(ErrRedisClosed, nil)
	case strings.TrimSpace(cmd) == "":
		return fail(ErrRedisNoCommand, nil)
	case r.deny[strings.ToUpper(cmd)]:
		return fail(ErrRedisDenied, fmt.Errorf("%s is in servants.redis.deny_commands", strings.ToUpper(cmd)))
	case len(args) == 0:
		return fail(ErrRedisNoKey, nil)
	case len(p.servers) == 0:
		return fail(ErrRedisServer, errors.New("the pool has no servers"))
	}
	return p, key, nil
}

func rdKey(a any) string {
	switch k := a.(type) {
	case string:
		return k
	case []byte:
		return string(k)
	}
	return fmt.Sprint(a)
}

// ServerOf returns the address of the server key maps to in pool.
func (r *Redis) ServerOf(pool, key string) (string, error) {
	p, _, err := r.check(pool, "locate", []any{key})
	if err != nil {
		return "", err
	}
	return p.ring.Get(key), nil
}

// Stats returns the counters of pool, nil if there is no such pool.
func (r *Redis) Stats(pool string) *RedisStats {
	if p := r.pools[pool]; p != nil {
		return &p.stats
	}
	return nil
}

// UnknownPoolCalls is the number of calls that named a pool not configured.
func (r *Redis) UnknownPoolCalls() int64 { return r.unknownPool.Load() }

// Close closes every server's pool; calls after Close fail with ErrRedisClosed.
func (r *Redis) Close() error {
	r.closed.Store(true)
	var errs []error
	for _, p := range r.pools {
		for _, s := range p.servers {
			errs = append(errs, s.pool.Close())
		}
	}
	return errors.Join(errs...)
}
