package engine_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/servant"
)

// fuzzMaxMessage is max_message_bytes in the fuzz config: small, so that a
// request the limit misses shows in the allocation check below.
const fuzzMaxMessage = 64 << 10 // bytes

// fuzzAllocPerCall is how many bytes one call may allocate in all (engine,
// processor, servant, logs, trace): a generous multiple of max_message_bytes.
// The costliest requests for their size allocate up to 69 times it
// (TestFuzzManyShortValues); a length the engine fails to bound (a 2 GiB
// frame, string or list), or a per-value overhead such as thrift's 512-byte
// ReadBinary buffer (engine/readbinary.go, 330-820 times), shows as more.
const fuzzAllocPerCall = 128 * fuzzMaxMessage // bytes

// fuzzMode is one way of speaking to faed: the protocol and transport of
// rpc.protocol and rpc.framed. The fuzz input's mode byte picks one (mod 4).
type fuzzMode struct {
	name            string
	compact, framed bool
}

var fuzzModes = [4]fuzzMode{
	{"binary-buffered", false, false}, {"binary-framed", false, true},
	{"compact-buffered", true, false}, {"compact-framed", true, true},
}

// fuzzAuto is the harness's fifth server, rpc.protocol auto (mode byte 4,
// mod 5): the input is in any of the four modes, detected by its first bytes.
const fuzzAuto = 4

// fuzzServers is the number of servers of the harness: one per mode, and fuzzAuto.
const fuzzServers = len(fuzzModes) + 1

// fuzzName names server m of the harness.
func fuzzName(m int) string {
	if m == fuzzAuto {
		return "auto"
	}
	return fuzzModes[m].name
}

// fuzzClient is the client mode of server m's ping check: its own, or
// compact-framed for fuzzAuto (the detection furthest from binary buffered).
func fuzzClient(m int) int {
	if m == fuzzAuto {
		return 3
	}
	return m
}

// protocol is the client side of the mode over trans.
func (m fuzzMode) protocol(trans thrift.TTransport) thrift.TProtocol {
	if m.framed {
		trans = thrift.NewTFramedTransportConf(trans, nil)
	}
	if m.compact {
		return thrift.NewTCompactProtocolConf(trans, nil)
	}
	return thrift.NewTBinaryProtocolConf(trans, nil)
}

// FuzzSession feeds raw bytes to faed as one client connection: the real
// engine session loop (buffered or framed, binary or compact, or auto: picked by mode)
// in front of the real FunServant processor (no backend; lcache and lock on).
// It fails when a panic is recovered anywhere (servant MethodStats.Panics,
// engine Stats.EndPanic) or escapes (the fuzzer sees the crash), when the
// session does not end once its bytes are read, when the input allocates more
// than fuzzAllocPerCall per call, or when a well-formed ping on a new
// connection is not answered afterwards. Seeds: testdata/fuzz/FuzzSession,
// written by TestFuzzSeeds. Run it with `make fuzz`.
func FuzzSession(f *testing.F) {
	h := newFuzzHarness(f)
	f.Fuzz(func(t *testing.T, mode byte, data []byte) {
		m := int(mode) % fuzzServers
		panics := h.panics()
		calls := h.srv[m].Stats.Calls.Load()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		h.session(t, m, data, nil)
		runtime.ReadMemStats(&after)
		n := h.srv[m].Stats.Calls.Load() - calls + 1 // +1: the call that ended the session, if any
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(n)*fuzzAllocPerCall {
			t.Errorf("%s: %d bytes in, %d calls: %d bytes allocated, over %d per call",
				fuzzName(m), len(data), n, alloc, fuzzAllocPerCall)
		}
		if p := h.panics(); p != panics {
			t.Fatalf("%s: %d panics recovered (servant MethodStats.Panics + engine EndPanic)", fuzzName(m), p-panics)
		}
		h.ping(t, m)
	})
}

// fuzzHarness is one FunServant served by five engine.Servers, one per mode
// and one auto (fuzzAuto), each on a listener of in-memory connections.
type fuzzHarness struct {
	svt      *servant.FunServant
	srv      [fuzzServers]*engine.Server
	ln       [fuzzServers]*memListener
	pingCall [fuzzServers][]byte // a well-formed ping call of each server's client mode (fuzzClient)
}

