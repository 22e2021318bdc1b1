package servant

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/pool"
)

func validCtx() *rpc.Context { return &rpc.Context{Rid: 1, Reason: "test"} }

func newTestServant(t *testing.T, cfg Config, opts Options) *FunServant {
	t.Helper()
	if err := cfg.Validate("servants"); err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func baseConfig() Config {
	var c Config
	c.SetDefaults()
	return c
}

// memcacheConfig is a servants.memcache section on a port nothing listens on:
// pools are built without connecting.
func memcacheConfig(timeout time.Duration) *pool.MemcacheConfig {
	var mc pool.MemcacheConfig
	mc.SetDefaults()
	mc.Timeout = timeout
	mc.Servers = []pool.MemcacheServerConfig{{Host: "127.0.0.1", Port: 1, Pool: "default"}}
	return &mc
}

// Every FunServant method but noop goes through the pipeline under a name of
// methodNames, each its own: calling each method once counts one call under
// each name. A method whose name is missing from the table would panic in enter.
func TestMethodNamesCoverEveryMethod(t *testing.T) {
	s := newTestServant(t, baseConfig(), Options{})
	iface := reflect.TypeOf((*rpc.FunServant)(nil)).Elem()
	sv := reflect.ValueOf(s)
	called := 0
	for i := range iface.NumMethod() {
		m := iface.Method(i)
		if m.Name == "Noop" {
			continue
		}
		fn := sv.MethodByName(m.Name)
		args := make([]reflect.Value, fn.Type().NumIn())
		for j := range args {
			switch at := fn.Type().In(j); {
			case at == reflect.TypeOf((*context.Context)(nil)).Elem():
				args[j] = reflect.ValueOf(context.Background())
			case at == reflect.TypeOf(validCtx()):
				args[j] = reflect.ValueOf(validCtx())
			default:
				args[j] = reflect.Zero(at)
			}
		}
		fn.Call(args)
		called++
	}
	total := int64(0)
	for _, name := range methodNames {
		n := s.Stats(name).Calls.Load()
		if n != 1 {
			t.Errorf("method %s: %d calls counted, want 1", name, n)
		}
		total += n
	}
	if called != len(methodNames) || total != int64(called) {
		t.Fatalf("%d methods called, %d names, %d calls counted", called, len(methodNames), total)
	}
}

func TestPipelineOutcomes(t *testing.T) {
	cfg := baseConfig()
	cfg.Lcache = lcacheConfig(10)
	cfg.CallSlowThreshold = 200 * time.Millisecond
	s := newTestServant(t, cfg, Options{Fault: func(method string, c *rpc.Context) {
		switch c.Reason {
		case "panic":
			panic("injected")
		case "slow":
			time.Sleep(250 * time.Millisecond) // longer than the 200ms slow threshold
		}
	}})
	ctx := context.Background()

	if _, err := s.LcGet(ctx, validCtx(), "absent"); !isMiss(err) {
		t.Fatalf("miss: %v", err)
	}
	if _, err := s.LcGet(ctx, &rpc.Context{Rid: 0, Reason: "x"}, "k"); !errors.Is(err, ErrInvalidContext) {
		t.Fatalf("rid 0: %v", err)
	}
	if _, err := s.LcGet(ctx, &rpc.Context{Rid: 1, Reason: "panic"}, "k"); !errors.Is(err, ErrPanic) {
		t.Fatalf("panic: %v", err)
	}
	if _, err := s.LcSet(ctx, &rpc.Context{Rid: 1, Reason: "slow"}, "k", []byte("v")); err != nil {
		t.Fatalf("slow set: %v", err)
	}
	get, set := s.Stats("lc.get"), s.Stats("lc.set")
	for _, c := range []struct {
		what      string
		got, want int64
	}{
		{"lc.get calls", get.Calls.Load(), 3}, {"lc.get misses", get.Misses.Load(), 1},
		{"lc.get errors", get.Errors.Load(), 2}, {"lc.get panics", get.Panics.Load(), 1},
		{"lc.get slow", get.Slow.Load(), 0}, {"lc.set slow", set.Slow.Load(), 1},
		{"lc.set errors", set.Errors.Load(), 0},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.what, c.got, c.want)
		}
	}
	if set.Nanos.Load() < int64(250*time.Millisecond) {
		t.Errorf("lc.set time %v, want ≥ 250ms", time.Duration(set.Nanos.Load()))
	}
}

