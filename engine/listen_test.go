package engine_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/testenv"
)

// multiServer is one engine.Server serving h on a TCP listener (127.0.0.1)
// and a unix socket at once, through ListenAll and ServeAll.
type multiServer struct {
	srv    *engine.Server
	tcp    *testServer // dial helpers for the TCP listener
	unix   *testServer // and for the unix socket
	sock   string
	served chan error // ServeAll's result
}

// startMulti starts a multiServer with the default config changed by edit
// (may be nil); the server is closed at the end of the test.
func startMulti(t *testing.T, h *handler, edit func(*engine.Config)) *multiServer {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "faed.sock")
	var cfg engine.Config
	cfg.SetDefaults()
	cfg.ListenAddrs = []string{"127.0.0.1:0", sock}
	if edit != nil {
		edit(&cfg)
	}
	if err := cfg.Validate("rpc"); err != nil {
		t.Fatal(err)
	}
	logs := new(testenv.SyncBuffer)
	srv := engine.NewServer(cfg, rpc.NewFunServantProcessor(h), slog.New(slog.NewTextHandler(logs, nil)))
	lns, err := engine.ListenAll(cfg)
	if err != nil {
		t.Fatal(err)
	}
	addrs := engine.ListenerAddrs(lns)
	if len(addrs) != 2 || !strings.HasPrefix(addrs[0], "127.0.0.1:") || addrs[0] == "127.0.0.1:0" || addrs[1] != sock {
		t.Fatalf("ListenerAddrs = %q, want [127.0.0.1:<port> %s]", addrs, sock)
	}
	m := &multiServer{srv: srv, sock: sock, served: make(chan error, 1),
		tcp:  &testServer{Server: srv, network: "tcp", addr: addrs[0], log: logs},
		unix: &testServer{Server: srv, network: "unix", addr: sock, log: logs}}
	go func() { m.served <- srv.ServeAll(lns) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-m.served; !errors.Is(err, engine.ErrServerClosed) {
			t.Errorf("ServeAll returned %v, want ErrServerClosed", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Wait(ctx); err != nil {
			t.Errorf("sessions still running 5s after Close: %v", err)
		}
	})
	return m
}

// TestServeTCPAndUnix: one server on a TCP listener and a unix socket serves
// calls on both; Shutdown closes both, lets a call in flight on each finish,
// ServeAll returns ErrServerClosed and the socket file is gone.
func TestServeTCPAndUnix(t *testing.T) {
	leakCheck(t)
	var inFlight atomic.Int32
	started, release := make(chan struct{}, 2), make(chan struct{})
	h := &handler{ping: func(ctx context.Context) (string, error) {
		if inFlight.Load() == 0 {
			return "pong", nil
		}
		started <- struct{}{}
		<-release
		return "finished", nil
	}}
	m := startMulti(t, h, func(c *engine.Config) { c.UnixSocketMode = "0600" })
	if fi, err := os.Stat(m.sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %s: %v, mode %v; want 0600", m.sock, err, fi.Mode().Perm())
	}
	for _, ts := range []*testServer{m.tcp, m.unix} {
		c := ts.dial(t)
		if s, err := c.Ping(bg, rctx()); err != nil || s != "pong" {
			t.Fatalf("ping on %s %s: %q %v", ts.network, ts.addr, s, err)
		}
		if x, err := c.Noop(bg, 7); err != nil || x != 7 {
			t.Fatalf("noop on %s: %d %v", ts.network, x, err)
		}
	}
	// Calls counts a call once its reply is written, so the client may see the
	// reply first.
	testenv.Eventually(t, 5*time.Second, "4 calls counted", func() bool { return m.srv.Stats.Calls.Load() == 4 })
	if n := m.srv.Stats.Sessions.Load(); n != 2 {
		t.Errorf("Sessions %d, want 2 (one per listener)", n)
	}

	// A call in flight on each listener, then the drain.
	inFlight.Store(1)
	replies := make(chan string, 2)
	for _, ts := range []*testServer{m.tcp, m.unix} {
		c := ts.dial(t)
		go func() {
			s, err := c.Ping(bg, rctx())
			if err != nil {
				s = err.Error()
			}
			replies <- ts.network + ": " + s
		}()
	}
	<-started
	<-started
	shutdown := make(chan error, 1)
	go func() { shutdown <- m.srv.Shutdown(bg) }()
	testenv.Eventually(t, 5*time.Second, "both listeners closed", func() bool {
		return m.tcp.listenerClosed() && m.unix.listenerClosed()
	})
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned %v with two calls in flight", err)
	default:
	}
	close(release)
	got := []string{<-replies, <-replies}
	slices.Sort(got)
	if want := []string{"tcp: finished", "unix: finished"}; !slices.Equal(got, want) {
		t.Errorf("calls in flight across the drain got %q, want %q", got, want)
	}
	if err := <-shutdown; err != nil {
		t.Errorf("Shutdown = %v, want nil", err)
	}
	select {
	case err := <-m.served:
		if !errors.Is(err, engine.ErrServerClosed) {
			t.Errorf("ServeAll = %v, want ErrServerClosed", err)
		}
		m.served <- err // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("ServeAll did not return after Shutdown")
	}
	if _, err := os.Stat(m.sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file after Shutdown: %v, want it removed", err)
	}
}

