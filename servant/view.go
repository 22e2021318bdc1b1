package servant

import (
	"context"
	"encoding/binary"
	"unsafe"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
)

// Arguments read from the request's bytes (engine.Unread) for the calls
// whose decoding through the generated code costs a large share of their
// CPU: my_query (mysql_view.go) and lc_get (lcache_view.go). A view reads a
// request exactly as the generated code would, or not at all (the request is
// then left to the generated code); its strings share the session's read
// buffer until the call copies them.

// Thrift binary protocol type ids (the library's thrift.TType values).
const (
	tStop   = byte(thrift.STOP)
	tBool   = byte(thrift.BOOL)
	tI64    = byte(thrift.I64)
	tString = byte(thrift.STRING)
	tStruct = byte(thrift.STRUCT)
	tList   = byte(thrift.LIST)
)

// viewReader reads the binary protocol from b; ok turns false at the first
// read past b or of a negative length, after which every read returns zero.
type viewReader struct {
	b  []byte
	at int
	ok bool
}

func (r *viewReader) take(n int) []byte {
	if !r.ok || n < 0 || n > len(r.b)-r.at {
		r.ok = false
		return nil
	}
	p := r.b[r.at : r.at+n]
	r.at += n
	return p
}

func (r *viewReader) byte1() byte {
	if p := r.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (r *viewReader) i16() int16 {
	if p := r.take(2); p != nil {
		return int16(binary.BigEndian.Uint16(p))
	}
	return 0
}

func (r *viewReader) i32() int32 {
	if p := r.take(4); p != nil {
		return int32(binary.BigEndian.Uint32(p))
	}
	return 0
}

func (r *viewReader) i64() int64 {
	if p := r.take(8); p != nil {
		return int64(binary.BigEndian.Uint64(p))
	}
	return 0
}

// bytes reads a string or binary: a 4-byte length, then the bytes.
func (r *viewReader) bytes() []byte {
	return r.take(int(r.i32()))
}

// field reads a field's head: its type, and its id unless the type is stop.
func (r *viewReader) field() (typ byte, id int16) {
	if typ = r.byte1(); typ == tStop {
		return typ, 0
	}
	return typ, r.i16()
}

// args reads the fields of an arguments struct through its stop field,
// each by field (given its type and id; it reads the value from r), which
// reports false for a field
// the view does not take; false when one is not taken or the bytes end
// first. r.at is then the arguments' length.
func (r *viewReader) args(field func(typ byte, id int16) bool) bool {
	for {
		typ, id := r.field()
		switch {
		case !r.ok:
			return false
		case typ == tStop:
			return true
		case !field(typ, id) || !r.ok:
			return false
		}
	}
}

// stringList reads a list<string> (its element type, count and elements):
// n is the count and raw the elements' bytes (see eachString); ok is false
// when the elements are not strings, the count is negative or larger than
// the bytes could hold, or the bytes end first.
func (r *viewReader) stringList() (raw []byte, n int, ok bool) {
	if r.byte1() != tString {
		return nil, 0, false
	}
	n = int(r.i32())
	if n < 0 || n > len(r.b) {
		return nil, 0, false
	}
	start := r.at
	for range n {
		if r.bytes(); !r.ok {
			return nil, 0, false
		}
	}
	return r.b[start:r.at], n, true
}

// eachString calls f with each of the n strings of raw, elements read by
// stringList.
func eachString(raw []byte, n int, f func(s []byte)) {
	r := viewReader{b: raw, ok: true}
	for range n {
		f(r.bytes())
	}
}

// view is the string of p, sharing its bytes (see myQueryView).
func view(p []byte) string {
	if len(p) == 0 {
		return ""
	}
	return unsafe.String(&p[0], len(p))
}

// ctxView is a Context read from the request's bytes, its reason a view.
type ctxView struct {
	c                 rpc.Context
	hasC              bool
	sticky, hasSticky bool
	reason            []byte
}

// parse reads the Context struct (field 1 of every method with one).
func (v *ctxView) parse(r *viewReader) bool {
	*v = ctxView{hasC: true}
	return r.args(func(typ byte, id int16) bool {
		switch {
		case id == 1 && typ == tI64:
			v.c.Rid = r.i64()
		case id == 2 && typ == tString:
			v.reason = r.bytes()
		case id == 3 && typ == tI64:
			v.c.UID = r.i64()
		case id == 4 && typ == tBool:
			v.sticky, v.hasSticky = r.byte1() == 1, true // as the library: only 1 is true
		default:
			return false
		}
		return true
	})
}

// context returns the call's Context, its reason a string of its own (the
// Context goes to the call's plugins and logs); nil when the request had none.
func (v *ctxView) context() *rpc.Context {
	c := v.ownedContext()
	if c != nil {
		c.Reason = string(v.reason)
	}
	return c
}

// ownedContext is context with the reason a view of the request's bytes:
// for a view parsed from bytes the call owns (backend_view.go).
func (v *ctxView) ownedContext() *rpc.Context {
	if !v.hasC {
		return nil
	}
	return v.ownedContextIn(new(rpc.Context))
}

// ownedContextIn is ownedContext made in *c (part of a larger allocation:
// rdOwned), which it returns; nil, and c untouched, when the request had none.
func (v *ctxView) ownedContextIn(c *rpc.Context) *rpc.Context {
	if !v.hasC {
		return nil
	}
	*c = v.c
	c.Reason = view(v.reason)
	if v.hasSticky {
		c.Sticky = thrift.BoolPtr(v.sticky)
	}
	return c
}

// viewBytes returns the request's bytes that a view may read, from a
// session speaking the binary protocol unframed (engine.Unread); ok is
// false for any other, whose arguments the generated code reads.
func viewBytes(iprot thrift.TProtocol) (u engine.Unread, b []byte, ok bool) {
	u = engine.UnreadOf(iprot)
	if u == (engine.Unread{}) {
		return u, nil, false
	}
	return u, u.Bytes(), true
}

// consumeArgs ends the reading of a request whose n bytes of arguments a
// view read: they are discarded from the session's buffer (where they stay
// until the session reads again) and the message is ended.
func consumeArgs(ctx context.Context, u engine.Unread, iprot thrift.TProtocol, n int) {
	u.Discard(n)
	iprot.ReadMessageEnd(ctx)
}
