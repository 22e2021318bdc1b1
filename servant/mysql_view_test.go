package servant

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/testenv"
	"github.com/fae-go/fae/pool"
)

// encodeArgs is args as a client writes them (binary protocol), without the
// message head: the bytes parseMyQueryView reads.
func encodeArgs(t testing.TB, args thrift.TStruct) []byte {
	t.Helper()
	buf := thrift.NewTMemoryBuffer()
	if err := args.Write(context.Background(), thrift.NewTBinaryProtocolConf(buf, nil)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// viewArgs is what the view read, as the generated struct.
func viewArgs(v *myQueryView) *rpc.FunServantMyQueryArgs {
	v.materialize()
	return &rpc.FunServantMyQueryArgs{C: v.context(), Pool: v.pool, Table: v.table, HintId: v.hintID, Sql: v.sql, Argv: v.argv, CacheKey: v.cacheKey}
}

func randString(r *rand.Rand) string {
	b := make([]byte, r.IntN(40))
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return string(b)
}

// parseMyQueryView reads what the generated FunServantMyQueryArgs.Read reads,
// the same values, for every shape the generated client writes: a Context or
// none, sticky unset, false or true, argv absent, empty or long, empty and
// binary strings. It takes exactly the arguments' bytes, never more.
func TestParseMyQueryViewAsGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		args := &rpc.FunServantMyQueryArgs{Pool: randString(r), Table: randString(r), HintId: r.Int64() - r.Int64(),
			Sql: randString(r), CacheKey: randString(r)}
		if i%7 != 0 {
			args.C = &rpc.Context{Rid: r.Int64(), Reason: randString(r), UID: r.Int64()}
			switch i % 3 {
			case 1:
				args.C.Sticky = thrift.BoolPtr(false)
			case 2:
				args.C.Sticky = thrift.BoolPtr(true)
			}
		}
		if i%5 != 0 {
			args.Argv = []string{}
			for range r.IntN(8) {
				args.Argv = append(args.Argv, randString(r))
			}
		}
		b := encodeArgs(t, args)
		trailing := append(append([]byte{}, b...), 0x80, 0x01, 0x00, 0x01) // the next request's head
		v, ok := parseMyQueryView(trailing)
		if !ok {
			t.Fatalf("case %d: not read: %+v", i, args)
		}
		if v.n != len(b) {
			t.Fatalf("case %d: read %d bytes, the arguments are %d", i, v.n, len(b))
		}
		var want rpc.FunServantMyQueryArgs
		mem := thrift.NewTMemoryBuffer()
		mem.Write(b)
		if err := want.Read(context.Background(), thrift.NewTBinaryProtocolConf(mem, nil)); err != nil {
			t.Fatal(err)
		}
		if got := viewArgs(&v); !reflect.DeepEqual(got, &want) {
			t.Fatalf("case %d: view read\n%+v\ngenerated read\n%+v", i, got, &want)
		}
	}
}

// Bytes the view does not read exactly as the generated code would are left
// to it (ok false): every cut of a request (the rest not yet buffered), a
// negative length, a field of an unknown id or of another type. Never a
// panic, never a read past the bytes given.
func TestParseMyQueryViewLeavesTheRest(t *testing.T) {
	args := &rpc.FunServantMyQueryArgs{C: &rpc.Context{Rid: 7, Reason: "user.show", Sticky: thrift.BoolPtr(true)}, Pool: "db",
		Table: "user", HintId: 42, Sql: "SELECT * FROM user WHERE uid=?", Argv: []string{"42", "x"}, CacheKey: "user:42"}
	b := encodeArgs(t, args)
	for n := range len(b) {
		if _, ok := parseMyQueryView(b[:n]); ok {
			t.Fatalf("read from the first %d of %d bytes", n, len(b))
		}
	}
	field := func(typ byte, id int16, value ...byte) []byte {
		return append([]byte{typ, byte(id >> 8), byte(id)}, value...)
	}
	for name, bad := range map[string][]byte{
		"unknown field":          append(field(tString, 9, 0, 0, 0, 1, 'x'), 0),
		"pool as i64":            append(field(tI64, 2, 0, 0, 0, 0, 0, 0, 0, 1), 0),
		"negative string length": append(field(tString, 2, 0xff, 0xff, 0xff, 0xfe), 0),
		"string past the bytes":  append(field(tString, 5, 0, 0, 1, 0, 'x'), 0),
		"argv of i64":            append(field(tList, 6, tI64, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1), 0),
		"negative argv count":    append(field(tList, 6, tString, 0xff, 0xff, 0xff, 0xff), 0),
		"huge argv count":        append(field(tList, 6, tString, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0), 0),
		"context unknown field":  append(field(tStruct, 1, field(tString, 5, 0, 0, 0, 0)...), 0, 0),
		"context rid as string":  append(field(tStruct, 1, field(tString, 1, 0, 0, 0, 0)...), 0, 0),
		"no stop":                field(tI64, 4, 0, 0, 0, 0, 0, 0, 0, 1),
	} {
		if v, ok := parseMyQueryView(bad); ok {
			t.Errorf("%s: read (%+v)", name, v)
		}
	}
	// Fields in another order, and one twice, are read as the generated code
	// reads them: the last one counts.
	odd := append(field(tString, 7, 0, 0, 0, 1, 'k'), field(tString, 2, 0, 0, 0, 1, 'a')...)
	odd = append(odd, field(tString, 2, 0, 0, 0, 1, 'b')...)
	odd = append(odd, 0)
	v, ok := parseMyQueryView(odd)
	if !ok || v.cacheKey != "k" || v.pool != "b" || v.n != len(odd) {
		t.Errorf("fields out of order: ok %v, %+v", ok, v)
	}
}

