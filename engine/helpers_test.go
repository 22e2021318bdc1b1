package engine_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/testenv"
)

// handler serves noop and ping through the generated processor; ping runs the
// test's function when it has one. The other methods are the nil embedded
// interface: no test calls them.
type handler struct {
	rpc.FunServant
	ping func(ctx context.Context) (string, error)
}

func (h *handler) Noop(_ context.Context, x int32) (int32, error) { return x, nil }

func (h *handler) Ping(ctx context.Context, _ *rpc.Context) (string, error) {
	if h.ping == nil {
		return "pong", nil
	}
	return h.ping(ctx)
}

// testServer is an engine.Server serving h on a real loopback listener.
type testServer struct {
	*engine.Server
	network, addr string
	framed        bool
	served        chan error // Serve's result
	log           *testenv.SyncBuffer
}

// startServer serves h on network ("tcp" on 127.0.0.1, or "unix" in a temp dir)
// with the default config changed by edit (may be nil). The server is closed at
// the end of the test.
func startServer(t testing.TB, network string, h *handler, edit func(*engine.Config)) *testServer {
	t.Helper()
	return startServerWith(t, network, h, edit, nil)
}

// startServerWith is startServer with setup (may be nil) run on the server before Serve.
func startServerWith(t testing.TB, network string, h *handler, edit func(*engine.Config), setup func(*engine.Server)) *testServer {
	t.Helper()
	var cfg engine.Config
	cfg.SetDefaults()
	cfg.ListenAddr = "127.0.0.1:0"
	if network == "unix" {
		cfg.ListenAddr = filepath.Join(t.TempDir(), "engine.sock")
	}
	if edit != nil {
		edit(&cfg)
	}
	if err := cfg.Validate("rpc"); err != nil {
		t.Fatal(err)
	}
	logs := new(testenv.SyncBuffer)
	srv := engine.NewServer(cfg, rpc.NewFunServantProcessor(h), slog.New(slog.NewTextHandler(logs, nil)))
	if setup != nil {
		setup(srv)
	}
	ln, err := engine.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: srv, network: network, addr: ln.Addr().String(), framed: cfg.Framed,
		served: make(chan error, 1), log: logs}
	go func() { ts.served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-ts.served; !errors.Is(err, engine.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Wait(ctx); err != nil {
			t.Errorf("sessions still running 5s after Close: %v", err)
		}
	})
	return ts
}

// listenerClosed reports whether a connect is refused: Shutdown or Close has begun.
func (ts *testServer) listenerClosed() bool {
	c, err := net.Dial(ts.network, ts.addr)
	if err == nil {
		c.Close()
	}
	return err != nil
}

// dialRaw opens a plain connection to the server, closed at the end of the test.
func (ts *testServer) dialRaw(t testing.TB) net.Conn {
	t.Helper()
	c, err := net.DialTimeout(ts.network, ts.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// client is one session of the generated Go client (binary protocol).
type client struct {
	*rpc.FunServantClient
	conn net.Conn
}

// dial opens a session with the generated client, closed at the end of the test.
func (ts *testServer) dial(t testing.TB) *client {
	t.Helper()
	conn := ts.dialRaw(t)
	conf := &thrift.TConfiguration{SocketTimeout: 10 * time.Second}
	var trans thrift.TTransport = thrift.NewTBufferedTransport(thrift.NewTSocketFromConnConf(conn, conf), 4096)
	if ts.framed {
		trans = thrift.NewTFramedTransportConf(thrift.NewTSocketFromConnConf(conn, conf), conf)
	}
	return &client{rpc.NewFunServantClientFactory(trans, thrift.NewTBinaryProtocolFactoryConf(conf)), conn}
}

var bg = context.Background()

// rctx is a valid rpc.Context.
func rctx() *rpc.Context { return &rpc.Context{Rid: 1, Reason: "engine.test"} }

// request returns the bytes of one call of method with args (binary protocol,
// framed or not), as a client writes them.
func request(t testing.TB, framed bool, method string, seq int32, args thrift.TStruct) []byte {
	t.Helper()
	buf := thrift.NewTMemoryBuffer()
	var trans thrift.TTransport = buf
	if framed {
		trans = thrift.NewTFramedTransportConf(buf, nil)
	}
	p := thrift.NewTBinaryProtocolConf(trans, nil)
	if err := p.WriteMessageBegin(bg, method, thrift.CALL, seq); err != nil {
		t.Fatal(err)
	}
	if err := args.Write(bg, p); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteMessageEnd(bg); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(bg); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func pingRequest(t testing.TB, framed bool, seq int32) []byte {
	return request(t, framed, "ping", seq, &rpc.FunServantPingArgs{C: rctx()})
}

func noopRequest(t testing.TB, framed bool, seq int32, x int32) []byte {
	return request(t, framed, "noop", seq, &rpc.FunServantNoopArgs{X: x})
}

// replyReader reads replies from a raw connection; each read waits at most 5 s.
type replyReader struct{ p thrift.TProtocol }

func newReplyReader(conn net.Conn, framed bool) *replyReader {
	// TSocket sets the read deadline before each read, from SocketTimeout.
	conf := &thrift.TConfiguration{SocketTimeout: 5 * time.Second}
	var trans thrift.TTransport = thrift.NewTSocketFromConnConf(conn, conf)
	if framed {
		trans = thrift.NewTFramedTransportConf(trans, nil)
	}
	return &replyReader{thrift.NewTBinaryProtocolConf(trans, nil)}
}

// read reads one reply into result and returns its method name and seq id; an
// exception reply is returned as the error.
func (r *replyReader) read(result thrift.TStruct) (string, int32, error) {
	name, typ, seq, err := r.p.ReadMessageBegin(bg)
	if err != nil {
		return "", 0, err
	}
	if typ == thrift.EXCEPTION {
		x := thrift.NewTApplicationException(0, "")
		if err := x.Read(bg, r.p); err != nil {
			return name, seq, err
		}
		return name, seq, x
	}
	if err := result.Read(bg, r.p); err != nil {
		return name, seq, err
	}
	return name, seq, r.p.ReadMessageEnd(bg)
}

// readClosed reads conn until the server closes it and returns how long that took.
func readClosed(t testing.TB, conn net.Conn, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	conn.SetReadDeadline(start.Add(within))
	if _, err := io.Copy(io.Discard, conn); err != nil {
		t.Fatalf("waiting for the server to close the session: %v", err)
	}
	return time.Since(start)
}

// goroutines returns the stacks of the live goroutines that run code of package
// engine (not engine_test) and contain every string of also.
func goroutines(also ...string) []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var found []string
outer:
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, "github.com/fae-go/fae/engine.") {
			continue
		}
		for _, s := range also {
			if !strings.Contains(g, s) {
				continue outer
			}
		}
		found = append(found, g)
	}
	return found
}

// leakCheck fails the test if, once its other cleanups have run (the server
// closed), a goroutine of package engine is still alive after 5 s. Call it first.
func leakCheck(t *testing.T) {
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			left := goroutines()
			if len(left) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d engine goroutines left after the test:\n%s", len(left), strings.Join(left, "\n\n"))
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}
