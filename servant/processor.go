package servant

import (
	"context"
	"errors"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
)

// NewProcessor is s's Thrift processor: the one generated from the IDL, with
// my_query answered by myQueryProcessor, which writes a query cache hit to a
// binary-protocol session as the cached bytes, not decoded and encoded again,
// and my_query, lc_get, rd_call and mc_get reading their arguments from a
// binary-protocol session's read buffer (view.go, backend_view.go). The replies are the same bytes either way.
func NewProcessor(s *FunServant) *rpc.FunServantProcessor {
	p := rpc.NewFunServantProcessor(s)
	p.AddToProcessorMap("my_query", &myQueryProcessor{s: s})
	gen, _ := p.GetProcessorFunction("lc_get")
	p.AddToProcessorMap("lc_get", &lcGetProcessor{s: s, gen: gen})
	gen, _ = p.GetProcessorFunction("rd_call")
	p.AddToProcessorMap("rd_call", &rdCallProcessor{s: s, gen: gen})
	gen, _ = p.GetProcessorFunction("mc_get")
	p.AddToProcessorMap("mc_get", &mcGetProcessor{s: s, gen: gen})
	return p
}

// myQueryProcessor is the generated my_query processor function, but for a
// query cache hit on a session speaking the binary protocol: the reply is then
// written around the cached MysqlResult, which the query cache keeps encoded in
// that protocol (encodeResult). On a hit this saves the decode into a new
// MysqlResult and its encoding, about half the CPU of the call (bench/ 4).
type myQueryProcessor struct{ s *FunServant }

func (p *myQueryProcessor) Process(ctx context.Context, seqID int32, iprot, oprot thrift.TProtocol) (bool, thrift.TException) {
	raw := engine.BinaryTransport(oprot)
	if raw != nil {
		if u, b, ok := viewBytes(iprot); ok {
			if v, ok := parseMyQueryView(b); ok {
				consumeArgs(ctx, u, iprot, v.n)
				enc, r, err := p.s.myQueryFromView(ctx, &v)
				return p.reply(ctx, seqID, oprot, raw, enc, r, err)
			}
		}
	}
	var args rpc.FunServantMyQueryArgs
	if err := args.Read(ctx, iprot); err != nil {
		iprot.ReadMessageEnd(ctx)
		x := thrift.NewTApplicationException(thrift.PROTOCOL_ERROR, err.Error())
		oprot.WriteMessageBegin(ctx, "my_query", thrift.EXCEPTION, seqID)
		x.Write(ctx, oprot)
		oprot.WriteMessageEnd(ctx)
		oprot.Flush(ctx)
		return false, thrift.WrapTException(err)
	}
	iprot.ReadMessageEnd(ctx)
	enc, r, err := p.s.myQueryEncoded(ctx, raw != nil, args.C, args.Pool, args.Table, args.HintId, args.Sql, args.Argv, args.CacheKey)
	return p.reply(ctx, seqID, oprot, raw, enc, r, err)
}

// reply writes my_query's answer: err as the generated code does, a cache
// hit's encoded result (enc) around its bytes, else r.
func (p *myQueryProcessor) reply(ctx context.Context, seqID int32, oprot thrift.TProtocol, raw thrift.TTransport, enc []byte, r *rpc.MysqlResult_, err error) (bool, thrift.TException) {
	if err != nil {
		if errors.Is(err, thrift.ErrAbandonRequest) {
			return false, thrift.WrapTException(err)
		}
		x := thrift.NewTApplicationException(thrift.INTERNAL_ERROR, "Internal error processing my_query: "+err.Error())
		return writeReply(ctx, oprot, "my_query", seqID, thrift.EXCEPTION, x.Write, thrift.WrapTException(err))
	}
	if enc == nil {
		return writeReply(ctx, oprot, "my_query", seqID, thrift.REPLY, (&rpc.FunServantMyQueryResult{Success: r}).Write, nil)
	}
	return writeReply(ctx, oprot, "my_query", seqID, thrift.REPLY, func(ctx context.Context, oprot thrift.TProtocol) error {
		return writeEncodedSuccess(ctx, oprot, raw, "my_query_result", enc)
	}, nil)
}

// writeEncodedSuccess writes a result struct named name whose field 0
// (success, a struct) is enc, that struct encoded in the binary protocol, to
// raw, oprot's transport.
func writeEncodedSuccess(ctx context.Context, oprot thrift.TProtocol, raw thrift.TTransport, name string, enc []byte) error {
	if err := oprot.WriteStructBegin(ctx, name); err != nil {
		return err
	}
	if err := oprot.WriteFieldBegin(ctx, "success", thrift.STRUCT, 0); err != nil {
		return err
	}
	if _, err := raw.Write(enc); err != nil {
		return err
	}
	if err := oprot.WriteFieldEnd(ctx); err != nil {
		return err
	}
	if err := oprot.WriteFieldStop(ctx); err != nil {
		return err
	}
	return oprot.WriteStructEnd(ctx)
}

// writeReply writes one reply message to method name (body is its struct) and flushes it, as
// the generated processor functions do: the call was processed (true) unless
// writing failed; err is the handler's error to report.
func writeReply(ctx context.Context, oprot thrift.TProtocol, name string, seqID int32, typ thrift.TMessageType,
	body func(context.Context, thrift.TProtocol) error, err thrift.TException) (bool, thrift.TException) {
	werr := oprot.WriteMessageBegin(ctx, name, typ, seqID)
	if werr == nil {
		werr = body(ctx, oprot)
	}
	if werr == nil {
		werr = oprot.WriteMessageEnd(ctx)
	}
	if ferr := oprot.Flush(ctx); werr == nil {
		werr = ferr
	}
	if werr != nil {
		return false, thrift.WrapTException(werr)
	}
	return true, err
}
