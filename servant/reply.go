package servant

import (
	"context"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
)

// The successful replies of the calls read from the session's buffer
// (lc_get, mc_get, rd_call), written without the generated result structs.
// The generated Write formats its receiver with %T on every error path, so
// the struct, and for rd_call its *string, went to the heap: 1 to 2 of a
// call's allocations (pprof -sample_index=alloc_objects of faed under cmd/stress
// -x 16 and -x 128). These write the same bytes (TestSuccessReplyBytes
// compares them with the generated code's); their errors are the protocol's.

// successReply is a <method>_result struct holding its success field (id 0)
// only, made by rdCallReply, lcGetReply or mcGetReply.
type successReply struct {
	name string // the result struct's name, e.g. "rd_call_result"
	set  bool   // the field is written (the generated code's IsSetSuccess)
	typ  thrift.TType
	s    string             // rd_call's (a string)
	b    []byte             // lc_get's (a binary)
	d    *rpc.TMemcacheData // mc_get's (a struct)
}

func rdCallReply(s string) successReply {
	return successReply{name: "rd_call_result", set: true, typ: thrift.STRING, s: s}
}

// lcGetReply is lc_get's result: a nil b writes no field, as the generated code's.
func lcGetReply(b []byte) successReply {
	return successReply{name: "lc_get_result", set: b != nil, typ: thrift.STRING, b: b}
}

func mcGetReply(d *rpc.TMemcacheData) successReply {
	return successReply{name: "mc_get_result", set: d != nil, typ: thrift.STRUCT, d: d}
}

func (r *successReply) write(ctx context.Context, oprot thrift.TProtocol) error {
	if err := oprot.WriteStructBegin(ctx, r.name); err != nil {
		return err
	}
	if r.set {
		if err := oprot.WriteFieldBegin(ctx, "success", r.typ, 0); err != nil {
			return err
		}
		var err error
		switch {
		case r.typ == thrift.STRUCT:
			err = r.d.Write(ctx, oprot)
		case r.name == "lc_get_result":
			err = oprot.WriteBinary(ctx, r.b)
		default:
			err = oprot.WriteString(ctx, r.s)
		}
		if err != nil {
			return err
		}
		if err := oprot.WriteFieldEnd(ctx); err != nil {
			return err
		}
	}
	if err := oprot.WriteFieldStop(ctx); err != nil {
		return err
	}
	return oprot.WriteStructEnd(ctx)
}
