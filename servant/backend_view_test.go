package servant

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/testenv"
	"github.com/fae-go/fae/pool"
)

// readGenerated reads b with the generated decoder of args; it returns how
// many bytes it read.
func readGenerated(t testing.TB, b []byte, args thrift.TStruct) int {
	t.Helper()
	mem := thrift.NewTMemoryBuffer()
	mem.Write(b)
	if err := args.Read(context.Background(), thrift.NewTBinaryProtocolConf(mem, nil)); err != nil {
		t.Fatalf("the generated decoder refuses %d bytes a view read: %v", len(b), err)
	}
	return len(b) - mem.Len()
}

func randContext(r *rand.Rand, i int) *rpc.Context {
	if i%5 == 0 {
		return nil
	}
	c := &rpc.Context{Rid: r.Int64(), Reason: randString(r), UID: r.Int64()}
	if i%3 == 1 {
		c.Sticky = thrift.BoolPtr(i%2 == 0)
	}
	return c
}

// parseRdCallView and parseMcGetView read what the generated decoders read,
// the same values (keysAndArgs absent stays nil, empty stays empty), exactly
// their bytes, and nothing from a cut request or an unexpected field; the
// check-only pass (keep false) counts the same bytes.
func TestParseBackendViewsAsGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 1000 {
		rd := &rpc.FunServantRdCallArgs{C: randContext(r, i), Cmd: randString(r), Pool: randString(r)}
		if i%4 != 0 {
			rd.KeysAndArgs_ = make([]string, r.IntN(6))
			for j := range rd.KeysAndArgs_ {
				rd.KeysAndArgs_[j] = randString(r)
			}
		}
		b := encodeArgs(t, rd)
		check, ok1 := parseRdCallView(append(bytes.Clone(b), 0x80, 0x01), false)
		v, ok2 := parseRdCallView(append(bytes.Clone(b), 0x80, 0x01), true)
		if !ok1 || !ok2 || check.n != len(b) || v.n != len(b) {
			t.Fatalf("rd_call case %d: ok %v %v, read %d and %d of %d bytes", i, ok1, ok2, check.n, v.n, len(b))
		}
		var want rpc.FunServantRdCallArgs
		readGenerated(t, b, &want)
		if got := (&rpc.FunServantRdCallArgs{C: v.ownedContext(), Cmd: v.cmd, Pool: v.pool, KeysAndArgs_: v.keysAndArgs}); !reflect.DeepEqual(got, &want) {
			t.Fatalf("rd_call case %d: view read %+v, generated %+v (C nil: %v %v; keys nil: %v %v)", i, got, &want, got.C == nil, want.C == nil, got.KeysAndArgs_ == nil, want.KeysAndArgs_ == nil)
		}
		// In an rdOwned: the same values, the keys in its array when they fit.
		o := new(rdOwned)
		vo, ok3 := parseRdCallViewIn(append(bytes.Clone(b), 0x80, 0x01), true, o.keys[:])
		if got := (&rpc.FunServantRdCallArgs{C: vo.ownedContextIn(&o.c), Cmd: vo.cmd, Pool: vo.pool, KeysAndArgs_: vo.keysAndArgs}); !ok3 || !reflect.DeepEqual(got, &want) {
			t.Fatalf("rd_call case %d in an rdOwned: view read %#v %#v, generated %#v %#v", i, got.C, got.KeysAndArgs_, want.C, want.KeysAndArgs_)
		}
		if inArray := len(vo.keysAndArgs) > 0 && &vo.keysAndArgs[0] == &o.keys[0]; inArray != (len(vo.keysAndArgs) > 0 && len(vo.keysAndArgs) <= rdInlineArgs) {
			t.Fatalf("rd_call case %d: %d keys and arguments in rdOwned's array: %v", i, len(vo.keysAndArgs), inArray)
		}
		for n := range len(b) {
			if _, ok := parseRdCallView(b[:n], false); ok {
				t.Fatalf("rd_call case %d: read from the first %d of %d bytes", i, n, len(b))
			}
		}

		mc := &rpc.FunServantMcGetArgs{C: randContext(r, i), Pool: randString(r), Key: randString(r)}
		b = encodeArgs(t, mc)
		w, ok := parseMcGetView(append(bytes.Clone(b), 0x80, 0x01))
		if !ok || w.n != len(b) {
			t.Fatalf("mc_get case %d: ok %v, read %d of %d bytes", i, ok, w.n, len(b))
		}
		var wantMc rpc.FunServantMcGetArgs
		readGenerated(t, b, &wantMc)
		if got := (&rpc.FunServantMcGetArgs{C: w.ownedContext(), Pool: w.pool, Key: w.key}); !reflect.DeepEqual(got, &wantMc) {
			t.Fatalf("mc_get case %d: view read %+v, generated %+v", i, got, &wantMc)
		}
		for n := range len(b) {
			if _, ok := parseMcGetView(b[:n]); ok {
				t.Fatalf("mc_get case %d: read from the first %d of %d bytes", i, n, len(b))
			}
		}
	}
	// A list of another element type, a negative or huge length, an
	// unknown field: left to the generated code.
	for name, b := range map[string][]byte{
		"i64 elements":   {tList, 0, 4, tI64, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, tStop},
		"negative count": {tList, 0, 4, tString, 0xff, 0xff, 0xff, 0xff, tStop},
		"huge count":     {tList, 0, 4, tString, 0x7f, 0, 0, 0, tStop},
		"unknown field":  {tString, 0, 9, 0, 0, 0, 0, tStop},
		"mistyped cmd":   {tI64, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, tStop},
	} {
		if _, ok := parseRdCallView(b, true); ok {
			t.Errorf("rd_call: %s read", name)
		}
		if _, ok := parseMcGetView(b); ok && name != "i64 elements" && name != "negative count" && name != "huge count" {
			t.Errorf("mc_get: %s read", name)
		}
	}
}

