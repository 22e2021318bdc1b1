package pool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// This file holds what sits under redigo on each pooled connection: the
// net.Conn wrapper that bounds a reply's bytes and stops a command when its
// caller gives up, and the redis.Conn wrapper that hands each command its own
// read timeout and context.

// errRdCanceled is the read or write error of a connection whose command's
// caller gave up (its ctx ended).
var errRdCanceled = errors.New("call canceled")

// rdTooLargeError is the read error of a reply past max_reply_bytes.
type rdTooLargeError struct{ reached, limit int64 }

func (e *rdTooLargeError) Error() string {
	return fmt.Sprintf("reply exceeds max_reply_bytes (%d bytes): at least %d bytes", e.limit, e.reached)
}

// longAgo is a deadline in the past: it makes every pending and future read
// and write of a net.Conn fail at once.
var longAgo = time.Unix(1, 0)

// rdNetConn is the net.Conn under one redigo connection.
//
// It counts the bytes of the reply being read (those read since the last
// write, as a command is one write and its reply the reads after it) and fails
// the read once they pass limit, before redigo holds them: it follows the
// RESP2 framing, so a bulk string or an array header announcing more than the
// limit fails as soon as its header arrives, before redigo allocates for it.
//
// cancel makes every read and write fail with errRdCanceled from then on (a
// deadline in the past that later deadlines cannot move), which redigo treats
// as fatal: the connection is closed.
type rdNetConn struct {
	net.Conn
	limit int64 // max_reply_bytes; 0 = no limit

	// The reply being read; only the goroutine running the command uses these.
	read     int64 // bytes of the reply so far
	skip     int64 // bytes still to come of a bulk string's body and its CRLF
	lineHead bool  // the next byte starts a RESP line
	lineType byte  // the type byte of the current line ('$', '*', '+', …)
	num      int64 // the number of the current line so far
	neg      bool  // the current line's number is negative ($-1, *-1: nil)

	mu       sync.Mutex // orders cancel against redigo's deadline updates
	canceled atomic.Bool
}

func newRdNetConn(c net.Conn, limit int) *rdNetConn {
	return &rdNetConn{Conn: c, limit: min(int64(limit), rdNoReplyLimit), lineHead: true} // no number it scans overflows
}

// cancel stops the command in flight and every later one: the caller's ctx ended.
func (c *rdNetConn) cancel() {
	c.mu.Lock()
	c.canceled.Store(true)
	c.Conn.SetDeadline(longAgo)
	c.mu.Unlock()
}

func (c *rdNetConn) setDeadline(set func(time.Time) error, t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.canceled.Load() {
		t = longAgo
	}
	return set(t)
}

// SetDeadline, SetReadDeadline and SetWriteDeadline keep a canceled
// connection's deadline in the past.
func (c *rdNetConn) SetDeadline(t time.Time) error { return c.setDeadline(c.Conn.SetDeadline, t) }
func (c *rdNetConn) SetReadDeadline(t time.Time) error {
	return c.setDeadline(c.Conn.SetReadDeadline, t)
}
func (c *rdNetConn) SetWriteDeadline(t time.Time) error {
	return c.setDeadline(c.Conn.SetWriteDeadline, t)
}

// Write sends (part of) a command: a new reply will follow.
func (c *rdNetConn) Write(p []byte) (int, error) {
	if c.canceled.Load() {
		return 0, errRdCanceled
	}
	c.read, c.skip, c.lineHead = 0, 0, true
	n, err := c.Conn.Write(p)
	if err != nil && c.canceled.Load() {
		err = errRdCanceled
	}
	return n, err
}

func (c *rdNetConn) Read(p []byte) (int, error) {
	if c.canceled.Load() {
		return 0, errRdCanceled
	}
	n, err := c.Conn.Read(p)
	if err != nil && c.canceled.Load() {
		return 0, errRdCanceled
	}
	if c.limit > 0 && n > 0 {
		if e := c.scan(p[:n]); e != nil {
			return 0, e
		}
	}
	return n, err
}

// scan follows the reply through b, its next bytes, and fails once the reply
// has passed the limit or announced that it will.
func (c *rdNetConn) scan(b []byte) error {
	for i := 0; i < len(b); {
		if c.skip > 0 {
			k := min(c.skip, int64(len(b)-i))
			c.skip -= k
			i += int(k)
			continue
		}
		ch := b[i]
		i++
		switch {
		case c.lineHead:
			c.lineType, c.num, c.neg, c.lineHead = ch, 0, false, false
		case ch == '\n':
			c.lineHead = true
			if err := c.header(c.read + int64(i)); err != nil {
				return err
			}
		case ch >= '0' && ch <= '9':
			if c.num < c.limit+1 { // past the limit the exact number does not matter
				c.num = c.num*10 + int64(ch-'0')
			}
		case ch == '-':
			c.neg = true
		}
	}
	c.read += int64(len(b))
	if c.read > c.limit {
		return &rdTooLargeError{reached: c.read, limit: c.limit}
	}
	return nil
}

// header acts on a line that has just ended at offset end of the reply: a bulk
// string's body is skipped, and a bulk string or array that announces more
// than the limit fails (each array element takes at least 3 bytes, "+\r\n").
func (c *rdNetConn) header(end int64) error {
	if c.neg {
		return nil
	}
	var need int64
	switch c.lineType {
	case '$':
		c.skip = c.num + 2
		need = end + c.skip
	case '*':
		need = rdArrayNeed(end, c.num)
	default:
		return nil
	}
	if need > c.limit {
		return &rdTooLargeError{reached: need, limit: c.limit}
	}
	return nil
}

// rdConn is a pooled connection: redigo's connection, the net.Conn under it,
// and the epoch it was dialled in.
type rdConn struct {
	redis.Conn
	nc    *rdNetConn
	epoch uint64
}

// rdCall is one command on its way through redigo's pool to the rdConn that
// runs it: its read timeout in, the connection it ran on out.
type rdCall struct {
	cmd         string // the command's name, as the caller wrote it
	readTimeout time.Duration
	conn        *rdConn
	canceled    bool // the caller's ctx ended while the command ran
}

type rdCallKey struct{}

// DoContext makes rdConn a redis.ConnWithContext, the only way redigo's pool
// passes something per command down to the connection: it runs the command
// with the read timeout of the *rdCall in ctx, and stops it at once when ctx
// ends (context.AfterFunc cancels the net.Conn: no goroutine per call).
func (c *rdConn) DoContext(ctx context.Context, cmd string, args ...any) (any, error) {
	call, _ := ctx.Value(rdCallKey{}).(*rdCall)
	if call == nil {
		return nil, errors.New("pool: rdConn.DoContext without an rdCall")
	}
	call.conn = c
	stop := context.AfterFunc(ctx, c.nc.cancel)
	reply, err := redis.DoWithTimeout(c.Conn, call.readTimeout, cmd, args...)
	if !stop() {
		call.canceled = true
	}
	return reply, err
}

// ReceiveContext completes redis.ConnWithContext; nothing here receives alone.
func (c *rdConn) ReceiveContext(ctx context.Context) (any, error) {
	return redis.ReceiveContext(c.Conn, ctx)
}
