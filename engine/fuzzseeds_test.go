package engine_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"testing/cryptotest"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
)

// fuzzSeedDir holds FuzzSession's committed seed corpus (Go's corpus file format).
const fuzzSeedDir = "testdata/fuzz/FuzzSession"

// TestFuzzSeeds checks that the committed seed corpus of FuzzSession holds
// every seed fuzzSeeds generates, byte for byte, so that a change to the IDL
// or to the seeds shows here. With FAE_FUZZ_WRITE_SEEDS=1 (`make fuzz-seeds`)
// it writes them instead. Inputs the fuzzer added (named by their hash) are
// left alone.
func TestFuzzSeeds(t *testing.T) {
	seeds := fuzzSeeds(t)
	write := os.Getenv("FAE_FUZZ_WRITE_SEEDS") == "1"
	if write {
		if err := os.MkdirAll(fuzzSeedDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	names := make([]string, 0, len(seeds))
	for name := range seeds {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		path := filepath.Join(fuzzSeedDir, name)
		if write {
			if err := os.WriteFile(path, seeds[name], 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, seeds[name]) {
			t.Errorf("seed %s missing or stale (err %v): run `make fuzz-seeds` and commit %s", name, err, fuzzSeedDir)
		}
	}
	t.Logf("%d seeds", len(seeds))
}

// fuzzSeeds returns the seed corpus of FuzzSession, by file name: in every
// mode, a valid call of every method of the IDL (written by the generated
// client), all of them pipelined on one session, truncated calls and frames,
// huge lengths (frames, strings, lists, maps), wrong types and message types,
// HTTP requests and TLS client hellos; and for the auto server (fuzzAuto),
// calls and malformed inputs of each mode (autoSeeds).
func fuzzSeeds(t *testing.T) map[string][]byte {
	seeds := map[string][]byte{}
	add := func(m int, name string, data []byte) {
		seeds[fmt.Sprintf("%s-%s", fuzzName(m), name)] = []byte(fmt.Sprintf("go test fuzz v1\nbyte(%q)\n[]byte(%q)\n", byte(m), data))
	}
	hello := tlsClientHello(t)
	for name, data := range autoSeeds(t, hello) {
		add(fuzzAuto, name, data)
	}
	for m := range fuzzModes {
		var all []byte
		for _, method := range fuzzMethods() {
			call := fuzzCall(t, m, method)
			add(m, "call-"+method, call)
			all = append(all, call...)
		}
		add(m, "call-all", all)
		for name, data := range hostileSeeds(t, m) {
			add(m, name, data)
		}
		add(m, "tls-hello", hello)
		add(m, "tls-sslv2-hello", []byte("\x80\x2e\x01\x03\x01\x00\x15\x00\x00\x00\x10\x07\x00\xc0\x03\x00\x80\x01\x00\x80"+
			"\x06\x00\x40\x04\x00\x80\x02\x00\x80\x00\x00\x04\x00\xfe\xff\x00\x00\x0a\xe9\xbd\x1d\x4f\x6e\x3c\x4b\xa7\xe1"))
		add(m, "http-get", []byte("GET / HTTP/1.1\r\nHost: 127.0.0.1:9001\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n"))
		add(m, "http-post", []byte("POST /svt/stat HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-thrift\r\nContent-Length: 5\r\n\r\nhello"))
		add(m, "http2-preface", []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"))
	}
	return seeds
}

// autoSeeds are the inputs of the auto server, by name: in each mode, every
// method's call pipelined, a ping, truncated and malformed calls, huge and
// short frames; non-strict binary (which auto refuses), buffered and framed;
// a frame of neither protocol; HTTP and TLS.
func autoSeeds(t *testing.T, hello []byte) map[string][]byte {
	s := map[string][]byte{}
	for m, mode := range fuzzModes {
		var all []byte
		for _, method := range fuzzMethods() {
			all = append(all, fuzzCall(t, m, method)...)
		}
		s[mode.name+"-call-all"] = all
		s[mode.name+"-call-Ping"] = fuzzCall(t, m, "Ping")
		for name, data := range hostileSeeds(t, m) {
			switch {
			case strings.HasPrefix(name, "trunc-"), strings.HasPrefix(name, "frame-"), strings.HasSuffix(name, "-bad-version"),
				name == "ping-then-trunc", name == "unknown-method-then-ping", name == "huge-method-name", name == "huge-string-arg":
				s[mode.name+"-"+name] = data
			}
		}
	}
	unversioned := seedUnversionedPing(t)
	s["nonstrict-ping"] = unversioned
	s["nonstrict-ping-framed"] = seedFrame(fuzzModes[1], unversioned)
	s["frame-of-garbage"] = seedFrame(fuzzModes[1], []byte("hello, no thrift here"))
	s["http-get"] = []byte("GET / HTTP/1.1\r\nHost: 127.0.0.1:9001\r\n\r\n")
	s["tls-hello"] = hello
	return s
}

// fuzzMethods are the Go names of every method of the FunServant service.
func fuzzMethods() []string {
	it := reflect.TypeFor[rpc.FunServant]()
	names := make([]string, it.NumMethod())
	for i := range names {
		names[i] = it.Method(i).Name
	}
	return names
}

// fuzzCall returns the bytes the generated client sends for one call of
// method (its Go name) in mode m, every argument filled by fuzzFill.
func fuzzCall(tb testing.TB, m int, method string) []byte {
	tb.Helper()
	out := thrift.NewTMemoryBuffer()
	// The reply is read from an empty buffer: the call fails there, once sent.
	c := rpc.NewFunServantClientProtocol(out, fuzzModes[m].protocol(thrift.NewTMemoryBuffer()), fuzzModes[m].protocol(out))
	fn := reflect.ValueOf(c).MethodByName(method)
	if !fn.IsValid() {
		tb.Fatalf("the generated client has no method %s", method)
	}
	args := make([]reflect.Value, fn.Type().NumIn())
	for i := range args {
		if typ := fn.Type().In(i); typ == reflect.TypeFor[context.Context]() {
			args[i] = reflect.ValueOf(context.Background())
		} else {
			args[i] = fuzzFill(typ, 0)
		}
	}
	fn.Call(args)
	if out.Len() == 0 {
		tb.Fatalf("the generated client wrote nothing for %s", method)
	}
	return bytes.Clone(out.Bytes())
}

// fuzzFill returns a value of typ with every field, element and pointer set:
// strings "k", numbers 1, one element per list and map, nested up to 4 levels.
// A filled rpc.Context is valid (rid 1, a reason).
func fuzzFill(typ reflect.Type, depth int) reflect.Value {
	v := reflect.New(typ).Elem()
	if depth > 4 {
		return v
	}
	switch typ.Kind() {
	case reflect.Pointer:
		v.Set(fuzzFill(typ.Elem(), depth+1).Addr())
	case reflect.Struct:
		for i := range typ.NumField() {
			if typ.Field(i).IsExported() {
				v.Field(i).Set(fuzzFill(typ.Field(i).Type, depth+1))
			}
		}
	case reflect.String:
		v.SetString("k")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Slice:
		if typ.Elem().Kind() == reflect.Uint8 {
			v.SetBytes([]byte("v"))
		} else {
			v.Set(reflect.Append(v, fuzzFill(typ.Elem(), depth+1)))
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(typ))
		v.SetMapIndex(fuzzFill(typ.Key(), depth+1), fuzzFill(typ.Elem(), depth+1))
	}
	return v
}

// tlsClientHello is the first flight of crypto/tls's client, made
// deterministic (testing/cryptotest) so that the seed is regenerated identically.
func tlsClientHello(t *testing.T) []byte {
	cryptotest.SetGlobalRandom(t, 1)
	client, server := net.Pipe()
	defer server.Close()
	go func() {
		defer client.Close()
		tls.Client(client, &tls.Config{ServerName: "faed.example", InsecureSkipVerify: true}).Handshake()
	}()
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(server, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
	if _, err := io.ReadFull(server, body); err != nil {
		t.Fatal(err)
	}
	return append(hdr, body...)
}

// hostileSeeds are the malformed inputs of mode m, by name.
func hostileSeeds(t *testing.T, m int) map[string][]byte {
	mode := fuzzModes[m]
	ping := fuzzCall(t, m, "Ping")
	s := map[string][]byte{
		"trunc-1":         ping[:1],
		"trunc-5":         ping[:5],
		"trunc-half":      ping[:len(ping)/2],
		"trunc-last":      ping[:len(ping)-1],
		"ping-then-trunc": append(bytes.Clone(ping), ping[:len(ping)-3]...),
	}
	hugeSeeds(t, mode, s)
	wrongSeeds(t, mode, s)
	s["unknown-method-then-ping"] = append(bytes.Clone(s["unknown-method"]), ping...)
	if mode.framed {
		for name, n := range map[string]uint32{"2GiB": 1 << 31, "2GiB-1": 1<<31 - 1, "max": 0xffffffff, "zero": 0, "over-limit": fuzzMaxMessage + 1} {
			s["frame-"+name] = binary.BigEndian.AppendUint32(nil, n)
		}
		s["frame-short"] = ping[:3]
		s["frame-header-only"] = ping[:4]
	}
	unframed := fuzzCall(t, m&^1, "Ping") // modes 0 and 2 are the unframed ones
	if !mode.compact {
		s["binary-bad-version"] = seedFrame(mode, append([]byte{0x80, 0x02, 0x00, 0x01}, unframed[4:]...))
		s["binary-unversioned"] = seedFrame(mode, seedUnversionedPing(t))
	} else {
		s["compact-bad-version"] = seedFrame(mode, append([]byte{0x82, 0x3f}, unframed[2:]...))
	}
	return s
}

// hugeSeeds adds to s the inputs of mode with huge lengths, everything before
// them well-formed: the limit must refuse them before allocating. And a
// list of many one-byte values: what costs the most memory for its size.
func hugeSeeds(t *testing.T, mode fuzzMode, s map[string][]byte) {
	s["huge-method-name"] = seedFrame(mode, seedRawMessage(mode, 0x7fffffff, nil))
	s["huge-string-arg"] = seedFrame(mode, seedCall(t, mode, "lc_get", func(p thrift.TProtocol, raw *bytes.Buffer) {
		seedCtx(t, p)
		p.WriteFieldBegin(bg, "key", thrift.STRING, 2)
		p.Flush(bg)
		seedLen(mode, raw, 0x7fffffff)
		raw.WriteString("k")
	}))
	s["huge-binary-arg"] = seedFrame(mode, seedCall(t, mode, "lc_set", func(p thrift.TProtocol, raw *bytes.Buffer) {
		seedCtx(t, p)
		p.WriteFieldBegin(bg, "key", thrift.STRING, 2)
		p.WriteString(bg, "k")
		p.WriteFieldBegin(bg, "value", thrift.STRING, 3)
		p.Flush(bg)
		seedLen(mode, raw, 0x7ffffff0)
	}))
	for name, n := range map[string]uint32{"list-2p31": 1 << 31, "list-2p31-1": 1<<31 - 1, "list-neg1": 0xffffffff} {
		s["huge-"+name] = seedFrame(mode, seedCall(t, mode, "id_decode", func(p thrift.TProtocol, raw *bytes.Buffer) {
			seedCtx(t, p)
			p.WriteFieldBegin(bg, "unknown", thrift.LIST, 99) // skipped: the skip must be bounded too
			p.Flush(bg)
			seedListHead(mode, raw, thrift.I64, n)
		}))
	}
	s["short-binaries"] = seedFrame(mode, seedCall(t, mode, "mg_inserts", func(p thrift.TProtocol, raw *bytes.Buffer) {
		seedCtx(t, p)
		p.WriteFieldBegin(bg, "docs", thrift.LIST, 5)
		p.WriteListBegin(bg, thrift.STRING, 300)
		for range 300 {
			p.WriteBinary(bg, []byte("v"))
		}
		p.WriteListEnd(bg)
		p.WriteFieldEnd(bg)
		seedEnd(p)
	}))
	s["huge-map"] = seedFrame(mode, seedCall(t, mode, "ping", func(p thrift.TProtocol, raw *bytes.Buffer) {
		p.WriteFieldBegin(bg, "unknown", thrift.MAP, 7)
		p.WriteMapBegin(bg, thrift.STRING, thrift.STRING, 0x7fffffff)
	}))
	s["deep-nesting"] = seedFrame(mode, seedCall(t, mode, "ping", func(p thrift.TProtocol, raw *bytes.Buffer) {
		for range 200 { // past thrift's recursion limit (64)
			p.WriteFieldBegin(bg, "s", thrift.STRUCT, 1)
			p.WriteStructBegin(bg, "s")
		}
	}))
}

// wrongSeeds adds to s the inputs of mode with wrong types: a field of
// another type than the IDL's, message types a server must not get, an
// unknown method, an invalid type id.
func wrongSeeds(t *testing.T, mode fuzzMode, s map[string][]byte) {
	s["wrongtype-ctx-string"] = seedFrame(mode, seedCall(t, mode, "ping", func(p thrift.TProtocol, raw *bytes.Buffer) {
		p.WriteFieldBegin(bg, "c", thrift.STRING, 1)
		p.WriteString(bg, "not a struct")
		p.WriteFieldEnd(bg)
		seedEnd(p)
	}))
	s["wrongtype-lc-set"] = seedFrame(mode, seedCall(t, mode, "lc_set", func(p thrift.TProtocol, raw *bytes.Buffer) {
		seedCtx(t, p)
		p.WriteFieldBegin(bg, "key", thrift.I32, 2)
		p.WriteI32(bg, 7)
		p.WriteFieldBegin(bg, "value", thrift.LIST, 3)
		p.WriteListBegin(bg, thrift.DOUBLE, 1)
		p.WriteDouble(bg, 1.5)
		p.WriteListEnd(bg)
		p.WriteFieldEnd(bg)
		seedEnd(p)
	}))
	s["wrongtype-invalid-type-id"] = seedFrame(mode, seedCall(t, mode, "ping", func(p thrift.TProtocol, raw *bytes.Buffer) {
		p.Flush(bg)
		if mode.compact {
			raw.WriteString("\x1d") // delta 1, type 13 (none)
		} else {
			raw.WriteString("\x7f\x00\x01") // type 127, id 1
		}
	}))
	for name, typ := range map[string]thrift.TMessageType{"reply": thrift.REPLY, "exception": thrift.EXCEPTION, "oneway": thrift.ONEWAY, "type9": 9} {
		s["msgtype-"+name] = seedFrame(mode, seedMessage(t, mode, "ping", typ, func(p thrift.TProtocol, raw *bytes.Buffer) { seedCtx(t, p); seedEnd(p) }))
	}
	s["unknown-method"] = seedFrame(mode, seedCall(t, mode, "no_such_method", func(p thrift.TProtocol, raw *bytes.Buffer) { seedCtx(t, p); seedEnd(p) }))
	s["empty-method"] = seedFrame(mode, seedCall(t, mode, "", func(p thrift.TProtocol, raw *bytes.Buffer) { seedEnd(p) }))
}

// seedCall is a CALL message of method in mode, its arguments written by args on
// p or, for malformed bytes, appended to raw once p is flushed; unframed.
func seedCall(t *testing.T, mode fuzzMode, method string, args func(p thrift.TProtocol, raw *bytes.Buffer)) []byte {
	return seedMessage(t, mode, method, thrift.CALL, args)
}

func seedMessage(t *testing.T, mode fuzzMode, method string, typ thrift.TMessageType, args func(p thrift.TProtocol, raw *bytes.Buffer)) []byte {
	t.Helper()
	buf := thrift.NewTMemoryBuffer()
	p := fuzzMode{compact: mode.compact}.protocol(buf) // unframed: frame adds the header
	if err := p.WriteMessageBegin(bg, method, typ, 1); err != nil {
		t.Fatal(err)
	}
	p.WriteStructBegin(bg, "args")
	args(p, buf.Buffer)
	p.Flush(bg)
	return bytes.Clone(buf.Bytes())
}

// seedCtx writes field 1, a valid rpc.Context.
func seedCtx(t *testing.T, p thrift.TProtocol) {
	p.WriteFieldBegin(bg, "c", thrift.STRUCT, 1)
	if err := rctx().Write(bg, p); err != nil {
		t.Fatal(err)
	}
	p.WriteFieldEnd(bg)
}

// seedEnd ends the arguments and the message.
func seedEnd(p thrift.TProtocol) {
	p.WriteFieldStop(bg)
	p.WriteStructEnd(bg)
	p.WriteMessageEnd(bg)
}

// seedRawMessage is a message header whose method name claims n bytes, followed by tail.
func seedRawMessage(mode fuzzMode, n uint32, tail []byte) []byte {
	var b bytes.Buffer
	if mode.compact {
		b.Write([]byte{0x82, 0x21, 0x01}) // protocol id, version 1 | CALL, seq 1
	} else {
		b.Write([]byte{0x80, 0x01, 0x00, 0x01}) // version 1, CALL
	}
	seedLen(mode, &b, n)
	b.Write(tail)
	return b.Bytes()
}

// seedLen appends a string length: an i32 (binary) or a varint (compact).
func seedLen(mode fuzzMode, b *bytes.Buffer, n uint32) {
	if mode.compact {
		b.Write(binary.AppendUvarint(nil, uint64(n)))
		return
	}
	b.Write(binary.BigEndian.AppendUint32(nil, n))
}

// seedListHead appends a list header of n elements of type elem.
func seedListHead(mode fuzzMode, b *bytes.Buffer, elem thrift.TType, n uint32) {
	if mode.compact {
		b.WriteByte(0xf0 | 6) // size in a varint; compact type 6 = i64
		b.Write(binary.AppendUvarint(nil, uint64(n)))
		return
	}
	b.WriteByte(byte(elem))
	b.Write(binary.BigEndian.AppendUint32(nil, n))
}

// seedFrame adds the 4-byte frame header in a framed mode.
func seedFrame(mode fuzzMode, msg []byte) []byte {
	if !mode.framed {
		return msg
	}
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(msg))), msg...)
}

// seedUnversionedPing is a ping in the old binary format without a version
// header (what TBinaryProtocol with strict_write off sends).
func seedUnversionedPing(t *testing.T) []byte {
	var b bytes.Buffer
	b.Write(binary.BigEndian.AppendUint32(nil, 4))
	b.WriteString("ping")
	b.WriteByte(byte(thrift.CALL))
	b.Write(binary.BigEndian.AppendUint32(nil, 1))
	buf := thrift.NewTMemoryBuffer()
	p := thrift.NewTBinaryProtocolConf(buf, nil)
	if err := (&rpc.FunServantPingArgs{C: rctx()}).Write(bg, p); err != nil {
		t.Fatal(err)
	}
	p.Flush(bg)
	b.Write(buf.Bytes())
	return b.Bytes()
}

// TestFuzzSeedCalls: the seeds' calls are well-formed in every mode: each is
// decoded and dispatched to its method, whose reply (or, for a backend that
// is not configured, an INTERNAL_ERROR exception) names the method, and no
// session ends on a protocol error; the auto server does the same with the
// calls of every mode, answering each in its own.
func TestFuzzSeedCalls(t *testing.T) {
	h := newFuzzHarness(t)
	for m, mode := range fuzzModes {
		for _, method := range fuzzMethods() {
			var reply bytes.Buffer
			h.session(t, m, fuzzCall(t, m, method), &reply)
			p := mode.protocol(thrift.NewStreamTransportR(&reply))
			name, typ, seq, err := p.ReadMessageBegin(bg)
			if err != nil || seq != 1 || strings.ReplaceAll(name, "_", "") != strings.ToLower(method) {
				t.Errorf("%s %s: reply %q seq %d, err %v", mode.name, method, name, seq, err)
				continue
			}
			if typ == thrift.EXCEPTION {
				x := thrift.NewTApplicationException(0, "")
				if err := x.Read(bg, p); err != nil || x.TypeId() != thrift.INTERNAL_ERROR {
					t.Errorf("%s %s: exception %v (read: %v), want a servant error", mode.name, method, x, err)
				}
			} else if typ != thrift.REPLY {
				t.Errorf("%s %s: message type %d", mode.name, method, typ)
			}
		}
		if n := h.srv[m].Stats.EndProtocol.Load() + h.srv[m].Stats.EndTransport.Load(); n != 0 {
			t.Errorf("%s: %d sessions ended by a bad call", mode.name, n)
		}
	}
	auto := h.srv[fuzzAuto]
	for m, mode := range fuzzModes {
		for _, method := range fuzzMethods() {
			var reply bytes.Buffer
			h.session(t, fuzzAuto, fuzzCall(t, m, method), &reply)
			name, _, seq, err := mode.protocol(thrift.NewStreamTransportR(&reply)).ReadMessageBegin(bg)
			if err != nil || seq != 1 || strings.ReplaceAll(name, "_", "") != strings.ToLower(method) {
				t.Errorf("auto, %s %s: reply %q seq %d, err %v", mode.name, method, name, seq, err)
			}
		}
	}
	if n := auto.Stats.EndProtocol.Load() + auto.Stats.EndTransport.Load() + auto.Stats.RefusedProtocol.Load(); n != 0 {
		t.Errorf("auto: %d sessions ended by a bad call or refused", n)
	}
	if n, want := auto.Stats.Calls.Load(), int64(len(fuzzModes)*len(fuzzMethods())); n != want {
		t.Errorf("auto: %d calls counted, want %d", n, want)
	}
	if n := h.srv[0].Stats.Calls.Load(); n != int64(len(fuzzMethods())) {
		t.Errorf("binary-buffered: %d calls counted, want one per method (%d)", n, len(fuzzMethods()))
	}
}
