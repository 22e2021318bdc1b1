package peer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// Timing of the registry. See also SettleDelay (view.go) and LeaveLinger.
const (
	// RetryDelay is the wait before a failed ZooKeeper step (reading the
	// members, registering) is tried again while the session lasts. New in this fae.
	RetryDelay = 500 * time.Millisecond
	// LeaveLinger is how long Leave keeps the znode marked leaving before it
	// deletes it, so that peers read the mark and drop this node at once
	// rather than after the removal delay. New in this fae.
	LeaveLinger = 300 * time.Millisecond
)

// ErrClosed is returned by calls on a closed Registry.
var ErrClosed = errors.New("peer: registry closed")

// IDConflictError says that this node does not register because a live
// member already holds its idgen_worker_id: two nodes issuing ids with the
// same worker id could issue the same id. id_next answers it until fixed.
// The registry tries again on every membership change. When two nodes with
// one worker id register at once, the later znode (higher creation zxid)
// steps back, so exactly one stays.
type IDConflictError struct {
	WorkerID int    // the contested idgen_worker_id
	Self     string // this node's advertised address
	Holder   string // the live member holding WorkerID
}

func (e *IDConflictError) Error() string {
	return fmt.Sprintf("idgen_worker_id %d of this node %s is already held by live member %s: "+
		"not registered in the cluster until one of them changes servants.idgen_worker_id (0..%d)",
		e.WorkerID, e.Self, e.Holder, MaxWorkerID)
}

// Registry is this node's ZooKeeper session: its registration under
// Config.Root, the membership it discovers there, and the zk_* passthrough.
// It is safe for concurrent use.
//
// The membership is kept in memory and changes only through what the one
// children watch on the root reports: while ZooKeeper is unreachable it stays
// the last one seen, never empty. A member seen joining is applied after
// SettleDelay; one seen gone is dropped after the session timeout (so a
// ZooKeeper blip moves no keys), one marked leaving at once. Every ZooKeeper
// operation is bounded by the session timeout (and the caller's context).
//
// go-zookeeper opens a new session after an expiry but re-creates nothing:
// on every new session the registry re-arms its watch and re-registers.
type Registry struct {
	cfg     Config
	servers []string
	dial    zk.Dialer
	log     *slog.Logger

	conn       atomic.Pointer[zk.Conn] // the current client (replaced by restartClient)
	gen        atomic.Int64            // the current client's generation; events of older ones are ignored
	handshakes atomic.Int64            // the current client's TCP connections since its last session

	ctx       context.Context // ends with Close: bounds every operation
	cancel    context.CancelFunc
	kick      chan struct{}           // cap 1: something for the loop to look at
	cmds      chan func()             // run by the loop, between reads
	done      chan struct{}           // closed when the loop returns
	connects  atomic.Int64            // sessions (re)established, counted by onEvent
	epoch     atomic.Int64            // membership changes published (Epoch)
	lastEvent atomic.Pointer[ZKEvent] // the current client's last event (LastEvent)
	closing   sync.Once

	mu         sync.Mutex // guards the fields below
	members    []Member
	published  bool // members has been published once: the membership is known
	foreign    []Foreign
	conflict   error
	registered bool
	want       *registration // set by Register; nil = do not register (a proxy-only node)
	leaving    bool          // Leave began: never register again
	idKept     bool          // registered when Leave began: it issues ids while it drains (IDReady)
	closed     bool
	subs       map[*subscriber]struct{}

	loopState // owned by the loop goroutine
}

// New starts a Registry on the ZooKeeper servers (etcd_servers, host:port
// each) with cfg. It returns at once: the session is
// established in the background and tried again until ZooKeeper answers, so
// a node starts whether ZooKeeper is up or not. log nil = slog.Default().
// Errors: no servers, a malformed server address, an invalid cfg.
func New(servers []string, cfg Config, log *slog.Logger) (*Registry, error) {
	return newRegistry(servers, cfg, log, net.DialTimeout)
}

