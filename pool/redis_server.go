package pool

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Kinds of Redis failure. Every error of Redis.Do is a *BackendError (Backend "redis") whose Kind is
// one of these (or ErrBreakerOpen); errors.Is matches them.
var (
	// ErrRedisUnknownPool: the pool is not in servants.redis.pools.
	ErrRedisUnknownPool = errors.New("unknown pool")
	// ErrRedisNoCommand: the command name is empty.
	ErrRedisNoCommand = errors.New("empty command")
	// ErrRedisDenied: the command is in servants.redis.deny_commands.
	ErrRedisDenied = errors.New("command denied")
	// ErrRedisNoKey: no arguments, so no key to pick the server with.
	ErrRedisNoKey = errors.New("no key: the first argument picks the server")
	// ErrRedisReply: Redis answered with an error reply (its text follows; redis.Error via errors.As).
	ErrRedisReply = errors.New("error reply")
	// ErrRedisExhausted: max_active connections to the server were busy for
	// borrow_timeout. Not a server failure: the breaker does not count it.
	ErrRedisExhausted = errors.New("all connections busy")
	// ErrRedisServer: dialling, writing or reading failed or timed out, or the
	// reply was garbled; counted by the breaker.
	ErrRedisServer = errors.New("server failure")
	// ErrRedisCanceled: the caller's context ended first.
	ErrRedisCanceled = errors.New("call canceled")
	// ErrRedisClosed: the cluster was closed.
	ErrRedisClosed = errors.New("closed")
)

// RedisStats are the counters of one Redis pool, updated atomically. Each
// failure kind has its own counter.
type RedisStats struct {
	Calls          atomic.Int64 // calls naming the pool
	NilReplies     atomic.Int64 // nil replies (GET of a missing key, …)
	ErrorReplies   atomic.Int64 // Redis error replies
	BadCommands    atomic.Int64 // empty command names
	Denied         atomic.Int64 // commands refused by deny_commands
	NoKey          atomic.Int64 // calls without arguments
	ServerFailures atomic.Int64 // dial, read or write failures and timeouts (counted by the breaker)
	BreakerOpen    atomic.Int64 // calls refused by an open breaker
	Exhausted      atomic.Int64 // calls that found max_active connections busy for borrow_timeout
	Canceled       atomic.Int64 // calls whose context ended first
}

func (st *RedisStats) count(kind error) {
	for _, c := range []struct {
		kind error
		n    *atomic.Int64
	}{{ErrRedisReply, &st.ErrorReplies}, {ErrRedisNoCommand, &st.BadCommands}, {ErrRedisDenied, &st.Denied},
		{ErrRedisNoKey, &st.NoKey}, {ErrRedisServer, &st.ServerFailures}, {ErrBreakerOpen, &st.BreakerOpen},
		{ErrRedisExhausted, &st.Exhausted}, {ErrRedisCanceled, &st.Canceled}} {
		if kind == c.kind {
			c.n.Add(1)
			return
		}
	}
}

// rdServer is one Redis server of a pool: a redigo pool dialling its own
// address, and a breaker. Dials go through the breaker, so an open breaker
// refuses them too.
type rdServer struct {
	addr    string
	pool    *redis.Pool
	breaker *legacyBreaker
	// epoch is bumped by every server failure. Connections remember the epoch
	// they were dialled in, and an idle one from an older epoch is dropped when
	// borrowed: after a failure (a server restart resets every connection) the
	// next calls dial afresh instead of failing one by one on dead connections.
	epoch atomic.Uint64
}

// rdConn is a pooled connection and its epoch.
type rdConn struct {
	redis.Conn
	epoch uint64
}

// DoContext and ReceiveContext make rdConn a redis.ConnWithContext, as the
// connection it wraps is, so that redis.DoContext works on pooled connections.
func (c *rdConn) DoContext(ctx context.Context, cmd string, args ...any) (any, error) {
	return redis.DoContext(c.Conn, ctx, cmd, args...)
}

func (c *rdConn) ReceiveContext(ctx context.Context) (any, error) {
	return redis.ReceiveContext(c.Conn, ctx)
}

// rdDialError marks a failed dial, to tell it from a borrow that timed out.
type rdDialError struct{ err error }

func (e *rdDialError) Error() string { return "dial: " + e.err.Error() }
func (e *rdDialError) Unwrap() error { return e.err }

