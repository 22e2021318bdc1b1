package servant

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
)

// parseLcGetView reads what the generated FunServantLcGetArgs.Read reads,
// exactly its bytes; a cut request, or a field it does not expect, is left
// to the generated code.
func TestParseLcGetViewAsGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 1000 {
		args := &rpc.FunServantLcGetArgs{Key: randString(r)}
		if i%5 != 0 {
			args.C = &rpc.Context{Rid: r.Int64(), Reason: randString(r), UID: r.Int64()}
			if i%3 == 1 {
				args.C.Sticky = thrift.BoolPtr(i%2 == 0)
			}
		}
		b := encodeArgs(t, args)
		v, ok := parseLcGetView(append(bytes.Clone(b), 0x80, 0x01))
		if !ok || v.n != len(b) {
			t.Fatalf("case %d: ok %v, read %d of %d bytes", i, ok, v.n, len(b))
		}
		var want rpc.FunServantLcGetArgs
		mem := thrift.NewTMemoryBuffer()
		mem.Write(b)
		if err := want.Read(context.Background(), thrift.NewTBinaryProtocolConf(mem, nil)); err != nil {
			t.Fatal(err)
		}
		if got := (&rpc.FunServantLcGetArgs{C: v.context(), Key: v.key}); !reflect.DeepEqual(got, &want) {
			t.Fatalf("case %d: view read %+v, generated %+v", i, got, &want)
		}
		for n := range len(b) {
			if _, ok := parseLcGetView(b[:n]); ok {
				t.Fatalf("case %d: read from the first %d of %d bytes", i, n, len(b))
			}
		}
	}
	if _, ok := parseLcGetView([]byte{tString, 0, 3, 0, 0, 0, 0, 0}); ok {
		t.Error("an unknown field was read")
	}
}

// Over a real engine session (binary protocol, TCP and unix), lc_get read
// from the request's bytes answers as the generated path does: the value, a
// TCacheMissed naming the key, the key whole in the trace stream, the call
// counted. (The compact protocol goes through the generated code: cmd/faed's
// tests of every protocol.)
func TestLcGetFromRequestBytes(t *testing.T) {
	cfg := baseConfig()
	cfg.Lcache = lcacheConfig(100)
	cfg.ProfilerRate, cfg.ProfilerMaxBodySize = 10000, 1000
	s, tb := tracedServant(t, cfg)
	tcp, unix := serveProcessor(t, NewProcessor(s))
	c := &rpc.Context{Rid: 9001, Reason: "lcview.test"}
	for name, cl := range map[string]*rpc.FunServantClient{"tcp": tcp, "unix": unix} {
		key := "lcview:" + name + ":" + strings.Repeat("k", 300)
		if _, err := s.LcSet(context.Background(), c, key, []byte("value of "+name)); err != nil {
			t.Fatal(err)
		}
		hits, misses, calls := s.Lcache.Hits.Load(), s.Lcache.Misses.Load(), s.Stats("lc.get").Calls.Load()
		got, err := cl.LcGet(context.Background(), c, key)
		if err != nil || string(got) != "value of "+name {
			t.Fatalf("%s: %q, %v", name, got, err)
		}
		_, err = cl.LcGet(context.Background(), c, key+":absent")
		var miss *rpc.TCacheMissed
		if !errors.As(err, &miss) || miss.GetMessage() != "lcache missed: "+key+":absent" {
			t.Fatalf("%s: absent key: %v", name, err)
		}
		_, err = cl.LcGet(context.Background(), nil, key) // the generated client sends an empty Context
		if err == nil || !strings.Contains(err.Error(), "Internal error processing lc_get: ") || !strings.Contains(err.Error(), "invalid context: rid is 0") {
			t.Fatalf("%s: empty Context: %v", name, err)
		}
		if h, m, n := s.Lcache.Hits.Load()-hits, s.Lcache.Misses.Load()-misses, s.Stats("lc.get").Calls.Load()-calls; h != 1 || m != 1 || n != 3 {
			t.Errorf("%s: %d hits, %d misses, %d calls; want 1, 1, 3", name, h, m, n)
		}
		if n := strings.Count(strings.Join(tb.lines(), "\n"), `args="key=\"`+key+`\""`); n != 1 {
			t.Errorf("%s: the key whole in %d trace lines, want 1 (the hit)", name, n)
		}
	}
}

// TestLcSetNoValue: an lc_set that sends no value (a PHP or Python null: the
// field left out) stores an empty value, which lc_get answers: before (found
// by review), it stored nil, and every lc_get of the key answered no result
// at all, a MISSING_RESULT in the client, while counted as a success.
func TestLcSetNoValue(t *testing.T) {
	cfg := baseConfig()
	cfg.Lcache = lcacheConfig(100)
	s, _ := tracedServant(t, cfg)
	tcp, _ := serveProcessor(t, NewProcessor(s))
	c := &rpc.Context{Rid: 9002, Reason: "lcset.null"}
	if ok, err := s.LcSet(context.Background(), c, "lc:null", nil); !ok || err != nil {
		t.Fatalf("lc_set of no value: %t, %v", ok, err)
	}
	got, err := tcp.LcGet(context.Background(), c, "lc:null")
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("lc_get of a key set with no value: %q (nil %t), %v; want an empty value", got, got == nil, err)
	}
}