func newFuzzHarness(f testing.TB) *fuzzHarness {
	log := slog.New(slog.NewTextHandler(io.Discard, nil)) // formats every line, keeps none
	var scfg servant.Config
	scfg.SetDefaults()
	scfg.ProfilerRate = 10000 // trace every call: the trace formats the client's arguments
	scfg.Lcache = &servant.LcacheConfig{MaxItems: 1024, MaxBytes: 4 << 20, MaxItemBytes: 128 << 10}
	scfg.Lock = &servant.LockConfig{MaxItems: 1024, Expires: time.Second}
	scfg.SessionMaxItems = 1024
	if err := scfg.Validate("servants"); err != nil {
		f.Fatal(err)
	}
	svt, err := servant.New(scfg, servant.Options{Version: "fuzz", Logger: log, TraceLogger: log})
	if err != nil {
		f.Fatal(err)
	}
	h := &fuzzHarness{svt: svt}
	for m := range fuzzServers {
		var cfg engine.Config
		cfg.SetDefaults()
		cfg.ListenAddr = "127.0.0.1:0"
		cfg.MaxMessageBytes = fuzzMaxMessage
		switch mode := fuzzModes[fuzzClient(m)]; {
		case m == fuzzAuto:
			cfg.Protocol = engine.ProtocolAuto
		case mode.compact:
			cfg.Protocol, cfg.Framed = "compact", mode.framed
		default:
			cfg.Framed = mode.framed
		}
		if err := cfg.Validate("rpc"); err != nil {
			f.Fatal(err)
		}
		h.srv[m] = engine.NewServer(cfg, rpc.NewFunServantProcessor(svt), log)
		h.ln[m] = newMemListener()
		h.pingCall[m] = fuzzCall(f, fuzzClient(m), "Ping")
		served := make(chan error, 1)
		go func() { served <- h.srv[m].Serve(h.ln[m]) }()
		f.Cleanup(func() {
			h.srv[m].Close()
			<-served
		})
	}
	f.Cleanup(svt.Close) // after the servers (cleanups run last first)
	return h
}

// panics is the number of panics recovered so far, in the servant and in the engine.
func (h *fuzzHarness) panics() int64 {
	var n int64
	for _, name := range servant.MethodNames() {
		n += h.svt.Stats(name).Panics.Load()
	}
	for _, s := range h.srv {
		n += s.Stats.EndPanic.Load()
	}
	return n
}

// session serves data as one connection of mode m and returns once the
// session has ended (its bytes read, the connection closed, its slot
// released); reply, when not nil, receives what faed wrote.
func (h *fuzzHarness) session(t *testing.T, m int, data []byte, reply *bytes.Buffer) {
	t.Helper()
	c := &memConn{in: bytes.NewReader(data), out: reply, closed: make(chan struct{})}
	deadline := time.After(10 * time.Second)
	select {
	case h.ln[m].conns <- c:
	case <-deadline:
		t.Fatalf("%s: the server did not accept a connection within 10s", fuzzName(m))
	}
	select {
	case <-c.closed:
	case <-deadline:
		t.Fatalf("%s: the session did not end 10s after its %d bytes were offered", fuzzName(m), len(data))
	}
	for h.srv[m].Sessions() != 0 { // the slot is released just after the close
		select {
		case <-deadline:
			t.Fatalf("%s: %d sessions still live 10s after the connection closed", fuzzName(m), h.srv[m].Sessions())
		default:
			runtime.Gosched()
		}
	}
}

// ping checks that mode m's server still answers a well-formed ping on a new connection.
func (h *fuzzHarness) ping(t *testing.T, m int) {
	t.Helper()
	var reply bytes.Buffer
	h.session(t, m, h.pingCall[m], &reply)
	p := fuzzModes[fuzzClient(m)].protocol(thrift.NewStreamTransportR(&reply))
	ctx := context.Background()
	name, typ, _, err := p.ReadMessageBegin(ctx)
	if err != nil || name != "ping" || typ != thrift.REPLY {
		t.Fatalf("%s: ping after the input: reply %q type %d, err %v", fuzzName(m), name, typ, err)
	}
	var res rpc.FunServantPingResult
	if err := res.Read(ctx, p); err != nil || !res.IsSetSuccess() {
		t.Fatalf("%s: ping after the input: %v, result %v", fuzzName(m), err, res.String())
	}
}

// memListener is a net.Listener of memConns: each Accept returns the next
// connection handed to conns, until Close.
type memListener struct {
	conns chan *memConn
	done  chan struct{}
	once  sync.Once
}

func newMemListener() *memListener {
	return &memListener{conns: make(chan *memConn), done: make(chan struct{})}
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *memListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *memListener) Addr() net.Addr { return memAddr{} }

// memConn is the server side of a client that has sent in and then shut its
// side down: reads return in's bytes, then io.EOF, never blocking; writes go to
// out (discarded when nil). It has no deadlines (nothing blocks), and is no
// syscall.Conn, so engine.WatchClient does not watch it.
type memConn struct {
	in       *bytes.Reader
	out      *bytes.Buffer
	closed   chan struct{}
	isClosed atomic.Bool
	once     sync.Once
}

func (c *memConn) Read(p []byte) (int, error) {
	if c.isClosed.Load() {
		return 0, net.ErrClosed
	}
	return c.in.Read(p)
}

func (c *memConn) Write(p []byte) (int, error) {
	if c.isClosed.Load() {
		return 0, net.ErrClosed
	}
	if c.out != nil {
		c.out.Write(p)
	}
	return len(p), nil
}

func (c *memConn) Close() error {
	c.once.Do(func() { c.isClosed.Store(true); close(c.closed) })
	return nil
}

func (c *memConn) LocalAddr() net.Addr              { return memAddr{} }
func (c *memConn) RemoteAddr() net.Addr             { return memAddr{} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }
func (memAddr) Network() string                     { return "mem" }
func (memAddr) String() string                      { return "mem:fuzz" }

type memAddr struct{}
