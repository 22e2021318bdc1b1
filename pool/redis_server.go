package pool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/fae-go/fae/internal/sockio"
)

// rdServer is one Redis server of a pool: a redigo pool dialling its address,
// a Breaker, and a gate bounding the calls holding a connection (max_active)
// and those waiting for one (max_waiting_calls). Dials go through
// Breaker.Dial and commands through Breaker.Do.
type rdServer struct {
	addr      string
	pool      *redis.Pool
	breaker   *Breaker
	ioTimeout time.Duration
	borrow    time.Duration // borrow_timeout
	gate      *connGate     // nil when max_active is 0 (unlimited)
	// epoch is bumped by every server failure. Connections remember the epoch
	// they were dialled in, and an idle one from an older epoch is dropped when
	// borrowed: after a failure (a server restart resets every connection) the
	// next calls dial afresh instead of failing one by one on dead connections.
	epoch atomic.Uint64
	pipe  *rdPipe // the pipelined path (redis_pipe.go); nil when pipeline is off
	// killing: a SCRIPT KILL or FUNCTION KILL is in flight (killScript);
	// scriptKills counts those sent, for tests and figures.
	killing     atomic.Bool
	scriptKills atomic.Int64
}

var errRdStale = errors.New("connection from before a server failure")

func newRdServer(sc RedisServerConfig, cfg RedisConfig, limits Limits) *rdServer {
	s := &rdServer{addr: sc.Addr, ioTimeout: cfg.IOTimeout, borrow: cfg.BorrowTimeout}
	if sc.MaxActive > 0 {
		s.gate = newConnGate(sc.Addr, sc.MaxActive, waitingBound(cfg.MaxWaitingCalls, sc.MaxActive), cfg.BorrowTimeout,
			"max_active", "borrow_timeout")
	}
	s.breaker = NewBreaker("redis", sc.Addr, cfg.Breaker, s.ping)
	s.pipe = newRdPipe(s, cfg, sc, limits)
	dialer := &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 5 * time.Minute}
	s.pool = &redis.Pool{
		MaxIdle: sc.MaxIdle, MaxActive: sc.MaxActive, IdleTimeout: sc.IdleTimeout, Wait: true,
		DialContext: func(ctx context.Context) (redis.Conn, error) { return s.dial(ctx, dialer, limits) },
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

// dial opens a connection through the breaker's dial side. It is bounded by
// connect_timeout only, not by the caller's ctx: a caller giving up must not
// count as the server's failure.
func (s *rdServer) dial(ctx context.Context, dialer *net.Dialer, limits Limits) (redis.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	epoch := s.epoch.Load()
	var nc *rdNetConn
	var c redis.Conn
	err := s.breaker.Dial(func() (err error) {
		c, err = redis.DialContext(context.WithoutCancel(ctx), "tcp", s.addr,
			redis.DialReadTimeout(s.ioTimeout), redis.DialWriteTimeout(s.ioTimeout),
			redis.DialContextFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
				conn, err := dialer.DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				nc = newRdNetConn(sockio.Wrap(conn), limits.MaxReplyBytes) // raw system calls (sockio)
				return nc, nil
			}))
		return err
	})
	if err != nil {
		if !errors.Is(err, KindBreakerOpen) {
			s.epoch.Add(1)
		}
		return nil, err
	}
	return &rdConn{Conn: c, nc: nc, epoch: epoch}, nil
}

// ping is the breaker's health check: PING on a connection of its own,
// bounded by ctx (HealthCheckTimeout).
func (s *rdServer) ping(ctx context.Context) error {
	c, err := s.dialAside(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Do("PING")
	return err
}

// dialAside dials a connection of its own to the server, outside the pool
// and its breaker, its reads and writes bounded by ctx's deadline
// (HealthCheckTimeout without one): the health check's and killScript's.
func (s *rdServer) dialAside(ctx context.Context) (redis.Conn, error) {
	d := HealthCheckTimeout
	if dl, ok := ctx.Deadline(); ok {
		d = time.Until(dl)
	}
	return redis.DialContext(ctx, "tcp", s.addr, redis.DialReadTimeout(d), redis.DialWriteTimeout(d))
}

// do runs cmd on a connection of the server: it borrows one (dialling if need
// be, waiting up to borrow_timeout when max_active are busy, failing at once
// with KindBusy when max_waiting_calls already wait), runs cmd through
// the breaker with a read timeout of io_timeout + block, and gives the
// connection back only if the outcome's kind is Reusable. It returns the
// reply, the kind of the outcome and its cause.
//
// start is the call's start, name its upper-case command and info what is known of it (rdLookup).
func (s *rdServer) do(ctx context.Context, start time.Time, block time.Duration, name string, info *rdCmd, cmd string, args []any) (any, Kind, error) {
	var reply any
	var kind Kind
	var cause error
	if s.pipe.takes(block, info.pipe) {
		reply, kind, cause = s.pipe.do(ctx, start, name, cmd, args)
	} else {
		reply, kind, cause = s.doConn(ctx, block, cmd, args)
	}
	if kind == KindTimeout || kind == KindCanceled {
		if kill := rdScriptKill[name]; kill != "" {
			s.killScript(kill)
		}
	}
	return reply, kind, cause
}

// rdScriptKill gives, for each command that runs a script or a function, the
// command that stops it: Redis runs one at a time and answers every other
// client BUSY until it ends, so a script looping for ever would hold the
// server from every caller, and faed refuses SCRIPT and FUNCTION to clients.
var rdScriptKill = map[string]string{
	"EVAL": "SCRIPT", "EVALSHA": "SCRIPT", "EVAL_RO": "SCRIPT", "EVALSHA_RO": "SCRIPT",
	"FCALL": "FUNCTION", "FCALL_RO": "FUNCTION",
}

// isScriptCommand reports whether cmd (any case) runs a script or a function.
func isScriptCommand(cmd string) bool {
	for name := range rdScriptKill {
		if strings.EqualFold(cmd, name) {
			return true
		}
	}
	return false
}

// killScript sends "<kind> KILL" (SCRIPT or FUNCTION) to the server on a
// connection of its own, in the background, bounded by HealthCheckTimeout:
// after a script's call timed out or its caller left, as MySQL's KILL QUERY
// after a statement's (original fae left both running). A script that has
// written cannot be killed (UNKILLABLE: only SHUTDOWN NOSAVE stops it, which
// faed never sends), and one already ended answers NOTBUSY: both are left
// as they are. It may stop a script another client of the server started,
// when one ran at the time: the one Redis runs is the one that kept this
// caller's script from answering. At most one is in flight per server.
func (s *rdServer) killScript(kind string) {
	if !s.killing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer s.killing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), HealthCheckTimeout)
		defer cancel()
		c, err := s.dialAside(ctx)
		if err != nil {
			return
		}
		defer c.Close()
		s.scriptKills.Add(1)
		c.Do(kind, "KILL")
	}()
}

