package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"testing"
	"unsafe"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
)

// exactProtocols are a binary and a compact protocol reading buf, each with
// exactBinary's ReadBinary, and a writer of the same protocol onto buf.
func exactProtocols(buf *thrift.TMemoryBuffer, maxBytes int) map[string][2]thrift.TProtocol {
	return map[string][2]thrift.TProtocol{
		"binary":  {withExactBinary(thrift.NewTBinaryProtocolConf(buf, nil), maxBytes, nil), thrift.NewTBinaryProtocolConf(buf, nil)},
		"compact": {withExactBinary(thrift.NewTCompactProtocolConf(buf, nil), maxBytes, nil), thrift.NewTCompactProtocolConf(buf, nil)},
	}
}

// TestExactBinaryAllocation: 10,000 one-byte binaries read back equal, each
// holding one byte, where the library's ReadBinary holds 512 bytes each (so
// this test fails without exactBinary: over 5 MB).
func TestExactBinaryAllocation(t *testing.T) {
	ctx := context.Background()
	for name, p := range exactProtocols(thrift.NewTMemoryBuffer(), 1<<20) {
		r, w := p[0], p[1]
		const n = 10000
		for i := range n {
			w.WriteBinary(ctx, []byte{byte(i)})
		}
		w.WriteBinary(ctx, []byte("a longer value"))
		w.WriteBinary(ctx, nil)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for i := range n {
			b, err := r.ReadBinary(ctx)
			if err != nil || len(b) != 1 || b[0] != byte(i) || cap(b) > 8 {
				t.Fatalf("%s: value %d = %q (cap %d), %v", name, i, b, cap(b), err)
			}
		}
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > n*64 {
			t.Errorf("%s: %d one-byte binaries allocated %d bytes, want under %d", name, n, alloc, n*64)
		}
		if b, err := r.ReadBinary(ctx); err != nil || string(b) != "a longer value" {
			t.Errorf("%s: %q, %v", name, b, err)
		}
		if b, err := r.ReadBinary(ctx); err != nil || len(b) != 0 {
			t.Errorf("%s: empty value read as %q, %v", name, b, err)
		}
	}
}

// TestExactBinaryRefuses: a negative length, a length over max_message_bytes
// (refused before any allocation, as the session's oversize), a value cut
// short and an overlong varint are errors of the kinds the library gives.
func TestExactBinaryRefuses(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, proto string
		wire        []byte
		kind        int // thrift.TProtocolException type id; -1: any error
	}{
		{"negative", "binary", []byte{0xff, 0xff, 0xff, 0xfe}, thrift.NEGATIVE_SIZE},
		{"2 GiB", "binary", []byte{0x7f, 0xff, 0xff, 0xff}, thrift.SIZE_LIMIT},
		{"2 GiB", "compact", []byte{0xff, 0xff, 0xff, 0xff, 0x07}, thrift.SIZE_LIMIT},
		{"negative", "compact", []byte{0xff, 0xff, 0xff, 0xff, 0x0f}, thrift.NEGATIVE_SIZE},
		{"cut short", "binary", []byte{0, 0, 0, 5, 'a', 'b'}, -1},
		{"cut short", "compact", []byte{5, 'a', 'b'}, -1},
		{"no length", "binary", []byte{0, 0}, -1},
		{"varint of 11 bytes", "compact", bytes.Repeat([]byte{0x80}, 11), thrift.INVALID_DATA},
	} {
		// TotalAlloc counts every goroutine's: the least of three reads is this one's.
		var b []byte
		var err error
		alloc := ^uint64(0)
		for range 3 {
			buf := thrift.NewTMemoryBuffer()
			buf.Write(tc.wire)
			r := exactProtocols(buf, 1024)[tc.proto][0]
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			b, err = r.ReadBinary(ctx)
			runtime.ReadMemStats(&after)
			alloc = min(alloc, after.TotalAlloc-before.TotalAlloc)
		}
		var pe thrift.TProtocolException
		switch {
		case err == nil:
			t.Errorf("%s %s: read %q, want an error", tc.proto, tc.name, b)
		case !errors.As(err, &pe):
			t.Errorf("%s %s: %v is no TProtocolException", tc.proto, tc.name, err)
		case tc.kind >= 0 && pe.TypeId() != tc.kind:
			t.Errorf("%s %s: %v: type %d, want %d", tc.proto, tc.name, err, pe.TypeId(), tc.kind)
		}
		if alloc > 4096 {
			t.Errorf("%s %s: %d bytes allocated for a refused value", tc.proto, tc.name, alloc)
		}
	}
	if p := withExactBinary(thrift.NewTJSONProtocol(thrift.NewTMemoryBuffer()), 1024, nil); p == nil {
		t.Error("another protocol is returned unchanged, not nil")
	} else if _, ok := p.(*exactBinary); ok {
		t.Error("a JSON protocol was wrapped")
	}
}