// The view's strings share the request's bytes until materialize, and not
// after: a materialized view is unchanged when the buffer is reused.
func TestMyQueryViewMaterialize(t *testing.T) {
	args := &rpc.FunServantMyQueryArgs{C: &rpc.Context{Rid: 7, Reason: "r"}, Pool: "db", Sql: "SELECT 1", Argv: []string{"a", "b"}, CacheKey: "k"}
	b := encodeArgs(t, args)
	v, ok := parseMyQueryView(b)
	if !ok {
		t.Fatal("not read")
	}
	c := v.context()
	v.materialize()
	for i := range b {
		b[i] = 'z'
	}
	if v.pool != "db" || v.sql != "SELECT 1" || v.cacheKey != "k" || fmt.Sprint(v.argv) != "[a b]" || c.Reason != "r" {
		t.Errorf("after the buffer changed: %+v, reason %q", v, c.Reason)
	}
}

// Over a real engine session (binary protocol, TCP and unix), my_query read
// from the request's bytes answers as the generated path does: a miss runs
// on MySQL (the view materialized), the same call then hits the query cache,
// a call without a cacheKey runs every time; each call is counted and traced
// with its arguments whole.
func TestMyQueryFromRequestBytes(t *testing.T) {
	testenv.RequireServer(t, "MariaDB", testenv.MySQLAddr)
	host, port, _ := net.SplitHostPort(testenv.MySQLAddr)
	portNum, _ := strconv.Atoi(port)
	cfg := baseConfig()
	var my pool.MySQLConfig
	my.SetDefaults()
	my.GlobalPools = []string{"Global"}
	var srv pool.MySQLServerConfig
	srv.SetDefaults()
	srv.Pool, srv.Host, srv.Port, srv.DB, srv.Username, srv.Password = "Global", host, pool.Port(portNum), "fae_test", "fae", "fae"
	my.Servers = []pool.MySQLServerConfig{srv}
	cfg.Mysql = &my
	cfg.ProfilerRate, cfg.ProfilerMaxBodySize = 10000, 1000 // every call traced
	s, tb := tracedServant(t, cfg)
	tcp, unix := serveProcessor(t, NewProcessor(s))
	for name, cl := range map[string]*rpc.FunServantClient{"tcp": tcp, "unix": unix} {
		c := &rpc.Context{Rid: 7001, Reason: "view.test", UID: 3}
		key := "view:" + name
		hits, misses := s.QueryCache.Hits.Load(), s.QueryCache.Misses.Load()
		for i := range 3 {
			r, err := cl.MyQuery(context.Background(), c, "Global", "t", 0, "SELECT ?, ?", []string{name, "b"}, key)
			if err != nil {
				t.Fatalf("%s call %d: %v", name, i, err)
			}
			if len(r.Rows) != 1 || fmt.Sprint(r.Rows[0]) != "["+name+" b]" {
				t.Fatalf("%s call %d: rows %v", name, i, r.Rows)
			}
		}
		if h, m := s.QueryCache.Hits.Load()-hits, s.QueryCache.Misses.Load()-misses; h != 2 || m != 1 {
			t.Errorf("%s: %d hits and %d misses, want 2 and 1", name, h, m)
		}
		r, err := cl.MyQuery(context.Background(), c, "Global", "t", 0, "SELECT ?", []string{"nokey"}, "")
		if err != nil || len(r.Rows) != 1 || r.Rows[0][0] != "nokey" {
			t.Fatalf("%s without a cacheKey: %v %v", name, r, err)
		}
	}
	want := `args="pool=\"Global\" table=\"t\" hint=0 sql=\"SELECT ?, ?\" args=[\"tcp\" \"b\"] cacheKey=\"view:tcp\""`
	n := 0
	for _, l := range tb.lines() {
		if strings.Contains(l, want) && strings.Contains(l, "reason=view.test") && strings.Contains(l, "uid=3") {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d trace lines with %s, want 3 (miss and hits alike):\n%s", n, want, strings.Join(tb.lines(), "\n"))
	}
}

// FuzzArgsViews: whatever the bytes, a view that reads them (ok) read what
// the generated decoder reads from them, the same values, and exactly as
// many bytes; and never panics. Seeds: encoded arguments of each method with a view.
func FuzzArgsViews(f *testing.F) {
	f.Add(encodeArgs(f, &rpc.FunServantMyQueryArgs{C: &rpc.Context{Rid: 1, Reason: "r", Sticky: thrift.BoolPtr(true)}, Pool: "p",
		Table: "t", HintId: -3, Sql: "SELECT 1", Argv: []string{"a", ""}, CacheKey: "k"}))
	f.Add(encodeArgs(f, &rpc.FunServantMyQueryArgs{}))
	f.Add(encodeArgs(f, &rpc.FunServantLcGetArgs{C: &rpc.Context{Rid: 2, Reason: "x", UID: 9}, Key: "key"}))
	f.Add(encodeArgs(f, &rpc.FunServantRdCallArgs{C: &rpc.Context{Rid: 3, Reason: "r"}, Cmd: "GET", Pool: "default", KeysAndArgs_: []string{"k", ""}}))
	f.Add(encodeArgs(f, &rpc.FunServantMcGetArgs{C: &rpc.Context{Rid: 4}, Pool: "default", Key: "k"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		read := func(args thrift.TStruct, n int) {
			mem := thrift.NewTMemoryBuffer()
			mem.Write(b)
			if err := args.Read(context.Background(), thrift.NewTBinaryProtocolConf(mem, nil)); err != nil {
				t.Fatalf("the view read %d bytes the generated decoder refuses: %v", n, err)
			}
			if left := len(b) - mem.Len(); left != n {
				t.Fatalf("the view read %d bytes, the generated decoder %d", n, left)
			}
		}
		if v, ok := parseMyQueryView(b); ok {
			var want rpc.FunServantMyQueryArgs
			read(&want, v.n)
			if got := viewArgs(&v); !reflect.DeepEqual(got, &want) {
				t.Fatalf("my_query: view %+v, generated %+v", got, &want)
			}
		}
		if v, ok := parseRdCallView(b, true); ok {
			var want rpc.FunServantRdCallArgs
			read(&want, v.n)
			if got := (&rpc.FunServantRdCallArgs{C: v.ownedContext(), Cmd: v.cmd, Pool: v.pool, KeysAndArgs_: v.keysAndArgs}); !reflect.DeepEqual(got, &want) {
				t.Fatalf("rd_call: view %+v, generated %+v", got, &want)
			}
			if c, ok := parseRdCallView(b, false); !ok || c.n != v.n {
				t.Fatalf("rd_call: the check-only pass read %d bytes (%v), the view %d", c.n, ok, v.n)
			}
		}
		if v, ok := parseMcGetView(b); ok {
			var want rpc.FunServantMcGetArgs
			read(&want, v.n)
			if got := (&rpc.FunServantMcGetArgs{C: v.ownedContext(), Pool: v.pool, Key: v.key}); !reflect.DeepEqual(got, &want) {
				t.Fatalf("mc_get: view %+v, generated %+v", got, &want)
			}
		}
		if v, ok := parseLcGetView(b); ok {
			var want rpc.FunServantLcGetArgs
			read(&want, v.n)
			if got := (&rpc.FunServantLcGetArgs{C: v.context(), Key: v.key}); !reflect.DeepEqual(got, &want) {
				t.Fatalf("lc_get: view %+v, generated %+v", got, &want)
			}
		}
	})
}
