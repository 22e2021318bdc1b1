// Package servant implements FunServant, the one Thrift service of faed.
package servant

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/cache"
	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/peer"
	"github.com/fae-go/fae/pool"
	"github.com/fae-go/fae/proxy"
)

// Options are what a FunServant needs besides its config.
type Options struct {
	Version string       // release version, shown by ping
	BuildID string       // build id (git commit), shown by ping
	Logger  *slog.Logger // nil = slog.Default()
	// CallLogger receives the per-call warnings and errors (slow call, panic,
	// query-cache failure, lock takeover): the process's one throttled stream.
	// Nil = Logger.
	CallLogger *slog.Logger
	// ZooKeeper reports whether etcd_servers is set; zk_* methods need it.
	ZooKeeper bool
	// Self is this node's advertised address (host:port), its name on the
	// cluster's ring; "" when it is not a member (server_mode false: it
	// forwards every keyed call).
	Self string
	// ZK runs zk_* on the node's ZooKeeper session; nil without etcd_servers.
	ZK ZooKeeper
	// IDConflict, when set and returning an error, stops id_next: another live
	// member holds this node's idgen_worker_id (peer.Registry.Conflict).
	IDConflict func() error
	// TraceLogger receives the trace stream (see trace.go): every call of a
	// traced rid and every slow call, one Info record each with its method,
	// rid, reason, uid, elapsed_ms, since_first_ms, slow, err and args. Its
	// level is not the log's: profiler_rate decides the volume. Nil = Logger.
	TraceLogger *slog.Logger
	// Fault, when set, is called at the start of every call's work, inside the
	// call pipeline. Tests use it to cause faults they cannot cause for real (a
	// panic); production leaves it nil.
	Fault func(method string, c *rpc.Context)
}

// FunServant implements rpc.FunServant. It is the servant's long-lived core —
// the id generator, the lcache, the lock table, the per-method figures and the
// backend observer, which live as long as the process — and a current
// generation (see generation.go): the backend pools and every setting that may
// change at reload, swapped whole by Reload. Every method but noop goes through
// one call pipeline (enter/leave) that pins one generation for the whole call:
// context check, counters, panic recovery, slow-call log. Safe for concurrent use.
type FunServant struct {
	opts    Options
	log     *slog.Logger // opts.CallLogger: every line here is a call's
	started time.Time
	stats   map[string]*MethodStats // fixed at New; read-only after

	idgen  *IDGen
	lcache *cache.LRU[[]byte]
	locks  *lockTable
	// Backends counts every backend operation (the pool.Observer of every
	// generation's pools), so backend figures survive reloads.
	Backends   *pool.Counters
	QueryCache QueryCacheStats
	Cluster    ClusterStats
	Lcache     LcacheStats

	proxies      *proxy.Proxies // pooled clients to peers (servants.proxy; restart-only)
	members      []peer.Member  // the membership the ring is built from; guarded by reload
	membersKnown bool           // SetMembers was called: route by the ring

	trace      *slog.Logger  // opts.TraceLogger
	rids       *ridSessions  // the rids' first calls (servants.session_max_items; restart-only)
	reasons    *reasonCounts // calls by normalised reason
	traced     atomic.Int64  // calls written to the trace stream for their rid
	tracedSlow atomic.Int64  // calls written to the trace stream for being slow

	pluginMu sync.Mutex               // guards plugins
	plugins  map[string]*PluginCounts // by name, every plugin ever configured (bounded by the registry)

	gen      atomic.Pointer[generation]
	reload   sync.Mutex    // serialises Reload and Close
	boot     Config        // the config the core was built from (restart-only keys)
	lastDone chan struct{} // the done channel of the last generation retired; guarded by reload
}

var _ rpc.FunServant = (*FunServant)(nil)

// MethodStats are the counters of one method, read and written atomically.
type MethodStats struct {
	Calls  atomic.Int64 // calls started
	Errors atomic.Int64 // calls that failed (declared exceptions such as a cache miss not counted)
	Misses atomic.Int64 // calls answered "absent" (TCacheMissed, TMongoNotFound); a pool mode's refusal is an error
	Panics atomic.Int64 // calls that panicked
	Gone   atomic.Int64 // calls abandoned because the client disconnected (also in Errors)
	Slow   atomic.Int64 // calls slower than call_slow_threshold
	Nanos  atomic.Int64 // total time in the method, ns

	latency atomic.Pointer[latencyBox] // set by ObserveLatency; nil = none
}