// BenchmarkReadArgs decodes the arguments of one call with the library's
// protocol and with exactBinary: ping's (a Context: what exactBinary's
// forwarding of the other reads costs every call) and lc_set's (a Context, a
// key and a 100-byte value: what it saves, the 512-byte buffer of each binary).
func BenchmarkReadArgs(b *testing.B) {
	ctx := context.Background()
	c := &rpc.Context{Rid: 1, Reason: "bench"}
	for _, call := range []struct {
		name string
		args thrift.TStruct
		new  func() thrift.TStruct
	}{
		{"ping", &rpc.FunServantPingArgs{C: c}, func() thrift.TStruct { return new(rpc.FunServantPingArgs) }},
		{"lc_set", &rpc.FunServantLcSetArgs{C: c, Key: "user:42", Value: bytes.Repeat([]byte("v"), 100)},
			func() thrift.TStruct { return new(rpc.FunServantLcSetArgs) }},
	} {
		for _, proto := range []string{"binary", "compact"} {
			for _, exact := range []bool{false, true} {
				name := call.name + "/" + proto + "/library"
				if exact {
					name = call.name + "/" + proto + "/exact"
				}
				b.Run(name, func(b *testing.B) {
					w := thrift.NewTMemoryBuffer()
					call.args.Write(ctx, exactProtocols(w, 1<<20)[proto][1])
					wire := bytes.Clone(w.Bytes())
					r := thrift.NewTMemoryBuffer()
					var p thrift.TProtocol = thrift.NewTBinaryProtocolConf(r, nil)
					if proto == "compact" {
						p = thrift.NewTCompactProtocolConf(r, nil)
					}
					if exact {
						p = withExactBinary(p, 1<<20, nil)
					}
					b.ReportAllocs()
					for b.Loop() {
						r.Reset()
						r.Write(wire)
						if err := call.new().Read(ctx, p); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}

// replayConn is a net.Conn whose reads return wire again and again.
type replayConn struct {
	net.Conn
	wire []byte
	off  int
}

func (c *replayConn) Read(p []byte) (int, error) {
	n := copy(p, c.wire[c.off:])
	c.off = (c.off + n) % len(c.wire)
	return n, nil
}

// BenchmarkReadSessionArgs decodes a my_query request (message head and
// arguments) as a session does, from the session's read buffer: "buffered"
// with exactBinary's reads from the buffer, "library" through io.ReadFull as
// the library reads (the fast path off).
func BenchmarkReadSessionArgs(b *testing.B) {
	ctx := context.Background()
	w := thrift.NewTMemoryBuffer()
	wp := thrift.NewTBinaryProtocolConf(w, nil)
	wp.WriteMessageBegin(ctx, "my_query", thrift.CALL, 1)
	(&rpc.FunServantMyQueryArgs{C: &rpc.Context{Rid: 1, Reason: "bench"}, Pool: "UserShard", Table: "UserInfo", HintId: 2,
		Sql: "SELECT uid, name, gold FROM UserInfo WHERE uid = ?", Argv: []string{"2"}, CacheKey: "bench:user:1"}).Write(ctx, wp)
	wp.WriteMessageEnd(ctx)
	wire := bytes.Repeat(w.Bytes(), 4096/w.Len()) // whole requests per 4 KiB read
	for _, fast := range []bool{false, true} {
		name := "library"
		if fast {
			name = "buffered"
		}
		b.Run(name, func(b *testing.B) {
			t := newConnTransport(&replayConn{wire: wire}, 4096, 0, 1<<20, false)
			p := withExactBinary(thrift.NewTBinaryProtocolConf(t, nil), 1<<20, map[string]string{"my_query": "my_query"}).(*exactBinary)
			if !fast {
				p.ct = nil
			}
			b.ReportAllocs()
			for b.Loop() {
				t.read = 0
				if _, _, _, err := p.ReadMessageBegin(ctx); err != nil {
					b.Fatal(err)
				}
				var args rpc.FunServantMyQueryArgs
				if err := args.Read(ctx, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A message head naming one of the server's methods gives that method's
// own string, read from the session's buffer without an allocation; an
// unknown name is read as before, whole and exact; a head cut before its
// name's end is left to the library, which waits for the rest.
func TestMessageNameInterned(t *testing.T) {
	ctx := context.Background()
	names := map[string]string{"ping": "ping", "rd_call": "rd_call"}
	head := func(name string, seq int32) []byte {
		w := thrift.NewTMemoryBuffer()
		wp := thrift.NewTBinaryProtocolConf(w, nil)
		wp.WriteMessageBegin(ctx, name, thrift.CALL, seq)
		return bytes.Clone(w.Bytes())
	}
	wire := slices.Concat(head("rd_call", 7), head("lc_get", 8), head("ping", 9))
	tr := newConnTransport(&replayConn{wire: wire}, 4096, 0, 1<<20, false)
	p := withExactBinary(thrift.NewTBinaryProtocolConf(tr, nil), 1<<20, names).(*exactBinary)
	tr.br.Peek(len(wire)) // as waitCall: the requests are in the read buffer
	for _, want := range []struct {
		name     string
		seq      int32
		interned bool
	}{{"rd_call", 7, true}, {"lc_get", 8, false}, {"ping", 9, true}} {
		name, _, seq, err := p.ReadMessageBegin(ctx)
		if err != nil || name != want.name || seq != want.seq {
			t.Fatalf("ReadMessageBegin = %q seq %d, %v; want %q seq %d", name, seq, err, want.name, want.seq)
		}
		if want.interned && unsafe.StringData(name) != unsafe.StringData(names[want.name]) {
			t.Errorf("%s: a string of its own, want the server's", name)
		}
	}
	one := newConnTransport(&replayConn{wire: head("rd_call", 1)}, 4096, 0, 1<<20, false)
	po := withExactBinary(thrift.NewTBinaryProtocolConf(one, nil), 1<<20, names).(*exactBinary)
	if allocs := testing.AllocsPerRun(100, func() {
		one.br.Peek(1)
		if name, _, _, err := po.ReadMessageBegin(ctx); err != nil || name != "rd_call" {
			t.Fatalf("ReadMessageBegin = %q, %v", name, err)
		}
	}); allocs != 0 {
		t.Errorf("reading a known method's head: %.1f allocations, want 0", allocs)
	}

	// A head cut inside its name: the library reads it once the rest comes.
	cut := head("ping", 3)
	r, w := net.Pipe()
	defer r.Close()
	ct := newConnTransport(r, 4096, 0, 1<<20, false)
	pc := withExactBinary(thrift.NewTBinaryProtocolConf(ct, nil), 1<<20, names).(*exactBinary)
	go func() {
		w.Write(cut[:9])
		w.Write(cut[9:])
	}()
	if name, _, seq, err := pc.ReadMessageBegin(ctx); err != nil || name != "ping" || seq != 3 {
		t.Fatalf("a head in two writes: %q seq %d, %v", name, seq, err)
	}
}

// TestCheckCountShortStrings: a list of short strings well under
// max_message_bytes on the wire passes, though its strings take 4 times
// their wire bytes in Go: an rd_call MSET of 550,000 pairs of 8-byte keys
// and values (1.1 million strings, 13.2 MB) was refused at the default
// 16 MiB when the memory bound was max_message_bytes itself (found by review).
func TestCheckCountShortStrings(t *testing.T) {
	const n, max = 1_100_000, 16 << 20
	buf := thrift.NewTMemoryBuffer()
	w := thrift.NewTBinaryProtocolConf(buf, nil)
	w.WriteListBegin(context.Background(), thrift.STRING, n)
	for i := range n {
		w.WriteString(context.Background(), fmt.Sprintf("k%07d", i))
	}
	w.Flush(context.Background())
	wire := buf.Len()
	p := withExactBinary(thrift.NewTBinaryProtocolConf(buf, &thrift.TConfiguration{MaxMessageSize: max}), max, nil)
	if _, size, err := p.ReadListBegin(context.Background()); err != nil || size != n {
		t.Fatalf("a list of %d strings, %d bytes on the wire (max_message_bytes %d): %d, %v", n, wire, max, size, err)
	}
}
