package servant

import (
	"context"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
)

// lcGetView is lc_get's arguments read from the request's bytes (view.go):
// its key a view, used only to look the value up and copied into any text
// that outlives the call (the miss's message).
type lcGetView struct {
	ctxView
	key string
	n   int // bytes of the arguments, their stop field included
}

// parseLcGetView reads lc_get's arguments (1: Context c, 2: string key)
// from b; ok is false when it cannot read them exactly as the generated
// FunServantLcGetArgs.Read would.
func parseLcGetView(b []byte) (v lcGetView, ok bool) {
	r := viewReader{b: b, ok: true}
	ok = r.args(func(typ byte, id int16) bool {
		switch {
		case id == 1 && typ == tStruct:
			return v.ctxView.parse(&r)
		case id == 2 && typ == tString:
			v.key = view(r.bytes())
			return true
		}
		return false
	})
	v.n = r.at
	return v, ok
}

// lcGetProcessor is the generated lc_get processor function, but reading the
// arguments of a session speaking the binary protocol unframed from its read
// buffer (lc_get's decoding was a third of its CPU beyond a noop's: pprof of
// make bench scenario 3). The replies are the generated code's.
type lcGetProcessor struct {
	s   *FunServant
	gen thrift.TProcessorFunction
}

func (p *lcGetProcessor) Process(ctx context.Context, seqID int32, iprot, oprot thrift.TProtocol) (bool, thrift.TException) {
	u, b, ok := viewBytes(iprot)
	var v lcGetView
	if ok {
		v, ok = parseLcGetView(b)
	}
	if !ok {
		return p.gen.Process(ctx, seqID, iprot, oprot)
	}
	consumeArgs(ctx, u, iprot, v.n)
	value, err := p.s.LcGet(ctx, v.context(), v.key)
	if err != nil {
		if miss, ok := err.(*rpc.TCacheMissed); ok {
			return writeReply(ctx, oprot, "lc_get", seqID, thrift.REPLY, (&rpc.FunServantLcGetResult{Miss: miss}).Write, thrift.WrapTException(err))
		}
		x := thrift.NewTApplicationException(thrift.INTERNAL_ERROR, "Internal error processing lc_get: "+err.Error())
		return writeReply(ctx, oprot, "lc_get", seqID, thrift.EXCEPTION, x.Write, thrift.WrapTException(err))
	}
	r := lcGetReply(value)
	return writeReply(ctx, oprot, "lc_get", seqID, thrift.REPLY, r.write, nil)
}