func newRegistry(servers []string, cfg Config, log *slog.Logger, dial zk.Dialer) (*Registry, error) {
	if len(servers) == 0 {
		return nil, errors.New("peer: no ZooKeeper servers (etcd_servers is empty)")
	}
	if err := cfg.Validate("peer"); err != nil {
		return nil, fmt.Errorf("peer: %w", err)
	}
	if err := ValidateServers("etcd_servers", servers); err != nil {
		return nil, fmt.Errorf("peer: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	r := &Registry{cfg: cfg, servers: append([]string(nil), servers...), dial: dial, log: log.With("component", "peer"), kick: make(chan struct{}, 1),
		cmds: make(chan func()), done: make(chan struct{}), subs: map[*subscriber]struct{}{}}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.loopState = loopState{view: newView(cfg.SessionTimeout), waitingLog: time.Now().Add(cfg.SessionTimeout),
		lastSession: time.Now()}
	if err := r.connect(); err != nil {
		return nil, err
	}
	go r.loop()
	return r, nil
}

// connect starts a new go-zookeeper client; it connects in the background.
func (r *Registry) connect() error {
	gen := r.gen.Add(1)
	conn, _, err := zk.Connect(r.servers, r.cfg.SessionTimeout,
		zk.WithHostProvider(&hostList{}), // resolves names at each dial: start without DNS too
		zk.WithDialer(r.dial), zk.WithEventCallback(func(ev zk.Event) { r.onEvent(gen, ev) }),
		zk.WithLogger(zkLogger{r.log}), zk.WithLogInfo(false))
	if err != nil {
		return fmt.Errorf("peer: %w", err)
	}
	r.handshakes.Store(0)
	r.conn.Store(conn)
	return nil
}

// client is the current go-zookeeper client.
func (r *Registry) client() *zk.Conn { return r.conn.Load() }

// Register asks for this node's registration as <root>/<addr> with info
// (Impl and Format are filled in). It returns at once: the registry
// registers whenever it has a session, and again on every new session.
// Calling it again replaces the record. addr is the advertised TCP host:port
// (AdvertiseAddr). Errors: a malformed addr or info, a closed registry.
func (r *Registry) Register(info MemberInfo, addr string) error {
	if err := validateAddr(addr); err != nil {
		return fmt.Errorf("peer: register: advertised address: %v", err)
	}
	if err := info.validate(); err != nil {
		return fmt.Errorf("peer: register %s: %v", addr, err)
	}
	info.Impl, info.Format, info.Leaving = Impl, Format, false
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed || r.ctx.Err() != nil:
		return ErrClosed
	case r.leaving:
		return fmt.Errorf("peer: register %s: the node is leaving: %w", addr, ErrClosed)
	}
	r.want = &registration{addr: addr, path: r.cfg.Root + "/" + addr, info: info}
	r.poke()
	return nil
}

// registration is what Register asked for (nil = nothing) and whether Leave began.
func (r *Registry) registration() (*registration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.want, r.leaving
}

// Members is the current membership, sorted by address (this node included
// once it is registered and seen). Empty before the first read of ZooKeeper.
func (r *Registry) Members() []Member {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Member(nil), r.members...)
}

// Foreign lists the children of the root that are not members (not this
// implementation's record), sorted by name, as of the last read.
func (r *Registry) Foreign() []Foreign {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Foreign(nil), r.foreign...)
}

// ErrIDUnconfirmed is IDReady's error while this node is not registered.
var ErrIDUnconfirmed = errors.New("this node's idgen_worker_id is not confirmed in ZooKeeper " +
	"(not registered yet: ZooKeeper unreachable, or its session expired and it is registering again): " +
	"id_next is refused until it is, so that no two nodes issue the same ids")

// IDReady is nil when a node that registers may issue ids with its
// idgen_worker_id: it is registered in the current ZooKeeper session, which
// it is only while no live member holds that worker id. Else the
// *IDConflictError, or ErrIDUnconfirmed: before the first registration
// (ZooKeeper down at start: a node with a contested worker id issued
// duplicates then, found by a cluster review) and from the expiry of its
// session (a node frozen past it, whose worker id another node may have
// taken meanwhile) until it has registered again. A node that was
// registered when it began to leave (SIGTERM: Leave) keeps issuing ids while
// it drains: its calls in flight are answered.
func (r *Registry) IDReady() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.conflict != nil:
		return r.conflict
	case r.registered, r.idKept:
		return nil
	}
	return ErrIDUnconfirmed
}

// Conflict is the *IDConflictError that keeps this node from registering,
// or nil.
func (r *Registry) Conflict() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conflict
}

// Registered reports whether this node's znode exists in the current
// session with the record asked for, as of the last read.
func (r *Registry) Registered() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.registered
}

// Subscribe calls fn with the membership (sorted by address) once it is known
// (now, or after the first read of ZooKeeper) and after
// every change, from a goroutine of its own, one call at a time. A slow fn
// never blocks the registry: changes that come meanwhile are folded into the
// latest. cancel stops the calls (one in progress finishes); Close also does.
func (r *Registry) Subscribe(fn func([]Member)) (cancel func()) {
	s := &subscriber{ch: make(chan []Member, 1)}
	go func() {
		for ms := range s.ch {
			fn(ms)
		}
	}()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		close(s.ch)
		return func() {}
	}
	r.subs[s] = struct{}{}
	if r.published { // else the first publish sends it: no empty membership before ZooKeeper was read
		s.send(append([]Member(nil), r.members...))
	}
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if _, ok := r.subs[s]; ok {
			delete(r.subs, s)
			close(s.ch)
		}
	}
}