// TestSessionsLimitShared: max_outstanding_sessions counts the sessions of
// every listener together, and an idle listener holds no slot: with a limit
// of 1, sessions on the two listeners in turn are each served, and while one
// is live a client of the other listener is answered "faed overloaded" at
// once (accept_wait 0); once the live one ends, that listener serves again.
func TestSessionsLimitShared(t *testing.T) {
	leakCheck(t)
	m := startMulti(t, &handler{}, func(c *engine.Config) { c.MaxOutstandingSessions, c.AcceptWait = 1, 0 })
	ping := func(c *client) error {
		s, err := c.Ping(bg, rctx())
		if err == nil && s != "pong" {
			err = errors.New("reply " + s)
		}
		return err
	}
	for i, ts := range []*testServer{m.tcp, m.unix, m.tcp, m.unix} {
		c := ts.dial(t)
		if err := ping(c); err != nil {
			t.Fatalf("session %d on %s, none other live: %v", i, ts.network, err)
		}
		c.conn.Close()
		testenv.Eventually(t, 5*time.Second, "the session ended", func() bool { return m.srv.Sessions() == 0 })
	}
	for _, pair := range [][2]*testServer{{m.tcp, m.unix}, {m.unix, m.tcp}} {
		live := pair[0].dial(t)
		if err := ping(live); err != nil {
			t.Fatalf("%s: %v", pair[0].network, err)
		}
		refused := pair[1].dial(t)
		err := ping(refused)
		if err == nil || !strings.Contains(err.Error(), "faed overloaded: 1 sessions (rpc.max_outstanding_sessions) busy") {
			t.Fatalf("a %s session while a %s one is live at limit 1: err %v, want faed overloaded", pair[1].network, pair[0].network, err)
		}
		if n := m.srv.Sessions(); n != 1 {
			t.Errorf("Sessions = %d at limit 1", n)
		}
		live.conn.Close()
		refused.conn.Close()
		testenv.Eventually(t, 5*time.Second, "no session left", func() bool { return m.srv.Sessions() == 0 })
		after := pair[1].dial(t)
		if err := ping(after); err != nil {
			t.Fatalf("%s session after the %s one ended: %v", pair[1].network, pair[0].network, err)
		}
		after.conn.Close()
		testenv.Eventually(t, 5*time.Second, "no session left", func() bool { return m.srv.Sessions() == 0 })
	}
	if n := m.srv.Stats.Sessions.Load(); n != 8 {
		t.Errorf("Sessions accepted = %d, want 8", n)
	}
	if n := m.srv.Stats.RefusedOverload.Load(); n != 2 {
		t.Errorf("RefusedOverload = %d, want 2", n)
	}
}

