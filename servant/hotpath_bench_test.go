package servant

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
)

// The in-process hot paths of a call, without sockets: the Thrift codec of a
// request, the generated processor's dispatch into the servant, lcache, the id
// generator and the query cache's decoding of a hit. make bench runs them
// with -benchmem (HOTPATH_BENCH in the Makefile).

func benchServant(b *testing.B) *FunServant {
	b.Helper()
	cfg := baseConfig()
	cfg.IdgenWorkerID = 1
	cfg.Lcache = &LcacheConfig{}
	cfg.Lcache.SetDefaults()
	if err := cfg.Validate("servants"); err != nil {
		b.Fatal(err)
	}
	s, err := New(cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	return s
}

var benchCtx = &rpc.Context{Rid: 1, Reason: "bench"}

// request is one call message as a client writes it (binary protocol).
func request(b *testing.B, name string, args thrift.TStruct) []byte {
	b.Helper()
	buf := thrift.NewTMemoryBuffer()
	p := thrift.NewTBinaryProtocolConf(buf, nil)
	ctx := context.Background()
	if err := p.WriteMessageBegin(ctx, name, thrift.CALL, 1); err != nil {
		b.Fatal(err)
	}
	if err := args.Write(ctx, p); err != nil {
		b.Fatal(err)
	}
	p.WriteMessageEnd(ctx)
	p.Flush(ctx)
	return bytes.Clone(buf.Bytes())
}

// BenchmarkCodecLcGetArgs decodes the arguments of lc_get (a Context and a
// key) and encodes a 100-byte reply: the codec's share of a call.
func BenchmarkCodecLcGetArgs(b *testing.B) {
	msg := request(b, "lc_get", &rpc.FunServantLcGetArgs{C: benchCtx, Key: "bench:key"})
	in, out := thrift.NewTMemoryBuffer(), thrift.NewTMemoryBuffer()
	pin, pout := thrift.NewTBinaryProtocolConf(in, nil), thrift.NewTBinaryProtocolConf(out, nil)
	ctx := context.Background()
	value := bytes.Repeat([]byte{'v'}, 100)
	b.ReportAllocs()
	for b.Loop() {
		in.Reset()
		in.Write(msg)
		out.Reset()
		if _, _, _, err := pin.ReadMessageBegin(ctx); err != nil {
			b.Fatal(err)
		}
		var args rpc.FunServantLcGetArgs
		if err := args.Read(ctx, pin); err != nil {
			b.Fatal(err)
		}
		res := rpc.FunServantLcGetResult{Success: value}
		if err := res.Write(ctx, pout); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDispatch runs whole calls through the generated processor into
// the servant (read the request, call the method, write the reply), from and
// into memory: noop (no Context, no servant bookkeeping), ping and lc_get of
// 100 bytes (a Context checked, the call counted and timed).
func BenchmarkDispatch(b *testing.B) {
	s := benchServant(b)
	if _, err := s.LcSet(context.Background(), benchCtx, "bench:key", bytes.Repeat([]byte{'v'}, 100)); err != nil {
		b.Fatal(err)
	}
	proc := rpc.NewFunServantProcessor(s)
	for _, c := range []struct {
		name string
		args thrift.TStruct
	}{
		{"noop", &rpc.FunServantNoopArgs{X: 7}},
		{"ping", &rpc.FunServantPingArgs{C: benchCtx}},
		{"lc_get", &rpc.FunServantLcGetArgs{C: benchCtx, Key: "bench:key"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			msg := request(b, c.name, c.args)
			in, out := thrift.NewTMemoryBuffer(), thrift.NewTMemoryBuffer()
			pin, pout := thrift.NewTBinaryProtocolConf(in, nil), thrift.NewTBinaryProtocolConf(out, nil)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				in.Reset()
				in.Write(msg)
				out.Reset()
				if ok, err := proc.Process(ctx, pin, pout); !ok || err != nil {
					b.Fatalf("%s: %v %v", c.name, ok, err)
				}
			}
		})
	}
}

// BenchmarkLcache is LcSet and LcGet on the servant, values of 100 B and 10 KB,
// from parallel goroutines on a key each.
func BenchmarkLcache(b *testing.B) {
	s := benchServant(b)
	for _, size := range []int{100, 10 << 10} {
		value := bytes.Repeat([]byte{'v'}, size)
		b.Run(fmt.Sprintf("op=set/bytes=%d", size), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.LcSet(context.Background(), benchCtx, "bench:set", value); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
		b.Run(fmt.Sprintf("op=get/bytes=%d", size), func(b *testing.B) {
			key := fmt.Sprintf("bench:get:%d", size)
			s.LcSet(context.Background(), benchCtx, key, value)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if v, err := s.LcGet(context.Background(), benchCtx, key); err != nil || len(v) != size {
						b.Fatal(len(v), err)
					}
				}
			})
		})
	}
}

// BenchmarkIdNext is id_next on the servant from parallel goroutines.
func BenchmarkIdNext(b *testing.B) {
	s := benchServant(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.IDNext(context.Background(), benchCtx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkQueryCacheDecode decodes a cached one-row my_query result: the
// work of a cache hit after the store's lookup.
func BenchmarkQueryCacheDecode(b *testing.B) {
	enc, err := encodeResult(&rpc.MysqlResult_{Cols: []string{"uid", "name", "gold"}, Rows: [][]string{{"1", "bench", "100"}}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		r, err := decodeResult(enc)
		if err != nil || len(r.Rows) != 1 {
			b.Fatal(r, err)
		}
	}
}

// BenchmarkClassify is my_query's statement check of a one-row SELECT:
// lexed every time (classify) and remembered (classifyCache).
func BenchmarkClassify(b *testing.B) {
	const sql = "SELECT uid, name, gold FROM BenchUser WHERE uid = ?"
	b.Run("lexed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if k, err := classify(sql); err != nil || k != kindRows {
				b.Fatal(k, err)
			}
		}
	})
	b.Run("remembered", func(b *testing.B) {
		var c classifyCache
		var overflow atomic.Int64
		b.ReportAllocs()
		for b.Loop() {
			if k, err := c.classify(sql, &overflow); err != nil || k != kindRows {
				b.Fatal(k, err)
			}
		}
	})
}