// New returns a FunServant for cfg, which must have passed Validate. It builds
// the pools of every configured backend (connections are opened lazily); an
// error names the section that could not be built. Close releases them.
func New(cfg Config, opts Options) (*FunServant, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.CallLogger == nil {
		opts.CallLogger = opts.Logger
	}
	if opts.TraceLogger == nil {
		opts.TraceLogger = opts.Logger
	}
	s := &FunServant{opts: opts, log: opts.CallLogger, started: time.Now(), stats: map[string]*MethodStats{},
		Backends: pool.NewCounters(), boot: cfg}
	for _, m := range methodNames {
		s.stats[m] = new(MethodStats)
	}
	s.idgen = NewIDGen(int64(cfg.IdgenWorkerID))
	s.trace = opts.TraceLogger
	s.reasons = newReasonCounts()
	s.rids = newRidSessions(cfg.SessionMaxItems)
	if cfg.Lcache != nil {
		s.lcache = cache.New(cfg.Lcache.MaxItems, cfg.Lcache.MaxBytes, func(_ string, v []byte) int64 { return int64(cap(v)) })
	}
	if cfg.Lock != nil {
		s.locks = newLockTable(cfg.Lock.MaxItems, cfg.Lock.MaxBytes)
	}
	pc := cfg.Proxy
	if pc == nil {
		pc = new(proxy.Config)
		pc.SetDefaults()
	}
	s.proxies = proxy.New(*pc, s.Backends)
	g, err := s.build(cfg, nil)
	if err != nil {
		s.proxies.Close()
		return nil, err
	}
	s.gen.Store(g)
	return s, nil
}

// Close retires the current generation: calls that start after Close fail
// with ErrClosed, and the pools are closed when the last call in flight has
// ended (Closed says when). Calling it again does nothing.
func (s *FunServant) Close() {
	s.reload.Lock()
	defer s.reload.Unlock()
	old := s.gen.Load()
	if old.closed {
		return
	}
	s.gen.Store(&generation{cfg: old.cfg, closed: true, done: closedChan})
	old.retire(nil)
	s.lastDone = old.done
	go func() { // the peers' pools close after the last call, as the backends' do
		<-old.done
		s.proxies.Close()
	}()
}

// Closed returns a channel closed once the generation last replaced (by
// Reload or Close) has closed its pools, that is once its last call has
// ended; after Close, once every pool is closed. Nil before any replacement.
func (s *FunServant) Closed() <-chan struct{} {
	s.reload.Lock()
	defer s.reload.Unlock()
	return s.lastDone
}

// methodNames are the call names used in stats and logs (the original's names).
var methodNames = []string{
	"ping", "zk.create", "zk.children", "zk.del", "lock", "unlock",
	"id.next", "id.nextag", "id.decode", "lc.set", "lc.get", "lc.del", "rd.call",
	"mc.set", "mc.get", "mc.add", "mc.del", "mc.inc",
	"mg.findOne", "mg.findAll", "mg.findId", "mg.count", "mg.update", "mg.updateId", "mg.upsert",
	"mg.upsertId", "mg.insert", "mg.inserts", "mg.del", "mg.findAndModify",
	"my.bexec", "my.query", "my.qshards", "my.merge", "my.evict",
}

// Stats returns the counters of the method called name (e.g. "lc.get"), nil if unknown.
func (s *FunServant) Stats(name string) *MethodStats { return s.stats[name] }

// run is the call pipeline of every method but noop: enter (pin the current
// generation, count, check the Context unless checkCtx is false, note the
// rid, run the plugins' Before), body with that generation, leave (recover a
// panic, count the outcome and latency, log a slow call, trace, run the
// plugins' After, unpin). ctx is the call's (the engine session's, for the
// client's address). args formats the call's
// arguments for the trace stream, called only for a call traced or slow (nil
// = none). Neither closure escapes, so they cost no allocation.
func run[T any](s *FunServant, ctx context.Context, name string, c *rpc.Context, checkCtx bool, args func() string, body func(g *generation) (T, error)) (r T, err error) {
	cl, err := s.enter(ctx, name, c, checkCtx)
	if err != nil {
		return r, err
	}
	defer s.leave(cl, &err, args)
	if s.opts.Fault != nil {
		s.opts.Fault(name, c)
	}
	return body(cl.g)
}

// runBackend is run for a method that waits on a backend: its body gets a ctx
// that ends when the client disconnects (engine.WatchClient, armed only for
// these calls so that ping and the local methods pay nothing), and a call
// whose client has gone is abandoned: the backend saw the cancellation (the
// MySQL statement is killed), and no reply is written to nobody.
func runBackend[T any](s *FunServant, name string, ctx context.Context, c *rpc.Context, args func() string, body func(context.Context, *generation) (T, error)) (T, error) {
	return run(s, ctx, name, c, true, args, func(g *generation) (T, error) {
		return watched(ctx, name, g, body)
	})
}

// watched runs body with a ctx that ends when the client of ctx's session
// disconnects (see runBackend); name is the method, for the abandon error.
func watched[T any](ctx context.Context, name string, g *generation, body func(context.Context, *generation) (T, error)) (T, error) {
	wctx, stop := engine.WatchClient(ctx)
	r, err := body(wctx, g)
	stop()
	if err != nil && errors.Is(context.Cause(wctx), engine.ErrClientGone) {
		return r, fmt.Errorf("%w: %s: %w", thrift.ErrAbandonRequest, name, engine.ErrClientGone)
	}
	return r, err
}

// call is one call in flight, between enter and leave.
type call struct {
	name  string
	c     *rpc.Context
	start time.Time
	// noted: the Context was checked and the rid's call noted (ridSessions),
	// sinceFirst the time since the rid's first call then (ms resolution).
	noted      bool
	sinceFirst time.Duration
	stats      *MethodStats
	g          *generation // pinned from enter to leave
	pc         pluginCall  // set when g has plugins (plugin_run.go)
}