// TestServeAllListenerFails: a listener that fails for good (closed under the
// server: net.ErrClosed, not a temporary error) ends ServeAll with an error
// naming it, while the other listener goes on serving.
func TestServeAllListenerFails(t *testing.T) {
	leakCheck(t)
	sock := filepath.Join(t.TempDir(), "faed.sock")
	var cfg engine.Config
	cfg.SetDefaults()
	cfg.ListenAddrs = []string{"127.0.0.1:0", sock}
	srv := engine.NewServer(cfg, rpc.NewFunServantProcessor(&handler{}), slog.New(slog.DiscardHandler))
	lns, err := engine.ListenAll(cfg)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeAll(lns) }()
	defer func() { srv.Close(); srv.Wait(bg) }()
	unix := &testServer{Server: srv, network: "unix", addr: sock}
	if _, err := unix.dial(t).Ping(bg, rctx()); err != nil { // both Serve loops are running
		t.Fatal(err)
	}
	tcpAddr := lns[0].Addr().String()
	lns[0].Close()
	select {
	case err := <-served:
		if !errors.Is(err, net.ErrClosed) || !strings.Contains(err.Error(), "listener "+tcpAddr) {
			t.Errorf("ServeAll = %v, want net.ErrClosed naming listener %s", err, tcpAddr)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeAll did not return when a listener failed")
	}
	if s, err := unix.dial(t).Ping(bg, rctx()); err != nil || s != "pong" {
		t.Errorf("the unix listener after the TCP one failed: %q %v", s, err)
	}
	if err := srv.ServeAll(nil); err == nil || !strings.Contains(err.Error(), "no listener") {
		t.Errorf("ServeAll(nil) = %v", err)
	}
}

// TestListenAll: stale sockets are replaced and every socket gets the mode;
// an address that cannot be opened closes those already opened and names its
// key and index; Listen refuses several addresses.
func TestListenAll(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	stale, err := net.Listen("unix", a)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close() // leaves a stale socket file, as a crash would

	var cfg engine.Config
	cfg.SetDefaults()
	cfg.ListenAddrs = []string{a, "127.0.0.1:0", b}
	cfg.UnixSocketMode = "0640"
	lns, err := engine.ListenAll(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{a, b} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o640 {
			t.Errorf("%s: %v, mode %v; want 0640", p, err, fi.Mode().Perm())
		}
	}
	// A second ListenAll on the same live sockets fails on the first and
	// leaves the first owner's sockets alone.
	if _, err := engine.ListenAll(cfg); err == nil || !strings.Contains(err.Error(), "rpc.listen_addr[0] "+a+": another process is listening on it") {
		t.Errorf("ListenAll on live sockets = %v", err)
	}
	if _, err := engine.Listen(cfg); err == nil || !strings.Contains(err.Error(), "3 addresses; engine.Listen opens one, use engine.ListenAll") {
		t.Errorf("Listen with 3 addresses = %v", err)
	}
	for _, l := range lns {
		l.Close()
	}
	for _, p := range []string{a, b} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after Close: %v, want removed", p, err)
		}
	}

	// The third address fails (a port in use): the two opened before are closed.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tcp, err := net.Listen("tcp", "127.0.0.1:0") // a free port, known to the test
	if err != nil {
		t.Fatal(err)
	}
	free := tcp.Addr().String()
	tcp.Close()
	cfg.ListenAddrs = []string{a, free, busy.Addr().String()}
	_, err = engine.ListenAll(cfg)
	if err == nil || !strings.Contains(err.Error(), "rpc.listen_addr[2] "+busy.Addr().String()+": ") ||
		!strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("ListenAll with a port in use = %v", err)
	}
	if _, err := os.Stat(a); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s after the failed ListenAll: %v, want closed and removed", a, err)
	}
	if l, err := net.Listen("tcp", free); err != nil {
		t.Errorf("%s after the failed ListenAll: %v, want closed", free, err)
	} else {
		l.Close()
	}

	// A file that is not a socket is never removed.
	if err := os.WriteFile(b, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.ListenAddrs = []string{b}
	if _, err := engine.ListenAll(cfg); err == nil || !strings.Contains(err.Error(), "rpc.listen_addr "+b+": exists and is not a socket") {
		t.Errorf("ListenAll on a regular file = %v", err)
	}
	if data, err := os.ReadFile(b); err != nil || string(data) != "data" {
		t.Errorf("the regular file %s: %q %v, want it untouched", b, data, err)
	}
}