// backendViewServant is a servant on a private Redis and memcached, served
// through NewProcessor over a real engine (TCP and a unix socket).
func backendViewServant(t *testing.T) (*FunServant, *traceBuffer, string, string) {
	t.Helper()
	rds, mcd := testenv.StartRedis(t), testenv.StartMemcached(t)
	cfg := baseConfig()
	cfg.ProfilerRate, cfg.ProfilerMaxBodySize = 10000, 1000
	var rd pool.RedisConfig
	rd.SetDefaults()
	var rs pool.RedisServerConfig
	rs.SetDefaults()
	rs.Addr = rds.Addr()
	rd.Pools = []pool.RedisPoolConfig{{Name: "default", Servers: []pool.RedisServerConfig{rs}}}
	cfg.Redis = &rd
	cfg.Memcache = memcacheConfig(4 * time.Second)
	cfg.Memcache.Servers[0].Port = pool.Port(mcd.Port)
	s, tb := tracedServant(t, cfg)
	tcp, unix := serveProcessorAt(t, NewProcessor(s))
	return s, tb, tcp, unix
}

// Over a real engine session, rd_call and mc_get read from the request's
// bytes answer as the generated path does, against real Redis and
// memcached: values, a missing key's errors, a JSON array, an unknown pool,
// the calls counted and traced whole.
func TestBackendCallsFromRequestBytes(t *testing.T) {
	s, tb, tcpAddr, unixPath := backendViewServant(t)
	c := &rpc.Context{Rid: 9002, Reason: "backendview.test"}
	for network, addr := range map[string]string{"tcp": tcpAddr, "unix": unixPath} {
		cl := client(t, network, addr)
		key := "bview:" + network + ":" + strings.Repeat("k", 200)
		ctx := context.Background()
		calls := s.Stats("rd.call").Calls.Load()
		if r, err := cl.RdCall(ctx, c, "SET", "default", []string{key, "value of " + network}); err != nil || r != "OK" {
			t.Fatalf("%s: SET: %q, %v", network, r, err)
		}
		if r, err := cl.RdCall(ctx, c, "get", "default", []string{key}); err != nil || r != "value of "+network {
			t.Fatalf("%s: GET: %q, %v", network, r, err)
		}
		if r, err := cl.RdCall(ctx, c, "MGET", "default", []string{key, key + ":absent"}); err != nil || r != `["value of `+network+`",""]` {
			t.Fatalf("%s: MGET: %q, %v", network, r, err)
		}
		_, err := cl.RdCall(ctx, c, "GET", "default", []string{key + ":absent"})
		if err == nil || !strings.Contains(err.Error(), "Internal error processing rd_call: ") || !strings.Contains(err.Error(), "key not exists") {
			t.Fatalf("%s: GET of an absent key: %v", network, err)
		}
		_, err = cl.RdCall(ctx, c, "GET", "nosuchpool", []string{key})
		if err == nil || !strings.Contains(err.Error(), `"nosuchpool"`) {
			t.Fatalf("%s: unknown pool: %v", network, err)
		}
		if n := s.Stats("rd.call").Calls.Load() - calls; n != 5 {
			t.Errorf("%s: %d rd.call calls counted, want 5", network, n)
		}
		if n := strings.Count(strings.Join(tb.lines(), "\n"), key+`\" \"value of `+network); n != 1 {
			t.Errorf("%s: the SET's arguments whole in %d trace lines, want 1", network, n)
		}

		if _, err := s.McSet(ctx, c, "default", key, &rpc.TMemcacheData{Data: []byte("mc " + network), Flags: -7}, 0); err != nil {
			t.Fatal(err)
		}
		d, err := cl.McGet(ctx, c, "default", key)
		if err != nil || string(d.GetData()) != "mc "+network || d.GetFlags() != -7 {
			t.Fatalf("%s: mc_get: %+v, %v", network, d, err)
		}
		_, err = cl.McGet(ctx, c, "default", key+":absent")
		var miss *rpc.TCacheMissed
		if !errors.As(err, &miss) || miss.GetMessage() != "memcache: cache miss: "+key+":absent" {
			t.Fatalf("%s: mc_get of an absent key: %v", network, err)
		}
		_, err = cl.McGet(ctx, nil, "default", key)
		if err == nil || !strings.Contains(err.Error(), "Internal error processing mc_get: ") || !strings.Contains(err.Error(), "invalid context") {
			t.Fatalf("%s: mc_get without a Context: %v", network, err)
		}
	}
}

