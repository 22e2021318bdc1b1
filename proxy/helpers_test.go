package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/testenv"
	"github.com/fae-go/fae/pool"
)

var bg = context.Background()

// peerHandler is the servant of a test peer. Only noop and lc_get are served
// (the rest is the nil embedded interface); lc_get's key says what to do:
//
//	"miss"             throws the declared TCacheMissed
//	"fail:<msg>"       returns an error: INTERNAL_ERROR "Internal error processing lc_get: <msg>"
//	"sleep:<dur>:<v>"  answers v after dur (whatever the client does meanwhile)
//	"block:<name>"     reports name on started, then waits for release(name), or
//	                   for its client to leave (reported on gone)
//	"drop"             panics: the peer's engine ends the session mid-call
//	anything else      answers the key
type peerHandler struct {
	rpc.FunServant
	started chan string
	gone    chan string
	mu      sync.Mutex
	release map[string]chan struct{}
	locks   map[string]int64 // lock's table: key -> the rid holding it
}

func newPeerHandler() *peerHandler {
	return &peerHandler{started: make(chan string, 64), gone: make(chan string, 64), release: map[string]chan struct{}{},
		locks: map[string]int64{}}
}

// Lock takes key for c.Rid if it is free: true, else false (the servant's
// lock without expiry). "sleep:<dur>:<k>" waits dur first, "block:<name>"
// waits as lc_get's does, then takes the key.
func (h *peerHandler) Lock(ctx context.Context, c *rpc.Context, _ string, key string) (bool, error) {
	verb, arg, _ := strings.Cut(key, ":")
	switch verb {
	case "sleep":
		ds, _, _ := strings.Cut(arg, ":")
		d, err := time.ParseDuration(ds)
		if err != nil {
			return false, err
		}
		time.Sleep(d)
	case "block":
		if _, err := h.block(ctx, arg); err != nil {
			return false, err
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, held := h.locks[key]; held {
		return false, nil
	}
	h.locks[key] = c.Rid
	return true, nil
}

// Unlock frees key if c.Rid holds it.
func (h *peerHandler) Unlock(_ context.Context, c *rpc.Context, _ string, key string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.locks[key] == c.Rid {
		delete(h.locks, key)
	}
	return nil
}

func (h *peerHandler) Noop(_ context.Context, x int32) (int32, error) { return x, nil }

func (h *peerHandler) LcGet(ctx context.Context, _ *rpc.Context, key string) ([]byte, error) {
	verb, arg, _ := strings.Cut(key, ":")
	switch verb {
	case "miss":
		return nil, &rpc.TCacheMissed{Message: thrift.StringPtr("lcache missed: " + key)}
	case "fail":
		return nil, errors.New(arg)
	case "sleep":
		ds, v, _ := strings.Cut(arg, ":")
		d, err := time.ParseDuration(ds)
		if err != nil {
			return nil, err
		}
		time.Sleep(d)
		return []byte(v), nil
	case "block":
		return h.block(ctx, arg)
	case "drop":
		panic("test peer drops the session")
	}
	return []byte(key), nil
}

func (h *peerHandler) releaseCh(name string) chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := h.release[name]
	if ch == nil {
		ch = make(chan struct{})
		h.release[name] = ch
	}
	return ch
}

// unblock lets the call blocked on name answer.
func (h *peerHandler) unblock(name string) { close(h.releaseCh(name)) }

func (h *peerHandler) block(ctx context.Context, name string) ([]byte, error) {
	wctx, stop := engine.WatchClient(ctx)
	defer stop()
	h.started <- name
	select {
	case <-h.releaseCh(name):
		return []byte(name), nil
	case <-wctx.Done():
		h.gone <- name
		return nil, context.Cause(wctx)
	}
}

// waitFor fails the test unless name arrives on ch within 5 s.
func waitFor(t *testing.T, ch chan string, name string) {
	t.Helper()
	select {
	case got := <-ch:
		if got != name {
			t.Fatalf("got %q, want %q", got, name)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%q did not arrive within 5s", name)
	}
}

// testPeer is an engine.Server serving a peerHandler on 127.0.0.1.
type testPeer struct {
	*peerHandler
	srv  *engine.Server
	peer Peer
}

// startPeer serves a new peerHandler with protocol and transport; edit (may
// be nil) changes the engine config and the processor before it serves.
func startPeer(t *testing.T, protocol string, framed bool, edit func(*engine.Config, *rpc.FunServantProcessor)) *testPeer {
	t.Helper()
	h := newPeerHandler()
	var cfg engine.Config
	cfg.SetDefaults()
	cfg.ListenAddr, cfg.Protocol, cfg.Framed = "127.0.0.1:0", protocol, framed
	proc := rpc.NewFunServantProcessor(h)
	if edit != nil {
		edit(&cfg, proc)
	}
	if err := cfg.Validate("rpc"); err != nil {
		t.Fatal(err)
	}
	srv := engine.NewServer(cfg, proc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln, err := engine.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		<-served
	})
	return &testPeer{peerHandler: h, srv: srv, peer: Peer{Addr: ln.Addr().String(), Protocol: protocol, Framed: framed}}
}

// accepted is the number of connections the peer has accepted; open the number still open.
func (p *testPeer) accepted() int64 { return p.srv.Stats.Sessions.Load() }
func (p *testPeer) open() int64     { return p.srv.Stats.SessionsActive.Load() }

// testConfig is the default config with small timeouts for tests.
func testConfig() Config {
	var c Config
	c.SetDefaults()
	c.IOTimeout = 2 * time.Second
	c.BorrowTimeout = 2 * time.Second
	c.Breaker.RetryInterval = 500 * time.Millisecond
	return c
}

// newProxies returns Proxies of cfg counting into a new pool.Counters, closed at the end of the test.
func newProxies(t *testing.T, cfg Config) (*Proxies, *pool.Counters) {
	t.Helper()
	if err := cfg.Validate("servants.proxy"); err != nil {
		t.Fatal(err)
	}
	obs := pool.NewCounters()
	p := New(cfg, obs)
	t.Cleanup(func() { p.Close() })
	return p, obs
}

var rctx = &rpc.Context{Rid: 1, Reason: "proxy.test"}

// lcGet forwards lc_get of key to peer.
func lcGet(ctx context.Context, p *Proxies, peer Peer, key string) (string, error) {
	var v []byte
	err := p.Call(ctx, peer, "lc_get", func(ctx context.Context, c *rpc.FunServantClient) (err error) {
		v, err = c.LcGet(ctx, rctx, key)
		return err
	})
	return string(v), err
}

// wantKind fails the test unless err is a *pool.Error of kind naming peer.
func wantKind(t *testing.T, err error, kind pool.Kind, peer string) *pool.Error {
	t.Helper()
	var pe *pool.Error
	if !errors.As(err, &pe) || pe.Kind != kind || !errors.Is(err, kind) {
		t.Fatalf("error %v (%T), want a *pool.Error of kind %s", err, err, kind.String())
	}
	if pe.Backend != Backend || pe.Server != peer || pe.Pool != peer || !strings.Contains(err.Error(), peer) {
		t.Fatalf("error %q: Backend %q Pool %q Server %q, want %q naming peer %s", err, pe.Backend, pe.Pool, pe.Server, Backend, peer)
	}
	return pe
}

// statsOf is the PeerStats of addr (zero if it has no pool).
func statsOf(p *Proxies, addr string) (PeerStats, bool) {
	for _, s := range p.Stats() {
		if s.Peer.Addr == addr {
			return s, true
		}
	}
	return PeerStats{}, false
}

// waiting is the number of calls to addr waiting for a connection.
func waiting(p *Proxies, addr string) int64 {
	s, _ := statsOf(p, addr)
	return s.Waiting
}

// The child peer: the test binary run again with childEnv set serves a
// peerHandler (groupcache's http_test pattern), so that a test can freeze a
// real peer process with SIGSTOP.
const childEnv = "FAE_PROXY_TEST_PEER" // "<protocol>,<framed>"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		serveChild(spec)
		return
	}
	os.Exit(m.Run())
}

