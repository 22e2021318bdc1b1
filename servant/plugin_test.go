package servant

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
)

// recorder is a test plugin: it notes what it sees, and objects to every
// call whose reason is "refuse".
type recorder struct {
	name string
	mu   sync.Mutex
	log  []string // "before <name> <method> <client>", "after <name> <method> <err>"
}

var (
	recMu     sync.Mutex
	recorders = map[string]*recorder{} // the last one built, by name
)

func init() {
	for _, name := range []string{"TestFirst", "TestSecond"} {
		err := RegisterPlugin(name, func(spec PluginSpec, env PluginEnv) (Plugin, error) {
			if spec.Limit != 0 || spec.MaxHosts != 0 || len(spec.Options) > 0 {
				return nil, errors.New("takes no keys")
			}
			r := &recorder{name: name}
			recMu.Lock()
			recorders[name] = r
			recMu.Unlock()
			return r, nil
		})
		if err != nil {
			panic(err)
		}
	}
}

func lastRecorder(name string) *recorder {
	recMu.Lock()
	defer recMu.Unlock()
	return recorders[name]
}

func (r *recorder) Before(c Call) error {
	client := "none"
	if c.Client.IsValid() {
		client = c.Client.String()
	}
	r.note("before " + r.name + " " + c.Method + " " + client)
	if c.Context.Reason == "refuse" {
		return errors.New("reason refuse over limit 0")
	}
	return nil
}

func (r *recorder) After(c Call, err error, _ time.Duration) {
	r.note("after " + r.name + " " + c.Method + " " + errText(err))
}

func errText(err error) string {
	switch {
	case err == nil:
		return "ok"
	case isMiss(err):
		return "miss"
	}
	return err.Error()
}

func (r *recorder) note(s string) {
	r.mu.Lock()
	r.log = append(r.log, s)
	r.mu.Unlock()
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.log
	r.log = nil
	return l
}

// serve serves s on a loopback TCP port and a unix socket through a real
// engine, and returns a client of each.
func serve(t *testing.T, s *FunServant) (tcp, unix *rpc.FunServantClient) {
	t.Helper()
	return serveProcessor(t, rpc.NewFunServantProcessor(s))
}

// serveProcessor is serve of proc.
func serveProcessor(t *testing.T, proc thrift.TProcessor) (tcp, unix *rpc.FunServantClient) {
	t.Helper()
	tcpAddr, unixAddr := serveProcessorAt(t, proc)
	return client(t, "tcp", tcpAddr), client(t, "unix", unixAddr)
}

