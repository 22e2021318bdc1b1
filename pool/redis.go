package pool

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang/groupcache/consistenthash"
)

// rdVnodes is the number of points per server on a pool's ring (the original's 32).
const rdVnodes = 32

// Redis is the Redis cluster of servants.redis: named pools of servers. A call
// goes to the server its key hashes to on the pool's ring — the original fae's
// ring (crc32-IEEE, 32 points per server hashed from "<i><addr>", first point
// ≥ hash(key), wrapping around), so keys stay where the original put them; it
// is groupcache's consistenthash, which is that ring.
//
// Each server has a redigo pool of its own (max_idle, max_active,
// idle_timeout; a call waits up to borrow_timeout for a connection) and a
// Breaker: dials count on its dial side, commands on its command side, and a
// command that times out counts only if a fresh connection's PING fails too,
// so a frozen server opens it while a client's slow command does not. A
// connection goes back to its pool only after an outcome whose Kind is
// Reusable. Safe for concurrent use; many commands run at once on each server.
//
// Every error is a *Error (Backend "redis", Op the upper-case command) and
// every operation is reported once to the Observer, named by its command when
// Redis 7 has such a command, else "OTHER".
type Redis struct {
	pools  map[string]*rdPool // read-only after NewRedis
	deny   map[string]bool    // upper-case command names
	cfg    RedisConfig
	obs    Observer
	closed atomic.Bool
}

type rdPool struct {
	name    string
	ring    *consistenthash.Map
	servers map[string]*rdServer // by addr
	only    *rdServer            // the server of a pool of one: every key's, without hashing it
}

// NewRedis builds the pools of cfg, which must have passed Validate; obs (nil
// = none) is told of every operation, and limits.MaxReplyBytes bounds every
// reply. Connections are opened on first use. Close releases them.
func NewRedis(cfg RedisConfig, obs Observer, limits Limits) (*Redis, error) {
	if obs == nil {
		obs = NopObserver{}
	}
	r := &Redis{pools: map[string]*rdPool{}, deny: map[string]bool{}, cfg: cfg, obs: obs}
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
			p.servers[sc.Addr] = newRdServer(sc, cfg, limits)
			p.ring.Add(sc.Addr)
		}
		if len(p.servers) == 1 {
			p.only = p.servers[pc.Servers[0].Addr]
		}
		r.pools[pc.Name] = p
	}
	return r, nil
}

// Do runs a client's command cmd with args (rd_call) on the server of pool
// that args[0] hashes to (args[0] as Redis sees it: a string or []byte itself,
// else fmt.Sprint), and returns redigo's reply: []byte (bulk), string
// (status), int64, []any, or nil (reported to the Observer as KindMiss).
//
// It waits up to borrow_timeout for a connection and io_timeout for the reply
// (plus the command's own timeout for a blocking command); when ctx ends the
// wait or the command stops at once (KindCanceled) and the connection is
// closed. A reply over limits.MaxReplyBytes fails with KindTooLarge, its
// connection closed, without being held.
//
// Refused before any server is asked (KindRefused, the reason in the text):
//   - the commands of servants.redis.deny_commands;
//   - whatever deny_commands says, the commands that change or end the state
//     of the connection, which the next caller of the pooled connection would
//     inherit: SELECT, HELLO, AUTH, RESET, QUIT, CLIENT, SUBSCRIBE,
//     PSUBSCRIBE, SSUBSCRIBE, UNSUBSCRIBE, PUNSUBSCRIBE, SUNSUBSCRIBE, MONITOR,
//     MULTI, EXEC, WATCH, UNWATCH, DISCARD, READONLY, READWRITE, SYNC, PSYNC
//     (redigo resets only MULTI, WATCH and SUBSCRIBE state, and transactions
//     cannot span calls: each call may get another connection);
//   - the blocking commands BLPOP, BRPOP, BRPOPLPUSH, BLMOVE, BLMPOP, BZPOPMIN,
//     BZPOPMAX, BZMPOP (timeout in seconds, may be fractional), XREAD and
//     XREADGROUP with BLOCK, WAIT, WAITAOF (milliseconds) whose timeout is 0
//     (forever) or longer than io_timeout ("BLPOP timeout 0 (forever) is
//     longer than io_timeout 4s"): one client must not hold a connection
//     longer than io_timeout. An accepted one gets a read timeout of
//     io_timeout plus its own timeout, so its nil reply at its timeout arrives.
//
// Errors (*Error, matched with errors.Is): KindUnknownPool (pool not
// configured, or without servers), KindBadArgument (empty command, no args,
// a blocking command's timeout that is not a non-negative number), KindRefused
// (the refusals above, and Redis's error replies, whose text follows "error
// reply:" and whose redis.Error errors.As finds), KindBusy (max_active
// connections busy for borrow_timeout, a *WaitTimeoutError; or
// max_waiting_calls calls already waiting, refused at once, a *WaitLimitError), KindServerFailure (dial, write or read
// failed), KindTimeout (no reply within the read timeout), KindCanceled,
// KindBreakerOpen ("circuit open"), KindTooLarge, KindClosed (after Close).
// Refusals are reported to the Observer with Server "" (and Pool "" for an
// unknown pool).
func (r *Redis) Do(ctx context.Context, pool, cmd string, args ...any) (any, error) {
	start := time.Now()
	name := strings.ToUpper(strings.TrimSpace(cmd))
	var key string
	if len(args) > 0 {
		key = rdString(args[0])
	}
	p, err := r.pool(start, pool, name, key)
	if err != nil {
		return nil, err
	}
	info := rdLookup(name)
	if why := info.stateRefusal(name); why != "" || len(r.deny) > 0 && r.deny[name] {
		if why == "" {
			why = "command denied: " + name + " is in servants.redis.deny_commands"
		}
		return nil, r.refuse(start, pool, name, key, KindRefused, errors.New(why))
	}
	if len(args) == 0 {
		return nil, r.refuse(start, pool, name, key, KindBadArgument, errors.New("no key: the first argument picks the server"))
	}
	block, kind, cause := info.blockTimeout(name, args, r.cfg.IOTimeout)
	if kind != KindOK {
		return nil, r.refuse(start, pool, name, key, kind, cause)
	}
	return r.run(ctx, start, p, name, info, key, block, cmd, args)
}

