package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
)

// The clients of BenchmarkSuite's variants: a Thrift session (binary protocol,
// buffered transport) over TCP or a unix socket, persistent or one per call,
// and the raw byte-count client of the echo floor.

// netOf is "unix" for a socket path (starting with /), else "tcp".
func netOf(addr string) string {
	if strings.HasPrefix(addr, "/") {
		return "unix"
	}
	return "tcp"
}

// dialThrift opens one Thrift session to addr (host:port or a unix socket path).
func dialThrift(addr string) (*session, error) {
	conn, err := net.DialTimeout(netOf(addr), addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return thriftOn(conn), nil
}

func thriftOn(conn net.Conn) *session {
	trans := thrift.NewTBufferedTransport(thrift.NewTSocketFromConnConf(conn, &thrift.TConfiguration{SocketTimeout: callTimeout}), 4096)
	return &session{trans: trans, client: rpc.NewFunServantClientFactory(trans, thrift.NewTBinaryProtocolFactoryConf(nil))}
}

// thriftPersistent is a variant's open: a session per worker, kept, call
// made on it through the Thrift client each time (for calls whose request
// changes from call to call, such as the lock of scenario 6).
func thriftPersistent(addr string, call callFunc) func() (func() error, func(), error) {
	return func() (func() error, func(), error) {
		s, err := dialThrift(addr)
		if err != nil {
			return nil, nil, err
		}
		return func() error { return call(s) }, s.close, nil
	}
}

// persistent is a variant's open for a call whose request and reply are the
// same every time: a kept connection per worker on which call is made once
// through the Thrift client while its bytes are recorded; every call after
// that writes the recorded request bytes and reads the reply, which must equal
// the recorded reply byte for byte (else the call fails). The load generator
// then costs the same few µs for every server it drives (as the echo floor's
// client does) instead of the Thrift client's decoding, which would share the
// measured server's cores and lower its call rate by its own cost (a 10 KB
// reply decoded into a new slice, read 4 KiB at a time).
func persistent(addr string, call callFunc) func() (func() error, func(), error) {
	return func() (func() error, func(), error) {
		conn, err := net.DialTimeout(netOf(addr), addr, 5*time.Second)
		if err != nil {
			return nil, nil, err
		}
		rc := &recordConn{Conn: conn}
		if err := call(thriftOn(rc)); err != nil {
			conn.Close()
			return nil, nil, err
		}
		req, want := rc.w.Bytes(), rc.r.Bytes()
		got := make([]byte, len(want))
		return func() error {
			if err := echoRoundTrip(conn, req, got); err != nil {
				return err
			}
			if !bytes.Equal(got, want) {
				return fmt.Errorf("reply of %d bytes differs from the recorded one", len(want))
			}
			return nil
		}, func() { conn.Close() }, nil
	}
}

// recordConn keeps every byte written to and read from it.
type recordConn struct {
	net.Conn
	w, r bytes.Buffer
}

func (c *recordConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.r.Write(p[:n])
	return n, err
}

func (c *recordConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.w.Write(p[:n])
	return n, err
}

// perSession is a variant's open where each call is a php-fpm session:
// connect, call, close.
func perSession(addr string, call callFunc) func() (func() error, func(), error) {
	return func() (func() error, func(), error) {
		return func() error {
			s, err := dialThrift(addr)
			if err != nil {
				return err
			}
			defer s.close()
			return call(s)
		}, func() {}, nil
	}
}

// echoRoundTrip writes req bytes and reads resp bytes on c.
func echoRoundTrip(c net.Conn, req, resp []byte) error {
	c.SetDeadline(time.Now().Add(callTimeout))
	if _, err := c.Write(req); err != nil {
		return err
	}
	_, err := io.ReadFull(c, resp)
	return err
}

// echoPersistent is the echo floor's open over a kept connection.
func echoPersistent(addr string, nReq, nResp int) func() (func() error, func(), error) {
	return func() (func() error, func(), error) {
		c, err := net.DialTimeout(netOf(addr), addr, 5*time.Second)
		if err != nil {
			return nil, nil, err
		}
		req, resp := make([]byte, nReq), make([]byte, nResp)
		return func() error { return echoRoundTrip(c, req, resp) }, func() { c.Close() }, nil
	}
}

// echoSession is the echo floor's open with a connection per call.
func echoSession(addr string, nReq, nResp int) func() (func() error, func(), error) {
	return func() (func() error, func(), error) {
		req, resp := make([]byte, nReq), make([]byte, nResp)
		return func() error {
			c, err := net.DialTimeout(netOf(addr), addr, 5*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			return echoRoundTrip(c, req, resp)
		}, func() {}, nil
	}
}

// countConn counts the bytes read and written through it.
type countConn struct {
	net.Conn
	r, w atomic.Int64
}

func (c *countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.r.Add(int64(n))
	return n, err
}

func (c *countConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.w.Add(int64(n))
	return n, err
}

// byteCounts makes call once on a session to addr and returns the bytes it
// wrote (the request) and read (the reply): what the echo floor then moves.
func byteCounts(addr string, call callFunc) (req, resp int, err error) {
	conn, err := net.DialTimeout(netOf(addr), addr, 5*time.Second)
	if err != nil {
		return 0, 0, err
	}
	cc := &countConn{Conn: conn}
	s := thriftOn(cc)
	defer s.close()
	if err := call(s); err != nil {
		return 0, 0, err
	}
	return int(cc.w.Load()), int(cc.r.Load()), nil
}

func noopCall(s *session) error {
	x, err := s.client.Noop(context.Background(), 7)
	if err == nil && x != 7 {
		err = fmt.Errorf("noop(7) answered %d", x)
	}
	return err
}

func pingCall(s *session) error {
	r, err := s.client.Ping(context.Background(), benchContext)
	if err == nil && r == "" {
		err = fmt.Errorf("ping answered nothing")
	}
	return err
}