// serveProcessorAt is serveProcessor, returning the TCP address and the
// socket's path instead of clients.
func serveProcessorAt(t *testing.T, proc thrift.TProcessor) (tcpAddr, unixPath string) {
	t.Helper()
	var cfg engine.Config
	cfg.SetDefaults()
	cfg.ListenAddrs = engine.AddrList{"127.0.0.1:0", filepath.Join(t.TempDir(), "faed.sock")}
	lns, err := engine.ListenAll(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := engine.NewServer(cfg, proc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	go srv.ServeAll(lns)
	t.Cleanup(func() { srv.Close() })
	return lns[0].Addr().String(), lns[1].Addr().String()
}

func client(t *testing.T, network, addr string) *rpc.FunServantClient {
	t.Helper()
	conn, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	sock := thrift.NewTSocketFromConnConf(conn, &thrift.TConfiguration{SocketTimeout: 5 * time.Second})
	trans := thrift.NewTBufferedTransport(sock, 4096)
	t.Cleanup(func() { trans.Close() })
	return rpc.NewFunServantClientFactory(trans, thrift.NewTBinaryProtocolFactoryConf(nil))
}

func pluginConfig(specs ...PluginSpec) Config {
	cfg := baseConfig()
	cfg.Lcache = lcacheConfig(100)
	cfg.Plugins = specs
	return cfg
}

// The chain sees each call with a checked Context before (in config order)
// and after (reverse order), with the client's address over TCP and none
// over the unix socket; noop and id_decode are not seen.
func TestPluginsSeeCallsInOrder(t *testing.T) {
	s := newTestServant(t, pluginConfig(PluginSpec{Name: "TestFirst"}, PluginSpec{Name: "TestSecond"}), Options{})
	tcp, unix := serve(t, s)
	ctx := context.Background()
	first, second := lastRecorder("TestFirst"), lastRecorder("TestSecond")
	first.take()
	second.take()

	if _, err := tcp.LcGet(ctx, validCtx(), "absent"); err == nil {
		t.Fatal("lc_get of an absent key: no miss")
	}
	if _, err := unix.Ping(ctx, validCtx()); err != nil {
		t.Fatal(err)
	}
	if _, err := tcp.Noop(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := tcp.IDDecode(ctx, nil, 1); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"before TestFirst lc.get 127.0.0.1", "after TestFirst lc.get miss",
		"before TestFirst ping none", "after TestFirst ping ok",
	}
	got := first.take()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("first saw\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := second.take(); len(got) != 4 || got[0] != "before TestSecond lc.get 127.0.0.1" {
		t.Fatalf("second saw %q", got)
	}
}

// An objection refuses the call with the plugin's name and reason when the
// entry enforces, counted in Refused; the plugins before it see the refusal
// in After, those after it see nothing. Without enforce the call goes on and
// the objection is counted in WouldRefuse.
func TestPluginRefusal(t *testing.T) {
	s := newTestServant(t, pluginConfig(PluginSpec{Name: "TestFirst"}, PluginSpec{Name: "TestSecond", Enforce: true}), Options{})
	tcp, _ := serve(t, s)
	first, second := lastRecorder("TestFirst"), lastRecorder("TestSecond")
	first.take()
	second.take()

	_, err := tcp.Ping(context.Background(), &rpc.Context{Rid: 1, Reason: "refuse"})
	var ae thrift.TApplicationException
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "plugin TestSecond refused the call: reason refuse over limit 0") {
		t.Fatalf("refused ping: %v, want a TApplicationException naming the plugin and its reason", err)
	}
	if got := first.take(); len(got) != 2 || !strings.HasPrefix(got[1], "after TestFirst ping plugin TestSecond refused") {
		t.Fatalf("first saw %q", got)
	}
	if got := second.take(); len(got) != 1 {
		t.Fatalf("the refusing plugin saw %q, want only its before", got)
	}
	if n := s.Stats("ping").Errors.Load(); n != 1 {
		t.Fatalf("ping errors %d, want 1", n)
	}
	stats := s.Plugins()
	if len(stats) != 2 || stats[1].Name != "TestSecond" || stats[1].Refused != 1 || stats[1].WouldRefuse != 0 ||
		stats[0].WouldRefuse != 1 || !stats[1].Enforce || stats[0].Enforce {
		t.Fatalf("plugin stats %+v", stats)
	}
}

// A reload changes the chain; a plugin no longer listed keeps its line
// (counters never go back), marked not configured.
func TestPluginsChangeAtReload(t *testing.T) {
	s := newTestServant(t, pluginConfig(PluginSpec{Name: "TestFirst"}), Options{})
	ctx := context.Background()
	refuse := &rpc.Context{Rid: 1, Reason: "refuse"}
	if _, err := s.Ping(ctx, refuse); err != nil {
		t.Fatalf("counting only: %v", err)
	}
	if _, err := s.Reload(pluginConfig(PluginSpec{Name: "TestSecond", Enforce: true})); err != nil {
		t.Fatal(err)
	}
	var re *RefusedError
	if _, err := s.Ping(ctx, refuse); !errors.As(err, &re) || re.Plugin != "TestSecond" {
		t.Fatalf("after reload: %v, want refused by TestSecond", err)
	}
	if _, err := s.Reload(pluginConfig()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Ping(ctx, refuse); err != nil {
		t.Fatalf("no plugins: %v", err)
	}
	got := s.Plugins()
	want := []PluginStat{{Name: "TestFirst", WouldRefuse: 1}, {Name: "TestSecond", Refused: 1}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("plugin stats %+v, want %+v", got, want)
	}
}

// An unknown name is a config error listing the known ones; so are a name
// listed twice and an entry its factory refuses. New refuses them too.
func TestPluginConfigErrors(t *testing.T) {
	for _, c := range []struct {
		specs []PluginSpec
		want  string
	}{
		{[]PluginSpec{{Name: "Nope"}}, `plugin.plugins[0].name: unknown plugin "Nope" (known: RateLimiter, TestFirst, TestSecond)`},
		{[]PluginSpec{{Name: "TestFirst"}, {Name: "TestFirst"}}, `plugin.plugins[1].name: plugin "TestFirst" is listed twice`},
		{[]PluginSpec{{Name: "TestFirst", Limit: 3}}, `plugin.plugins[0] (TestFirst): takes no keys`},
		{[]PluginSpec{{Name: "RateLimiter", Limit: -1}}, `plugin.plugins[0] (RateLimiter): limit: the burst must be 0 (default) or more, got -1`},
		{[]PluginSpec{{Name: "RateLimiter", Options: map[string]any{"enfoce": true}}}, `plugin.plugins[0] (RateLimiter): unknown keys [enfoce]`},
	} {
		err := ValidatePlugins("plugin.plugins", c.specs, 6000)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %s", c.specs, err, c.want)
		}
		if _, err := New(pluginConfig(c.specs...), Options{}); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("New %+v: %v, want %s", c.specs, err, c.want)
		}
	}
	if err := ValidatePlugins("plugin.plugins", []PluginSpec{{Name: "RateLimiter"}}, 0); err == nil ||
		!strings.Contains(err.Error(), "rpc.host_max_call_per_minute: must be at least 1") {
		t.Errorf("host_max_call_per_minute 0: %v", err)
	}
	if err := RegisterPlugin("TestFirst", func(PluginSpec, PluginEnv) (Plugin, error) { return nil, nil }); err == nil {
		t.Error("a name registered twice: no error")
	}
}

// A panicking plugin fails its call with ErrPanic, counted; the servant goes on.
func TestPluginPanic(t *testing.T) {
	s := newTestServant(t, pluginConfig(PluginSpec{Name: RateLimiterName}), Options{Logger: slog.New(slog.DiscardHandler)})
	// No registered plugin panics: one is swapped into the running chain (a
	// fault that cannot be caused from config).
	s.gen.Load().plugins[0].p = panicker{}
	if _, err := s.Ping(context.Background(), validCtx()); !errors.Is(err, ErrPanic) {
		t.Fatalf("panicking plugin: %v, want ErrPanic", err)
	}
	if n := s.Stats("ping").Panics.Load(); n != 1 {
		t.Fatalf("ping panics %d, want 1", n)
	}
	s.gen.Load().plugins[0].p = &recorder{name: "after-panics"}
	if _, err := s.Ping(context.Background(), validCtx()); err != nil {
		t.Fatalf("the next call: %v", err)
	}
}

type panicker struct{}

func (panicker) Before(Call) error                { panic("injected") }
func (panicker) After(Call, error, time.Duration) {}
