package proxy

import (
	"context"
	"errors"
	"strings"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/pool"
)

// This file holds how a peer's TApplicationException reaches faed's own
// client. The generated processor (idl/fun/rpc/servant.go) answers every error
// of the servant that is not a declared exception with a new
// TApplicationException of type INTERNAL_ERROR and the message
// "Internal error processing <method>: " + err.Error(): returned as it came, a
// peer's exception would carry that prefix twice and lose its type id (an
// UNKNOWN_METHOD from a peer of an older version would read as INTERNAL_ERROR).
// ServantError gives the text, PassExceptions the type.

// ApplicationError is the cause (pool.Error.Err, found with errors.As) of a
// forwarded call that the peer answered with a TApplicationException: the
// peer's own failure, such as its MySQL being down, not the link's.
type ApplicationError struct {
	Peer string // the peer's address
	Type int32  // the exception's type id: thrift.INTERNAL_ERROR, thrift.UNKNOWN_METHOD…
	// Message is the peer's message, without the "Internal error processing
	// <method>: " that the peer's processor puts before its servant's error.
	Message string
}

func (e *ApplicationError) Error() string { return e.Message }

// newApplicationError is the ApplicationError of ae, the answer of peer to method.
func newApplicationError(peer, method string, ae thrift.TApplicationException) *ApplicationError {
	msg := ae.Error()
	if ae.TypeId() == thrift.INTERNAL_ERROR {
		msg = strings.TrimPrefix(msg, "Internal error processing "+method+": ")
	}
	return &ApplicationError{Peer: peer, Type: ae.TypeId(), Message: msg}
}

// forwardedError is what ServantError makes of a peer's TApplicationException:
// its text names the peer once; it unwraps to the *pool.Error of the call.
type forwardedError struct {
	err *pool.Error
	ae  *ApplicationError
}

func (e *forwardedError) Error() string { return "peer " + e.ae.Peer + ": " + e.ae.Message }
func (e *forwardedError) Unwrap() error { return e.err }

// ServantError is what a servant method returns for err, an error of
// Proxies.Call, so that faed's client sees what the peer answered:
//   - nil and a peer's declared exception (*rpc.TCacheMissed…) are returned as
//     they are: the generated processor sends a declared exception as itself;
//   - a peer's TApplicationException (an *ApplicationError cause) becomes an
//     error reading "peer <addr>: <the peer's message>", which the processor
//     sends as INTERNAL_ERROR "Internal error processing <method>: peer <addr>:
//     <message>": one prefix, the peer named once. When the peer's type was not
//     INTERNAL_ERROR and the processor is wrapped in PassExceptions, the client
//     gets the peer's type id and "peer <addr>: <message>" instead;
//   - anything else (the peer unreachable, a timeout, an open breaker…) is
//     returned as is: the *pool.Error names the peer.
//
// ctx is the ctx the servant method was given, or one derived from it. Call
// ServantError on the call's goroutine, once, with the error the method returns.
// The result still unwraps to err: errors.Is(res, pool.KindRefused) holds.
func ServantError(ctx context.Context, err error) error {
	var pe *pool.Error
	var ae *ApplicationError
	if !errors.As(err, &pe) || !errors.As(err, &ae) {
		return err
	}
	fe := &forwardedError{err: pe, ae: ae}
	if p, ok := ctx.Value(passKey{}).(*passProtocol); ok && ae.Type != thrift.INTERNAL_ERROR {
		p.pass, p.typeID, p.message = true, ae.Type, fe.Error()
	}
	return fe
}

// PassExceptions is a thrift.ProcessorMiddleware for faed's processor:
//
//	thrift.WrapProcessor(rpc.NewFunServantProcessor(svt), proxy.PassExceptions)
//
// When a servant method returns ServantError's value for a peer's
// TApplicationException whose type is not INTERNAL_ERROR, the exception the
// processor writes gets the peer's type id and the message "peer <addr>:
// <message>". Every other reply is written unchanged. It costs each call one
// small allocation (passCall: the ctx and the protocol wrapper in one).
func PassExceptions(name string, next thrift.TProcessorFunction) thrift.TProcessorFunction {
	return thrift.WrappedTProcessorFunction{Wrapped: func(ctx context.Context, seqID int32, in, out thrift.TProtocol) (bool, thrift.TException) {
		c := &passCall{Context: ctx, p: passProtocol{TProtocol: out}}
		return next.Process(c, seqID, in, &c.p)
	}}
}

type passKey struct{}

// passCall is the ctx of a call under PassExceptions: the call's ctx with
// its passProtocol as the value of passKey (what context.WithValue would
// make, in the same allocation as the protocol).
type passCall struct {
	context.Context
	p passProtocol
}

func (c *passCall) Value(key any) any {
	if _, ok := key.(passKey); ok {
		return &c.p
	}
	return c.Context.Value(key)
}

// passProtocol is the output protocol of one call under PassExceptions. The
// generated processor writes an error as WriteMessageBegin(EXCEPTION), then
// thrift's TApplicationException.Write: its message (the one string) and its
// type id (the one i32); once ServantError has marked the call, those two are
// replaced by the peer's.
type passProtocol struct {
	thrift.TProtocol
	pass      bool // set by ServantError
	typeID    int32
	message   string
	exception bool // between WriteMessageBegin(EXCEPTION) and WriteMessageEnd of a marked call
}

// Unwrap returns the protocol p writes to (see engine.BinaryTransport).
func (p *passProtocol) Unwrap() thrift.TProtocol { return p.TProtocol }

func (p *passProtocol) WriteMessageBegin(ctx context.Context, name string, typeID thrift.TMessageType, seqID int32) error {
	p.exception = p.pass && typeID == thrift.EXCEPTION
	return p.TProtocol.WriteMessageBegin(ctx, name, typeID, seqID)
}

func (p *passProtocol) WriteMessageEnd(ctx context.Context) error {
	p.exception = false
	return p.TProtocol.WriteMessageEnd(ctx)
}

func (p *passProtocol) WriteString(ctx context.Context, s string) error {
	if p.exception {
		s = p.message
	}
	return p.TProtocol.WriteString(ctx, s)
}

func (p *passProtocol) WriteI32(ctx context.Context, v int32) error {
	if p.exception {
		v = p.typeID
	}
	return p.TProtocol.WriteI32(ctx, v)
}
