package servant

import (
	"bytes"
	"context"
	"errors"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
)

// rd_call and mc_get from the request's bytes (view.go). Their decoding
// through the generated code was 1.7 µs of a pipelined Redis GET's 21 µs in
// faed, the largest share after the system calls, and most of its
// allocations (pprof of make bench scenario 5 at c=64). Unlike lc_get's key
// and a my_query hit's strings, which are only looked up, these arguments go
// on into the backend pools, which may keep them past the call (a pipelined
// command waiting for its write, an error's text, a metric's label): so the
// view's bytes are copied out of the session's read buffer first, in one
// allocation, and the strings are views of that copy (owned).

// owned copies the first n bytes of b, the arguments a view read, out of the
// session's buffer: parse the copy again, and its views may be kept.
func owned(b []byte, n int) []byte { return bytes.Clone(b[:n]) }

// rdCallView is rd_call's arguments (1: Context c, 2: string cmd, 3: string
// pool, 4: list<string> keysAndArgs), read from bytes that the call owns.
type rdCallView struct {
	ctxView
	cmd, pool   string
	keysAndArgs []string // nil when the field is absent, as the generated code leaves it
	n           int      // bytes of the arguments, their stop field included
}

// parseRdCallView reads rd_call's arguments from b; ok is false when it
// cannot read them exactly as the generated FunServantRdCallArgs.Read would
// (the request is then left to it). With keep false, it only checks them
// and counts their bytes (n), allocating nothing.
func parseRdCallView(b []byte, keep bool) (v rdCallView, ok bool) {
	return parseRdCallViewIn(b, keep, nil)
}

// parseRdCallViewIn is parseRdCallView, keysAndArgs made in keys (of
// capacity enough for them: rdOwned's) when it can hold them all.
func parseRdCallViewIn(b []byte, keep bool, keys []string) (v rdCallView, ok bool) {
	r := viewReader{b: b, ok: true}
	ok = r.args(func(typ byte, id int16) bool {
		switch {
		case id == 1 && typ == tStruct:
			return v.ctxView.parse(&r)
		case id == 2 && typ == tString:
			v.cmd = view(r.bytes())
		case id == 3 && typ == tString:
			v.pool = view(r.bytes())
		case id == 4 && typ == tList:
			raw, n, ok := r.stringList()
			if !ok {
				return false
			}
			if keep {
				if v.keysAndArgs = keys[:0]; keys == nil || cap(keys) < n {
					v.keysAndArgs = make([]string, 0, n) // not nil when empty, as the generated code's
				}
				eachString(raw, n, func(s []byte) { v.keysAndArgs = append(v.keysAndArgs, view(s)) })
			}
		default:
			return false
		}
		return true
	})
	v.n = r.at
	return v, ok
}

// mcGetView is mc_get's arguments (1: Context c, 2: string pool, 3: string
// key), read from bytes that the call owns.
type mcGetView struct {
	ctxView
	pool, key string
	n         int
}

// parseMcGetView reads mc_get's arguments from b as the generated
// FunServantMcGetArgs.Read would, or reports false.
func parseMcGetView(b []byte) (v mcGetView, ok bool) {
	r := viewReader{b: b, ok: true}
	ok = r.args(func(typ byte, id int16) bool {
		switch {
		case id == 1 && typ == tStruct:
			return v.ctxView.parse(&r)
		case id == 2 && typ == tString:
			v.pool = view(r.bytes())
		case id == 3 && typ == tString:
			v.key = view(r.bytes())
		default:
			return false
		}
		return true
	})
	v.n = r.at
	return v, ok
}

// rdOwned is, in one allocation, what rd_call's view hands on beyond the
// request's bytes (owned): its Context and, for a command of up to
// rdInlineArgs keys and arguments (GET, SET, HGET, EXPIRE…), their strings
// and their boxes for redigo's Do. They were 3 of the 7 allocations of a
// pipelined GET in faed.
type rdOwned struct {
	c    rpc.Context
	keys [rdInlineArgs]string
	args [rdInlineArgs]any
}

const rdInlineArgs = 3

// rdCallProcessor is the generated rd_call processor function, but reading
// the arguments of a session speaking the binary protocol unframed from its
// read buffer; the replies are the generated code's.
type rdCallProcessor struct {
	s   *FunServant
	gen thrift.TProcessorFunction
}

func (p *rdCallProcessor) Process(ctx context.Context, seqID int32, iprot, oprot thrift.TProtocol) (bool, thrift.TException) {
	u, b, ok := viewBytes(iprot)
	var v rdCallView
	if ok {
		v, ok = parseRdCallView(b, false)
	}
	if !ok {
		return p.gen.Process(ctx, seqID, iprot, oprot)
	}
	o := new(rdOwned)
	v, _ = parseRdCallViewIn(owned(b, v.n), true, o.keys[:])
	consumeArgs(ctx, u, iprot, v.n)
	reply, err := p.s.rdCallIn(ctx, v.ownedContextIn(&o.c), v.cmd, v.pool, v.keysAndArgs, o.args[:])
	if err != nil {
		if isAbandon(err) {
			return false, thrift.WrapTException(err)
		}
		x := thrift.NewTApplicationException(thrift.INTERNAL_ERROR, "Internal error processing rd_call: "+err.Error())
		return writeReply(ctx, oprot, "rd_call", seqID, thrift.EXCEPTION, x.Write, thrift.WrapTException(err))
	}
	r := rdCallReply(reply)
	return writeReply(ctx, oprot, "rd_call", seqID, thrift.REPLY, r.write, nil)
}

// mcGetProcessor is mc_get's counterpart of rdCallProcessor.
type mcGetProcessor struct {
	s   *FunServant
	gen thrift.TProcessorFunction
}

func (p *mcGetProcessor) Process(ctx context.Context, seqID int32, iprot, oprot thrift.TProtocol) (bool, thrift.TException) {
	u, b, ok := viewBytes(iprot)
	var v mcGetView
	if ok {
		v, ok = parseMcGetView(b)
	}
	if !ok {
		return p.gen.Process(ctx, seqID, iprot, oprot)
	}
	v, _ = parseMcGetView(owned(b, v.n))
	consumeArgs(ctx, u, iprot, v.n)
	d, err := p.s.McGet(ctx, v.ownedContext(), v.pool, v.key)
	if err != nil {
		if miss, ok := err.(*rpc.TCacheMissed); ok {
			return writeReply(ctx, oprot, "mc_get", seqID, thrift.REPLY, (&rpc.FunServantMcGetResult{Miss: miss}).Write, thrift.WrapTException(err))
		}
		if isAbandon(err) {
			return false, thrift.WrapTException(err)
		}
		x := thrift.NewTApplicationException(thrift.INTERNAL_ERROR, "Internal error processing mc_get: "+err.Error())
		return writeReply(ctx, oprot, "mc_get", seqID, thrift.EXCEPTION, x.Write, thrift.WrapTException(err))
	}
	r := mcGetReply(d)
	return writeReply(ctx, oprot, "mc_get", seqID, thrift.REPLY, r.write, nil)
}

// isAbandon reports whether err is the servant's "client gone" (no reply is
// written), as the generated processors test it.
func isAbandon(err error) bool { return errors.Is(err, thrift.ErrAbandonRequest) }