type subscriber struct{ ch chan []Member }

// send replaces an undelivered value by ms; never blocks (the one sender holds r.mu).
func (s *subscriber) send(ms []Member) {
	select {
	case <-s.ch:
	default:
	}
	s.ch <- ms
}

// Leave takes this node out of the cluster on purpose: it marks its znode
// leaving (peers drop it at once), waits LeaveLinger so they read the mark,
// deletes the znode and closes the registry. ctx bounds the whole; the
// registry is closed in every case. Errors: the ZooKeeper steps that failed.
func (r *Registry) Leave(ctx context.Context) error {
	r.mu.Lock()
	r.leaving = true
	r.idKept = r.registered
	r.mu.Unlock()
	var marked bool
	err := r.exec(ctx, func() error {
		var err error
		marked, err = r.markLeaving(ctx)
		return err
	})
	if marked {
		select {
		case <-time.After(LeaveLinger):
		case <-ctx.Done():
		}
	}
	if err == nil || marked {
		err = errors.Join(err, r.exec(ctx, func() error { return r.deleteOwn(ctx) }))
	}
	r.Close()
	return err
}

// Close ends the session (ZooKeeper deletes the ephemeral znode at once),
// stops the subscribers and fails later calls with ErrClosed. Bounded: a
// few seconds at most when ZooKeeper does not answer. Safe to call more than once.
func (r *Registry) Close() error {
	r.closing.Do(func() {
		r.cancel()
		<-r.done
		r.client().Close()
		r.mu.Lock()
		r.closed = true
		for s := range r.subs {
			close(s.ch)
		}
		r.subs = nil
		r.mu.Unlock()
		r.log.Info("left ZooKeeper")
	})
	return nil
}

// exec runs fn on the loop goroutine and returns its error; ctx bounds the
// wait for the loop to take it.
func (r *Registry) exec(ctx context.Context, fn func() error) error {
	if r.ctx.Err() != nil {
		return ErrClosed
	}
	res := make(chan error, 1)
	select {
	case r.cmds <- func() { res <- fn() }:
	case <-r.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-res
}

// onEvent is go-zookeeper's event callback for the client of generation
// gen: it must not block.
func (r *Registry) onEvent(gen int64, ev zk.Event) {
	if gen != r.gen.Load() {
		return // a replaced client
	}
	r.noteEvent(ev)
	switch {
	case ev.Type != zk.EventSession:
	case ev.State == zk.StateConnected: // TCP connected, handshake next
		r.handshakes.Add(1)
	case ev.State == zk.StateHasSession:
		r.handshakes.Store(0)
		r.connects.Add(1)
	case ev.State == zk.StateExpired:
		r.setRegistered(false) // at once, not at the loop's next read: see IDReady
	}
	r.poke()
}

// poke wakes the loop up; never blocks.
func (r *Registry) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// publish hands the applied membership to Members and the subscribers, and
// logs what changed.
func (r *Registry) publish() {
	ms := r.view.members()
	r.mu.Lock()
	old := r.members
	r.members = ms
	r.published = true
	r.epoch.Add(1)
	for s := range r.subs {
		s.send(ms)
	}
	r.mu.Unlock()
	was := make(map[string]bool, len(old))
	for _, m := range old {
		was[m.Addr] = true
	}
	added := []string{}
	for _, m := range ms {
		if !was[m.Addr] {
			added = append(added, m.Addr)
		}
		delete(was, m.Addr)
	}
	removed := make([]string, 0, len(was))
	for addr := range was {
		removed = append(removed, addr)
	}
	sort.Strings(removed)
	r.log.Info("cluster membership changed", "members", len(ms), "added", added, "removed", removed)
}

func (r *Registry) setConflict(err error) {
	r.mu.Lock()
	old := r.conflict
	r.conflict = err
	r.mu.Unlock()
	switch {
	case err != nil && (old == nil || old.Error() != err.Error()):
		r.log.Error("not registering", "err", err)
	case err == nil && old != nil:
		r.log.Info("idgen_worker_id conflict resolved")
	}
}

func (r *Registry) setRegistered(ok bool) {
	r.mu.Lock()
	r.registered = ok
	r.mu.Unlock()
}

// zkLogger sends go-zookeeper's own lines (one per failed dial, every
// second while ZooKeeper is away) to debug level; the registry logs the
// state changes that matter itself.
type zkLogger struct{ log *slog.Logger }

func (l zkLogger) Printf(format string, args ...any) {
	l.log.Debug("zk: " + fmt.Sprintf(format, args...))
}