// enter starts a call: it pins the generation, counts the call, checks its
// Context (unless checkCtx is false) and, for a checked call, runs the
// generation's plugins. On error nothing stays pinned.
func (s *FunServant) enter(ctx context.Context, name string, c *rpc.Context, checkCtx bool) (call, error) {
	cl := call{name: name, c: c, start: time.Now(), stats: s.stats[name]}
	cl.stats.Calls.Add(1)
	if checkCtx {
		if err := checkContext(c); err != nil {
			cl.stats.Errors.Add(1)
			return cl, err
		}
		cl.noted, cl.sinceFirst = true, s.rids.touch(c.Rid, cl.start)
		s.reasons.add(c.Reason, c.Rid)
	}
	cl.g = s.pin()
	if cl.g.closed {
		cl.g.unpin()
		cl.stats.Errors.Add(1)
		return cl, ErrClosed
	}
	if len(cl.g.plugins) > 0 && checkCtx {
		if err := s.pluginsBefore(ctx, &cl); err != nil {
			cl.g.unpin()
			cl.stats.Errors.Add(1)
			return cl, err
		}
	}
	return cl, nil
}

func checkContext(c *rpc.Context) error {
	switch {
	case c == nil:
		return fmt.Errorf("%w: no Context given", ErrInvalidContext)
	case c.Rid == 0:
		return fmt.Errorf("%w: rid is 0", ErrInvalidContext)
	case c.Reason == "":
		return fmt.Errorf("%w: reason is empty", ErrInvalidContext)
	}
	return nil
}

// leave ends a call; it must be deferred directly, as `defer s.leave(cl, &err, args)`,
// so that it recovers a panic of the method: the panic is logged with its stack,
// counted, and the call fails with ErrPanic while the session goes on.
func (s *FunServant) leave(cl call, err *error, args func() string) {
	defer cl.g.unpin()
	if r := recover(); r != nil {
		cl.stats.Panics.Add(1)
		s.log.Error("call panicked", "method", cl.name, "panic", r, "rid", rid(cl.c), "stack", string(debug.Stack()))
		*err = fmt.Errorf("%w: %s", ErrPanic, cl.name)
	}
	elapsed := time.Since(cl.start)
	cl.stats.Nanos.Add(int64(elapsed))
	if b := cl.stats.latency.Load(); b != nil {
		b.o.Observe(elapsed.Seconds())
	}
	if *err != nil {
		switch {
		case isMiss(*err):
			cl.stats.Misses.Add(1)
		case errors.Is(*err, thrift.ErrAbandonRequest):
			cl.stats.Gone.Add(1)
			cl.stats.Errors.Add(1)
		default:
			cl.stats.Errors.Add(1)
		}
	}
	cfg := &cl.g.cfg
	slow := cfg.CallSlowThreshold > 0 && elapsed > cfg.CallSlowThreshold
	if slow {
		cl.stats.Slow.Add(1)
		s.log.Warn("slow call", "method", cl.name, "elapsed", elapsed, "rid", rid(cl.c), "reason", reason(cl.c))
	}
	if slow || (cl.noted && Traced(cl.c.Rid, cfg.ProfilerRate)) {
		s.traceCall(&cl, elapsed, slow, cfg.ProfilerMaxBodySize, *err, args)
	}
	if cl.pc.ran > 0 {
		s.pluginsAfter(&cl, *err, elapsed)
	}
}

// isMiss reports whether err is a declared exception that answers "absent"
// (TCacheMissed, TMongoNotFound): counted in Misses, not Errors. A pool
// mode's TMongoDegrade and TMongoReadOnly are refusals: Errors.
func isMiss(err error) bool {
	switch err.(type) {
	case *rpc.TCacheMissed, *rpc.TMongoNotFound:
		return true
	}
	return false
}

func rid(c *rpc.Context) int64 {
	if c == nil {
		return 0
	}
	return c.Rid
}

func reason(c *rpc.Context) string {
	if c == nil {
		return ""
	}
	return c.Reason
}

// Noop returns x: no Context, no stats, for raw throughput tests (original fae).
func (s *FunServant) Noop(_ context.Context, x int32) (int32, error) { return x, nil }

// Ping returns "ver:<version>, build:<build id>, myid:<worker id>, uptime:<duration>".
func (s *FunServant) Ping(ctx context.Context, c *rpc.Context) (string, error) {
	return run(s, ctx, "ping", c, true, nil, func(*generation) (string, error) {
		// Appended, not fmt.Sprintf: ping is the call of a php-fpm
		// session's health check, and Sprintf was 2 % of a session's CPU.
		b := make([]byte, 0, 96)
		b = append(append(b, "ver:"...), s.opts.Version...)
		b = append(append(b, ", build:"...), s.opts.BuildID...)
		b = strconv.AppendInt(append(b, ", myid:"...), int64(s.boot.IdgenWorkerID), 10)
		b = append(append(b, ", uptime:"...), time.Since(s.started).Round(time.Millisecond).String()...)
		return string(b), nil
	})
}