// doConn runs cmd on a connection of its own (see do).
func (s *rdServer) doConn(ctx context.Context, block time.Duration, cmd string, args []any) (any, Kind, error) {
	if ctx.Err() != nil {
		return nil, KindCanceled, context.Cause(ctx)
	}
	if s.breaker.isOpen() { // fail fast, without waiting for a connection
		return nil, KindBreakerOpen, nil
	}
	if s.gate != nil { // released after the connection is back in redigo's pool (deferred Close below)
		if err := s.gate.acquire(ctx); err != nil {
			kind, cause := waitOutcome(ctx, err)
			return nil, kind, cause
		}
		defer s.gate.release()
	}
	bctx, cancel := context.WithTimeout(ctx, s.borrow)
	c, err := s.pool.GetContext(bctx)
	cancel()
	if err != nil {
		kind, cause := s.borrowError(ctx, err)
		return nil, kind, cause
	}
	defer c.Close()
	call := &rdCall{readTimeout: s.ioTimeout + block, cmd: cmd}
	cctx := context.WithValue(ctx, rdCallKey{}, call)
	var reply any
	kind, cause := s.breaker.Do(func() (Kind, error) {
		var err error
		reply, err = c.(redis.ConnWithContext).DoContext(cctx, cmd, args...)
		return s.classify(ctx, call, err)
	})
	if call.conn != nil && (!kind.Reusable() || call.canceled) {
		call.conn.Conn.Close() // redigo's pool drops a connection whose Err is set
	}
	if kind == KindServerFailure {
		s.epoch.Add(1)
	}
	return reply, kind, cause
}

// classify gives the kind of a command's outcome and its cause.
func (s *rdServer) classify(ctx context.Context, call *rdCall, err error) (Kind, error) {
	if err == nil { // before re and tl, which escape: no allocation for an answer
		return KindOK, nil
	}
	var re redis.Error
	var tl *rdTooLargeError
	switch {
	case errors.As(err, &re):
		return classifyErrorReply(re, call.cmd)
	case errors.Is(err, errRdCanceled) || call.canceled || ctx.Err() != nil:
		return KindCanceled, context.Cause(ctx)
	case errors.As(err, &tl):
		return KindTooLarge, err
	case errors.Is(err, os.ErrDeadlineExceeded) && call.readTimeout == s.ioTimeout:
		return KindTimeout, fmt.Errorf("no reply within io_timeout %s: %w", s.ioTimeout, err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return KindTimeout, fmt.Errorf("no reply within %s (io_timeout %s + the command's own timeout %s): %w",
			call.readTimeout, s.ioTimeout, call.readTimeout-s.ioTimeout, err)
	}
	return KindServerFailure, err
}

// classifyErrorReply is the kind and cause of an error reply to cmd:
// KindRefused (the command's own failure), but for BUSY to a command that
// runs no script, the server running a script or function past
// busy-reply-threshold and answering every other command so until it ends:
// a server failure, which the breaker counts, so that callers fail at once
// while it lasts instead of each waiting for its BUSY. A script's error
// reply is the script's to write, "BUSY …" included (a client's
// redis.error_reply('BUSY x') opened a healthy server's breaker: found by
// review), so a script command's BUSY is its own refusal.
func classifyErrorReply(re redis.Error, cmd string) (Kind, error) {
	if strings.HasPrefix(string(re), "BUSY ") && !isScriptCommand(cmd) {
		return KindServerFailure, fmt.Errorf("the server is busy running a script or function (faed sends SCRIPT KILL or FUNCTION KILL when one of its own calls times out): error reply: %w", re)
	}
	return KindRefused, fmt.Errorf("error reply: %w", re)
}

// borrowError classifies a failed borrow: an open breaker, a failed dial, the
// caller's context ending, or every connection busy for borrow_timeout.
func (s *rdServer) borrowError(ctx context.Context, err error) (Kind, error) {
	switch {
	case errors.Is(err, KindBreakerOpen):
		return KindBreakerOpen, nil
	case isDialError(err):
		return KindServerFailure, err
	case ctx.Err() != nil:
		return KindCanceled, context.Cause(ctx)
	case errors.Is(err, context.DeadlineExceeded):
		return KindBusy, fmt.Errorf("all connections busy: max_active %d, none free within borrow_timeout %s",
			s.pool.MaxActive, s.borrow)
	}
	return KindServerFailure, err
}