// serveChild serves until killed, after printing "addr <host:port>".
func serveChild(spec string) {
	protocol, framed, _ := strings.Cut(spec, ",")
	var cfg engine.Config
	cfg.SetDefaults()
	cfg.ListenAddr, cfg.Protocol, cfg.Framed = "127.0.0.1:0", protocol, framed == "true"
	srv := engine.NewServer(cfg, rpc.NewFunServantProcessor(newPeerHandler()), slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln, err := engine.Listen(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("addr %s\n", ln.Addr())
	srv.Serve(ln)
}

// childPeer is a peer in a child process.
type childPeer struct {
	cmd  *exec.Cmd
	peer Peer
}

// startChildPeer starts a child peer serving protocol and transport; it is
// resumed and killed at the end of the test.
func startChildPeer(t *testing.T, protocol string, framed bool) *childPeer {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%t", childEnv, protocol, framed))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		cmd.Wait()
	})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		addr, ok := strings.CutPrefix(strings.TrimSpace(s), "addr ")
		if !ok {
			t.Fatalf("child peer said %q, want its address", s)
		}
		return &childPeer{cmd: cmd, peer: Peer{Addr: addr, Protocol: protocol, Framed: framed}}
	case <-time.After(10 * time.Second):
		t.Fatal("child peer did not start within 10s")
	}
	return nil
}

func (c *childPeer) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	// SIGSTOP and SIGCONT take effect asynchronously: a thread already awake
	// could still answer a call.
	switch sig {
	case syscall.SIGSTOP:
		testenv.Eventually(t, 10*time.Second, "the peer stopped", func() bool { return testenv.ThreadsStopped(c.cmd.Process.Pid) == 1 })
	case syscall.SIGCONT:
		testenv.Eventually(t, 10*time.Second, "the peer running", func() bool { return testenv.ThreadsStopped(c.cmd.Process.Pid) == 0 })
	}
}

// combos are the four protocol × transport combinations a peer may serve.
var combos = []struct {
	protocol string
	framed   bool
}{{"binary", false}, {"binary", true}, {"compact", false}, {"compact", true}}

func comboName(protocol string, framed bool) string {
	if framed {
		return protocol + "/framed"
	}
	return protocol + "/buffered"
}