// A client that writes many rd_call and mc_get requests in one write gets
// every answer right, in order: the session's read buffer holds many
// requests, each view reads its own and leaves the next where it starts.
func TestBackendViewsPipelinedRequests(t *testing.T) {
	s, _, tcpAddr, _ := backendViewServant(t)
	ctx := context.Background()
	c := &rpc.Context{Rid: 9003, Reason: "backendview.pipelined"}
	const n = 400
	for i := range n {
		key := fmt.Sprintf("bview:pipe:%d:%s", i, strings.Repeat("x", i%50))
		if _, err := s.RdCall(ctx, c, "SET", "default", []string{key, "v" + key}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.McSet(ctx, c, "default", key, &rpc.TMemcacheData{Data: []byte("m" + key)}, 0); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := net.Dial("tcp", tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	mem := thrift.NewTMemoryBuffer()
	out := thrift.NewTBinaryProtocolConf(mem, nil)
	for i := range n {
		key := fmt.Sprintf("bview:pipe:%d:%s", i, strings.Repeat("x", i%50))
		var args thrift.TStruct = &rpc.FunServantRdCallArgs{C: c, Cmd: "GET", Pool: "default", KeysAndArgs_: []string{key}}
		name := "rd_call"
		if i%2 == 1 {
			args, name = &rpc.FunServantMcGetArgs{C: c, Pool: "default", Key: key}, "mc_get"
		}
		out.WriteMessageBegin(ctx, name, thrift.CALL, int32(i))
		args.Write(ctx, out)
		out.WriteMessageEnd(ctx)
	}
	go conn.Write(mem.Bytes())
	in := thrift.NewTBinaryProtocolConf(thrift.NewTBufferedTransport(thrift.NewTSocketFromConnConf(conn, nil), 4096), nil)
	for i := range n {
		key := fmt.Sprintf("bview:pipe:%d:%s", i, strings.Repeat("x", i%50))
		name, typ, seq, err := in.ReadMessageBegin(ctx)
		if err != nil || typ != thrift.REPLY || seq != int32(i) {
			t.Fatalf("reply %d: %s %d seq %d, %v", i, name, typ, seq, err)
		}
		if i%2 == 0 {
			var r rpc.FunServantRdCallResult
			if err := r.Read(ctx, in); err != nil || r.GetSuccess() != "v"+key {
				t.Fatalf("rd_call %d: %q, %v", i, r.GetSuccess(), err)
			}
		} else {
			var r rpc.FunServantMcGetResult
			if err := r.Read(ctx, in); err != nil || string(r.GetSuccess().GetData()) != "m"+key {
				t.Fatalf("mc_get %d: %+v, %v", i, r.GetSuccess(), err)
			}
		}
		in.ReadMessageEnd(ctx)
	}
}

// rd_call still watches its client while a blocking command waits (the
// other commands no longer arm the watch): a client that leaves during a
// BLPOP is seen, the call abandoned and counted Gone long before the
// command's own 3 s.
func TestRdCallWatchesBlockingCommandsOnly(t *testing.T) {
	s, _, tcpAddr, _ := backendViewServant(t)
	c := &rpc.Context{Rid: 9004, Reason: "backendview.gone"}
	conn, err := net.Dial("tcp", tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mem := thrift.NewTMemoryBuffer()
	out := thrift.NewTBinaryProtocolConf(mem, nil)
	out.WriteMessageBegin(ctx, "rd_call", thrift.CALL, 1)
	(&rpc.FunServantRdCallArgs{C: c, Cmd: "BLPOP", Pool: "default", KeysAndArgs_: []string{"bview:gone:list", "3"}}).Write(ctx, out)
	out.WriteMessageEnd(ctx)
	stats := s.Stats("rd.call")
	calls, gone := stats.Calls.Load(), stats.Gone.Load()
	start := time.Now()
	if _, err := conn.Write(mem.Bytes()); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 2*time.Second, "the BLPOP call entered", func() bool { return stats.Calls.Load() > calls })
	conn.Close()
	testenv.Eventually(t, 2500*time.Millisecond, "the BLPOP call abandoned as Gone", func() bool { return stats.Gone.Load() > gone })
	if took := time.Since(start); took >= 3*time.Second {
		t.Errorf("the abandon took %s, as long as the BLPOP's own timeout", took)
	}
}
