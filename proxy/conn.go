package proxy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/sockio"
	"github.com/fae-go/fae/pool"
)

// maxReplyBytes bounds one reply read from a peer (Thrift's MaxMessageSize and
// MaxFrameSize): the peer bounds its own replies (its rpc.max_reply_bytes,
// 16 MiB by default, plus Thrift's framing); this only keeps a broken stream
// from making faed allocate without bound.
const maxReplyBytes = 256 << 20

// longAgo is a deadline in the past: every pending and later read and write
// of a net.Conn fails at once.
var longAgo = time.Unix(1, 0)

// conn is one connection to a peer: the socket, the Thrift stack over it
// (buffer_size bytes of buffers, framed or not, binary or compact, as the peer
// serves) and the generated client. Only the call that borrowed it uses it.
type conn struct {
	nc       net.Conn
	buf      *thrift.TBufferedTransport // buffer_size bytes each way
	client   *rpc.FunServantClient
	lastUsed time.Time // when it was last given back
}

// sockTransport is a thrift.TTransport over a net.Conn that leaves the
// deadlines alone (thrift.TSocket resets them on every read and write, which
// would undo both the call's deadline and a cancellation).
type sockTransport struct{ net.Conn }

func (sockTransport) Open() error                 { return nil }
func (sockTransport) IsOpen() bool                { return true }
func (sockTransport) Flush(context.Context) error { return nil }
func (sockTransport) RemainingBytes() uint64      { return math.MaxUint64 }

// newConn builds the Thrift client of peer over nc.
func newConn(nc net.Conn, peer Peer, bufferSize int) *conn {
	tconf := &thrift.TConfiguration{MaxMessageSize: maxReplyBytes, MaxFrameSize: maxReplyBytes,
		TBinaryStrictWrite: thrift.BoolPtr(true)}
	buf := thrift.NewTBufferedTransport(sockTransport{nc}, bufferSize)
	var trans thrift.TTransport = buf
	if peer.Framed {
		trans = thrift.NewTFramedTransportConf(trans, tconf)
	}
	var pf thrift.TProtocolFactory = thrift.NewTBinaryProtocolFactoryConf(tconf)
	if peer.Protocol == "compact" {
		pf = thrift.NewTCompactProtocolFactoryConf(tconf)
	}
	return &conn{nc: nc, buf: buf, client: rpc.NewFunServantClientFactory(trans, pf)}
}

// dialConn connects to peer within timeout (not bounded by any caller's ctx:
// a caller who gives up must not make the dial count as the peer's failure).
func dialConn(peer Peer, timeout time.Duration, noDelay bool, bufferSize int) (*conn, error) {
	nc, err := dialNet(peer, timeout, noDelay)
	if err != nil {
		return nil, err
	}
	return newConn(nc, peer, bufferSize), nil
}

// dialNet opens a TCP connection to peer within timeout, read and written
// as raw system calls (sockio); a failure is a *pool.DialError.
func dialNet(peer Peer, timeout time.Duration, noDelay bool) (net.Conn, error) {
	nc, err := (&net.Dialer{Timeout: timeout}).Dial("tcp", peer.Addr)
	if err != nil {
		return nil, &pool.DialError{Err: err}
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(noDelay)
	}
	return sockio.Wrap(nc), nil
}

// call runs fn, one forwarded call, on c within timeout; when ctx ends first
// the socket's deadline is moved to the past (context.AfterFunc: no goroutine
// per call), so the call stops at once. It returns the outcome's kind, the
// error for the caller, and whether c may serve another call.
func (c *conn) call(ctx context.Context, peer, method string, timeout time.Duration, fn func(context.Context, *rpc.FunServantClient) error) (pool.Kind, error, bool) {
	c.nc.SetDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(longAgo) })
	err := fn(ctx, c.client)
	if !stop() {
		// ctx ended during the call: whatever fn returned, the socket may hold
		// part of a reply. Never reuse it.
		if err == nil {
			return pool.KindOK, nil, false
		}
		return pool.KindCanceled, context.Cause(ctx), false
	}
	return classify(err, peer, method, timeout)
}

// classify gives the kind of a forwarded call's outcome, the error for the
// caller (a peer's declared exception as is; anything else is the cause of a
// *pool.Error built by the caller), and whether the connection is still in
// step with the peer (the whole reply read, nothing else pending).
func classify(err error, peer, method string, timeout time.Duration) (pool.Kind, error, bool) {
	var te thrift.TException
	var ae thrift.TApplicationException
	switch {
	case err == nil:
		return pool.KindOK, nil, true
	case errors.As(err, &te) && te.TExceptionType() == thrift.TExceptionTypeCompiled:
		return declaredKind(err), err, true
	case errors.As(err, &ae):
		return applicationKind(ae, peer, method)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return pool.KindTimeout, fmt.Errorf("no reply within io_timeout %s: %w", timeout, err), false
	}
	return pool.KindServerFailure, err, false
}

// declaredKind is KindMiss for the "absent" exceptions (TCacheMissed,
// TMongoNotFound), KindRefused for the other declared ones.
func declaredKind(err error) pool.Kind {
	switch err.(type) {
	case *rpc.TCacheMissed, *rpc.TMongoNotFound:
		return pool.KindMiss
	}
	return pool.KindRefused
}

// applicationKind classifies a TApplicationException. The generated client
// makes some itself, from a reply it cannot match to its call: a wrong method
// name, a wrong sequence id (a stale reply), a message that is neither reply
// nor exception, a reply without a result. Those mean the stream is out of
// step or the peer is broken: KindServerFailure, the connection closed. Any
// other type is the peer's own answer (KindRefused). The connection stays in
// use after INTERNAL_ERROR and UNKNOWN_METHOD only: after the others (such as
// PROTOCOL_ERROR) the peer's engine ends the session.
func applicationKind(ae thrift.TApplicationException, peer, method string) (pool.Kind, error, bool) {
	switch ae.TypeId() {
	case thrift.WRONG_METHOD_NAME, thrift.BAD_SEQUENCE_ID, thrift.INVALID_MESSAGE_TYPE_EXCEPTION, thrift.MISSING_RESULT:
		return pool.KindServerFailure, fmt.Errorf("reply out of step: %w", ae), false
	}
	keep := ae.TypeId() == thrift.INTERNAL_ERROR || ae.TypeId() == thrift.UNKNOWN_METHOD
	return pool.KindRefused, newApplicationError(peer, method, ae), keep
}