// TestConfigAddrs: ListenAddr is the one-address form of a hand-built Config;
// setting it with ListenAddrs is refused.
func TestConfigAddrs(t *testing.T) {
	var cfg engine.Config
	cfg.SetDefaults()
	if err := cfg.Validate("rpc"); err == nil || err.Error() != "rpc.listen_addr: required" {
		t.Errorf("no address: %v", err)
	}
	cfg.ListenAddr = "127.0.0.1:9001"
	if err := cfg.Validate("rpc"); err != nil || !slices.Equal(cfg.Addrs(), []string{"127.0.0.1:9001"}) {
		t.Errorf("ListenAddr alone: %v, Addrs %q", err, cfg.Addrs())
	}
	cfg.ListenAddrs = []string{"/run/fae.sock"}
	if err := cfg.Validate("rpc"); err == nil || !strings.Contains(err.Error(), "are set: set one") {
		t.Errorf("both set: %v", err)
	}
	cfg.ListenAddr = ""
	if addrs := cfg.Addrs(); !slices.Equal(addrs, []string{"/run/fae.sock"}) {
		t.Errorf("Addrs = %q", addrs)
	} else if addrs[0] = "changed"; cfg.ListenAddrs[0] != "/run/fae.sock" {
		t.Error("Addrs shares its slice with the Config")
	}
	if !engine.IsUnixAddr("./faed.sock") || engine.IsUnixAddr(":9001") || engine.IsUnixAddr("faed.sock") {
		t.Error("IsUnixAddr: a path is what contains a \"/\"")
	}
}

// TestPeerAddr: the address peers reach a node at is advertise_addr if set,
// else the first TCP listen address as configured, with a port 0 replaced by
// its listener's real port; a node on unix sockets alone has none.
func TestPeerAddr(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "faed.sock")
	var cfg engine.Config
	cfg.SetDefaults()
	cfg.ListenAddrs = []string{sock, "127.0.0.1:0", "127.0.0.2:9009"}
	lns := listenFirstTwo(t, sock)
	port := strconv.Itoa(lns[1].Addr().(*net.TCPAddr).Port)
	for _, tc := range []struct {
		name      string
		addrs     []string
		advertise string
		lns       []net.Listener
		want      string
	}{
		{"port 0 resolved", []string{sock, "127.0.0.1:0", "127.0.0.2:9009"}, "", append(lns, nil), "127.0.0.1:" + port},
		{"advertise_addr wins", []string{sock, "127.0.0.1:0"}, "10.0.0.5:9001", nil, "10.0.0.5:9001"},
		{"configured form kept", []string{sock, ":9001"}, "", nil, ":9001"},
		{"a name stays a name", []string{"fae1.example:9001"}, "", nil, "fae1.example:9001"},
		{"host kept with port 0", []string{sock, ":0"}, "", lns, ":" + port},
	} {
		cfg.ListenAddrs, cfg.AdvertiseAddr = tc.addrs, tc.advertise
		if got, err := cfg.PeerAddr(tc.lns); err != nil || got != tc.want {
			t.Errorf("%s: PeerAddr = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	cfg.ListenAddrs, cfg.AdvertiseAddr = []string{sock}, ""
	if got, err := cfg.PeerAddr(lns[:1]); err == nil || !strings.Contains(err.Error(), "no TCP address and rpc.advertise_addr is not set") {
		t.Errorf("unix only: PeerAddr = %q, %v", got, err)
	}
	cfg.ListenAddrs = []string{sock, "127.0.0.1:0"}
	if got, err := cfg.PeerAddr(nil); err == nil || !strings.Contains(err.Error(), "0 listeners for 2 addresses") {
		t.Errorf("port 0 without listeners: PeerAddr = %q, %v", got, err)
	}
}

// listenFirstTwo opens the unix socket sock and a TCP listener on 127.0.0.1:0,
// closed at the end of the test.
func listenFirstTwo(t *testing.T, sock string) []net.Listener {
	var cfg engine.Config
	cfg.SetDefaults()
	cfg.ListenAddrs = []string{sock, "127.0.0.1:0"}
	lns, err := engine.ListenAll(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, l := range lns {
			l.Close()
		}
	})
	return lns
}
