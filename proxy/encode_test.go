package proxy

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
)

// appendCall writes what the generated code writes through a strict
// TBinaryProtocol, byte for byte, for lock and unlock with every shape of
// Context (none, sticky unset, false, true) and of strings (empty, binary,
// long); it leaves other arguments to the protocol, b untouched.
func TestAppendCallAsGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	str := func() string {
		b := make([]byte, r.IntN(3)*r.IntN(300))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return string(b)
	}
	ctx := context.Background()
	for i := range 2000 {
		var c *rpc.Context
		if i%5 != 0 {
			c = &rpc.Context{Rid: r.Int64() - r.Int64(), Reason: str(), UID: r.Int64() - r.Int64()}
			switch i % 3 {
			case 1:
				c.Sticky = thrift.BoolPtr(false)
			case 2:
				c.Sticky = thrift.BoolPtr(true)
			}
		}
		method, args := "lock", thrift.TStruct(&rpc.FunServantLockArgs{C: c, Reason: str(), Key: str()})
		if i%2 == 1 {
			method, args = "unlock", &rpc.FunServantUnlockArgs{C: c, Reason: str(), Key: str()}
		}
		seq := r.Int32() - r.Int32()
		mem := thrift.NewTMemoryBuffer()
		p := thrift.NewTBinaryProtocolConf(mem, &thrift.TConfiguration{TBinaryStrictWrite: thrift.BoolPtr(true)})
		if err := p.WriteMessageBegin(ctx, method, thrift.CALL, seq); err != nil {
			t.Fatal(err)
		}
		if err := args.Write(ctx, p); err != nil {
			t.Fatal(err)
		}
		if err := p.WriteMessageEnd(ctx); err != nil {
			t.Fatal(err)
		}
		prefix := []byte("queued before")
		got, ok := appendCall(bytes.Clone(prefix), method, seq, args)
		if !ok || !bytes.Equal(got, append(prefix, mem.Bytes()...)) {
			t.Fatalf("case %d (%s %+v): ok %v\n got %x\nwant %x", i, method, args, ok, got, append(prefix, mem.Bytes()...))
		}
	}
	b := []byte("x")
	if got, ok := appendCall(b, "lc_get", 1, &rpc.FunServantLcGetArgs{Key: "k"}); ok || !bytes.Equal(got, []byte("x")) {
		t.Errorf("lc_get's arguments appended: %v %q", ok, got)
	}
}
