package servant

import (
	"bytes"
	"context"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
)

// The hand-written successful replies write exactly the bytes of the
// generated result structs, in the binary and the compact protocol: a
// string (empty too), a binary (nil: no field; empty; 10 KB) and a
// TMemcacheData. None of them allocates.
func TestSuccessReplyBytes(t *testing.T) {
	ctx := context.Background()
	s := "a reply"
	empty := ""
	big := bytes.Repeat([]byte{'v'}, 10<<10)
	d := &rpc.TMemcacheData{Data: []byte("value"), Flags: 7}
	cases := []struct {
		name string
		ours successReply
		gen  thrift.TStruct
	}{
		{"rd_call", rdCallReply(s), &rpc.FunServantRdCallResult{Success: &s}},
		{"rd_call empty", rdCallReply(""), &rpc.FunServantRdCallResult{Success: &empty}},
		{"lc_get", lcGetReply([]byte("v")), &rpc.FunServantLcGetResult{Success: []byte("v")}},
		{"lc_get 10 KB", lcGetReply(big), &rpc.FunServantLcGetResult{Success: big}},
		{"lc_get empty", lcGetReply([]byte{}), &rpc.FunServantLcGetResult{Success: []byte{}}},
		{"lc_get nil", lcGetReply(nil), &rpc.FunServantLcGetResult{}},
		{"mc_get", mcGetReply(d), &rpc.FunServantMcGetResult{Success: d}},
	}
	protocols := map[string]func(thrift.TTransport) thrift.TProtocol{
		"binary":  func(tr thrift.TTransport) thrift.TProtocol { return thrift.NewTBinaryProtocolConf(tr, nil) },
		"compact": func(tr thrift.TTransport) thrift.TProtocol { return thrift.NewTCompactProtocolConf(tr, nil) },
	}
	for pname, newProto := range protocols {
		for _, c := range cases {
			want, got := thrift.NewTMemoryBuffer(), thrift.NewTMemoryBuffer()
			if err := c.gen.Write(ctx, newProto(want)); err != nil {
				t.Fatal(err)
			}
			if err := c.ours.write(ctx, newProto(got)); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Errorf("%s, %s: wrote % x, the generated code % x", pname, c.name, head(got.Bytes()), head(want.Bytes()))
			}
		}
	}

	buf := thrift.NewTMemoryBufferLen(64 << 10)
	oprot := thrift.NewTBinaryProtocolConf(buf, nil)
	for _, c := range cases {
		r := c.ours
		if n := testing.AllocsPerRun(100, func() {
			buf.Reset()
			if err := writeReplyBody(ctx, oprot, r.write); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocations, want 0", c.name, n)
		}
	}
}

// writeReplyBody calls body as writeReply does (a function value it only calls).
func writeReplyBody(ctx context.Context, oprot thrift.TProtocol, body func(context.Context, thrift.TProtocol) error) error {
	return body(ctx, oprot)
}

func head(b []byte) []byte { return b[:min(len(b), 32)] }