// DoKey runs cmd with args on the server of pool that key hashes to: faed's
// own commands (the MySQL query cache), exempt from deny_commands and from
// Do's refusals (it may run EVAL, MULTI, anything), with the same breaker,
// observer, limits and errors as Do. A command that blocks gets io_timeout.
func (r *Redis) DoKey(ctx context.Context, pool, key, cmd string, args ...any) (any, error) {
	start := time.Now()
	name := strings.ToUpper(strings.TrimSpace(cmd))
	p, err := r.pool(start, pool, name, key)
	if err != nil {
		return nil, err
	}
	return r.run(ctx, start, p, name, rdLookup(name), key, 0, cmd, args)
}

// pool finds the pool of a call, refusing what goes nowhere: an unknown pool,
// a closed cluster, an empty command, a pool without servers.
func (r *Redis) pool(start time.Time, pool, name, key string) (*rdPool, error) {
	p := r.pools[pool]
	switch {
	case p == nil:
		return nil, r.refuse(start, pool, name, key, KindUnknownPool, errors.New("not in servants.redis.pools"))
	case r.closed.Load():
		return nil, r.refuse(start, pool, name, key, KindClosed, nil)
	case name == "":
		return nil, r.refuse(start, pool, name, key, KindBadArgument, errors.New("empty command"))
	case len(p.servers) == 0:
		return nil, r.refuse(start, pool, name, key, KindUnknownPool, errors.New("the pool has no servers"))
	}
	return p, nil
}

// refuse reports an operation refused before a server was chosen.
func (r *Redis) refuse(start time.Time, pool, name, key string, kind Kind, cause error) error {
	op := Op{Backend: "redis", Pool: pool, Name: rdOpName(name), Kind: kind, Duration: time.Since(start)}
	if kind == KindUnknownPool && r.pools[pool] == nil {
		op.Pool = ""
	}
	r.obs.Observe(op)
	return &Error{Backend: "redis", Op: name, Key: key, Pool: pool, Kind: kind, Err: cause}
}

// run runs cmd (upper-case name, known as info) on key's server and reports it.
func (r *Redis) run(ctx context.Context, start time.Time, p *rdPool, name string, info *rdCmd, key string, block time.Duration, cmd string, args []any) (any, error) {
	s := p.only
	if s == nil {
		s = p.servers[p.ring.Get(key)]
	}
	reply, kind, cause := s.do(ctx, start, block, name, info, cmd, args)
	op := Op{Backend: "redis", Pool: p.name, Server: s.addr, Name: info.label, Kind: kind, Duration: time.Since(start)}
	if kind == KindOK && reply == nil {
		op.Kind = KindMiss
	}
	r.obs.Observe(op)
	if kind != KindOK {
		return nil, &Error{Backend: "redis", Op: name, Key: key, Pool: p.name, Server: s.addr, Kind: kind, Err: cause}
	}
	return reply, nil
}

// ServerOf returns the address of the server key maps to in pool; a
// KindUnknownPool *Error when pool is not configured or has no servers.
func (r *Redis) ServerOf(pool, key string) (string, error) {
	p := r.pools[pool]
	if p == nil || len(p.servers) == 0 {
		return "", &Error{Backend: "redis", Key: key, Pool: pool, Kind: KindUnknownPool, Err: errors.New("not in servants.redis.pools, or without servers")}
	}
	return p.ring.Get(key), nil
}

// Stats returns the figures of every server of every pool, sorted: its
// connections from redigo's Pool.Stats (ActiveCount, a connection being
// dialled included, and IdleCount; in use is their difference) and its breaker.
func (r *Redis) Stats() []ServerStats {
	var out []ServerStats
	for _, p := range r.pools {
		for addr, s := range p.servers {
			st := s.pool.Stats()
			row := serverStats("redis", p.name, addr, st.ActiveCount, st.IdleCount, st.ActiveCount-st.IdleCount, s.breaker)
			if s.gate != nil {
				row.Waiting = s.gate.Waiting()
			}
			out = append(out, row)
		}
	}
	return sortStats(out)
}

// HasPool reports whether pool is in servants.redis.pools.
func (r *Redis) HasPool(pool string) bool { return r.pools[pool] != nil }

// Close closes every server's pool: idle connections now, busy ones when
// their command ends. Calls after Close fail with KindClosed.
func (r *Redis) Close() error {
	r.closed.Store(true)
	var errs []error
	for _, p := range r.pools {
		for _, s := range p.servers {
			if s.pipe != nil {
				s.pipe.close()
			}
			errs = append(errs, s.pool.Close())
		}
	}
	return errors.Join(errs...)
}