// A call pins its generation: a Reload during the call swaps in new pools for
// the next calls, and the old pools close only when that call has ended.
func TestReloadClosesOldPoolsAfterLastCall(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	cfg := baseConfig()
	cfg.Memcache = memcacheConfig(50 * time.Millisecond)
	s := newTestServant(t, cfg, Options{Fault: func(method string, c *rpc.Context) {
		if c.Reason == "hold" {
			close(entered)
			<-release
		}
	}})
	old := s.gen.Load()
	done := make(chan error, 1)
	go func() {
		_, err := s.Ping(context.Background(), &rpc.Context{Rid: 1, Reason: "hold"})
		done <- err
	}()
	<-entered

	cfg2 := baseConfig()
	cfg2.Memcache = memcacheConfig(60 * time.Millisecond) // changed: new pools
	if restart, err := s.Reload(cfg2); err != nil || len(restart) != 0 {
		t.Fatalf("reload: %v, restart %v", err, restart)
	}
	g := s.gen.Load()
	if g == old || g.mc == old.mc || g.cfg.Memcache.Timeout != 60*time.Millisecond {
		t.Fatal("reload did not swap in a generation with new memcache pools")
	}
	select {
	case <-old.done:
		t.Fatal("old generation closed under a running call")
	default:
	}
	if old.refs.Load() != 1 {
		t.Fatalf("old generation held by %d calls, want 1", old.refs.Load())
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("call across the reload: %v", err)
	}
	select {
	case <-s.Closed():
	case <-time.After(5 * time.Second):
		t.Fatal("old generation not closed after its last call")
	}

	// An unchanged section keeps its pools.
	if _, err := s.Reload(cfg2); err != nil {
		t.Fatal(err)
	}
	if s.gen.Load().mc != g.mc {
		t.Fatal("unchanged memcache section: pools not reused")
	}
}

func TestReloadReportsRestartKeys(t *testing.T) {
	cfg := baseConfig()
	cfg.Lcache = lcacheConfig(10)
	cfg.Lock = &LockConfig{MaxItems: 10, Expires: time.Second}
	s := newTestServant(t, cfg, Options{})
	cfg2 := baseConfig()
	cfg2.IdgenWorkerID = 7
	cfg2.Lcache = lcacheConfig(20)
	cfg2.Lock = &LockConfig{MaxItems: 20, Expires: 2 * time.Second}
	cfg2.CallSlowThreshold = time.Hour
	restart, err := s.Reload(cfg2)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"servants.idgen_worker_id", "servants.lcache", "servants.lock.max_items"}
	if !reflect.DeepEqual(restart, want) {
		t.Fatalf("restart keys %v, want %v", restart, want)
	}
	g := s.gen.Load()
	if g.cfg.IdgenWorkerID != 1 || g.cfg.Lock.MaxItems != 10 || g.cfg.Lock.Expires != 2*time.Second ||
		g.cfg.CallSlowThreshold != time.Hour {
		t.Fatalf("running settings after reload: %+v, lock %+v", g.cfg, *g.cfg.Lock)
	}
	pong, _ := s.Ping(context.Background(), validCtx())
	if !strings.Contains(pong, "myid:1,") {
		t.Fatalf("ping after reload %q: the worker id must stay until a restart", pong)
	}
}

func TestReloadErrorKeepsGeneration(t *testing.T) {
	s := newTestServant(t, baseConfig(), Options{})
	old := s.gen.Load()
	bad := baseConfig()
	bad.Memcache = memcacheConfig(time.Second)
	bad.Memcache.HashStrategy = "nonsense" // refused by the pool constructor
	if _, err := s.Reload(bad); err == nil {
		t.Fatal("reload of a bad memcache section succeeded")
	}
	if s.gen.Load() != old {
		t.Fatal("a failed reload replaced the generation")
	}
}

func TestCloseFailsNewCalls(t *testing.T) {
	s := newTestServant(t, baseConfig(), Options{})
	s.Close()
	if _, err := s.Ping(context.Background(), validCtx()); !errors.Is(err, ErrClosed) {
		t.Fatalf("ping after Close: %v", err)
	}
	select {
	case <-s.Closed():
	default:
		t.Fatal("Closed not closed after Close with no call in flight")
	}
	if _, err := s.Reload(baseConfig()); !errors.Is(err, ErrClosed) {
		t.Fatalf("reload after Close: %v", err)
	}
}

// Many callers while the generation is swapped many times: no call fails and
// every retired generation is closed once its calls are gone.
func TestReloadUnderCalls(t *testing.T) {
	cfg := baseConfig()
	cfg.Lcache = lcacheConfig(100)
	s := newTestServant(t, cfg, Options{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.LcSet(context.Background(), validCtx(), "k", []byte{byte(w)}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var retired []*generation
	for i := range 50 {
		c := baseConfig()
		c.Lcache = cfg.Lcache
		c.Memcache = memcacheConfig(time.Duration(i+1) * time.Millisecond)
		retired = append(retired, s.gen.Load())
		if _, err := s.Reload(c); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("call during reloads: %v", err)
	}
	for i, g := range retired {
		select {
		case <-g.done:
		case <-time.After(5 * time.Second):
			t.Fatalf("generation %d never closed (%d refs)", i, g.refs.Load())
		}
	}
}

// lcacheConfig is a servants.lcache section of maxItems items and the default byte limits.
func lcacheConfig(maxItems int) *LcacheConfig {
	var c LcacheConfig
	c.SetDefaults()
	c.MaxItems = maxItems
	return &c
}

// The id generator lives in the core: no id repeats across reloads.
func TestIDsUniqueAcrossReloads(t *testing.T) {
	s := newTestServant(t, baseConfig(), Options{})
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 2000 {
				id, err := s.IDNext(context.Background(), validCtx())
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[id] {
					t.Errorf("id %d repeated", id)
				}
				seen[id] = true
				mu.Unlock()
			}
		})
	}
	for i := range 20 {
		c := baseConfig()
		c.Memcache = memcacheConfig(time.Duration(i+1) * time.Millisecond)
		if _, err := s.Reload(c); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if len(seen) != 8000 {
		t.Fatalf("%d distinct ids, want 8000", len(seen))
	}
}