var errRdStale = errors.New("connection from before a server failure")

func newRdServer(sc RedisServer, cfg RedisConfig) *rdServer {
	s := &rdServer{addr: sc.Addr, breaker: newLegacyBreaker("redis", sc.Addr, cfg.Breaker)}
	opts := []redis.DialOption{redis.DialConnectTimeout(cfg.ConnectTimeout),
		redis.DialReadTimeout(cfg.IOTimeout), redis.DialWriteTimeout(cfg.IOTimeout)}
	s.pool = &redis.Pool{
		MaxIdle: sc.MaxIdle, MaxActive: sc.MaxActive, IdleTimeout: sc.IdleTimeout, Wait: true,
		Dial: func() (redis.Conn, error) { return s.dial(opts) },
		// No PING on every borrow: only a connection idle for over a minute is checked.
		TestOnBorrow: func(c redis.Conn, lastUsed time.Time) error {
			if rc, ok := c.(*rdConn); ok && rc.epoch != s.epoch.Load() {
				return errRdStale
			}
			if time.Since(lastUsed) < time.Minute {
				return nil
			}
			_, err := c.Do("PING")
			return err
		},
	}
	return s
}

func (s *rdServer) dial(opts []redis.DialOption) (redis.Conn, error) {
	epoch := s.epoch.Load()
	var c redis.Conn
	err := s.breaker.Do(func() (err error) {
		c, err = redis.Dial("tcp", s.addr, opts...)
		return err
	}, func(error) bool { return true })
	switch {
	case errors.Is(err, ErrBreakerOpen):
		return nil, err
	case err != nil:
		s.epoch.Add(1)
		return nil, &rdDialError{err}
	}
	return &rdConn{Conn: c, epoch: epoch}, nil
}

// do borrows a connection (waiting up to wait when max_active are busy) and
// runs cmd through the breaker. It returns the reply, the kind of failure
// (nil = success) and its cause.
func (s *rdServer) do(ctx context.Context, wait time.Duration, cmd string, args []any) (reply any, kind, cause error) {
	bctx, cancel := context.WithTimeout(ctx, wait)
	c, err := s.pool.GetContext(bctx)
	cancel()
	if err != nil {
		kind, cause = s.borrowError(ctx, err, wait)
		return nil, kind, cause
	}
	failure := func(err error) bool { return rdIsFailure(err) && !ctxEnded(ctx) }
	err = s.breaker.Do(func() (err error) {
		if _, ok := ctx.Deadline(); ok {
			reply, err = redis.DoContext(c, ctx, cmd, args...)
		} else { // io_timeout bounds it; DoContext would cost a goroutine per call
			reply, err = c.Do(cmd, args...)
		}
		return err
	}, failure)
	c.Close()
	var re redis.Error
	switch {
	case err == nil:
		return reply, nil, nil
	case errors.Is(err, ErrBreakerOpen):
		return nil, ErrBreakerOpen, nil
	case errors.As(err, &re):
		return nil, ErrRedisReply, re
	case ctxEnded(ctx):
		if ctx.Err() == nil {
			return nil, ErrRedisCanceled, context.DeadlineExceeded
		}
		return nil, ErrRedisCanceled, context.Cause(ctx)
	}
	s.epoch.Add(1)
	return nil, ErrRedisServer, err
}

// borrowError classifies a failed borrow: an open breaker, a failed dial, the
// caller's context ending, or every connection busy for wait.
func (s *rdServer) borrowError(ctx context.Context, err error, wait time.Duration) (kind, cause error) {
	var de *rdDialError
	switch {
	case errors.Is(err, ErrBreakerOpen):
		return ErrBreakerOpen, nil
	case errors.As(err, &de):
		return ErrRedisServer, err
	case ctx.Err() != nil:
		return ErrRedisCanceled, ctx.Err()
	case errors.Is(err, context.DeadlineExceeded):
		return ErrRedisExhausted, fmt.Errorf("%d connections busy for %s", s.pool.MaxActive, wait)
	}
	return ErrRedisServer, err
}

// ctxEnded tells whether ctx is done or past its deadline (its timer may not
// have fired yet when the socket deadline derived from it did).
func ctxEnded(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// rdIsFailure tells the breaker which errors are the server's failures: all
// but an error reply, which proves the server answered.
func rdIsFailure(err error) bool {
	var re redis.Error
	return err != nil && !errors.As(err, &re)
}
