package peer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	"golang.org/x/sync/errgroup"
)

// refusedHandshakes is how many TCP connections in a row without a session,
// over at least two session timeouts, make the registry start over with a
// new client. ZooKeeper refuses the handshake of a client that saw a later
// zxid than its own (a ZooKeeper that lost its data), and go-zookeeper keeps
// that zxid until a session expires, which then never happens.
const refusedHandshakes = 3

// readParallel bounds the concurrent reads of the children's records: a
// membership change costs each node one read per member (ZooKeeper has no
// batched read, and a children watch does not tell which record changed).
const readParallel = 16

// registration is what Register asked for.
type registration struct {
	addr, path string
	info       MemberInfo
}

// loopState is the registry's state owned by its loop goroutine.
type loopState struct {
	view        *view
	lastWant    *registration // the registration the last read worked for
	dirty       bool          // ZooKeeper must be read again
	retryAt     time.Time     // a failed read waits until then
	synced      int64         // connects at the last complete read
	watch       <-chan zk.Event
	watchConn   int64     // connects when watch was armed
	rootSession int64     // the session in which the root was made sure of
	ownSession  int64     // the session that created this node's znode; 0 = none
	session     int64     // the session last seen, for the log
	connected   bool      // whether the last look found a session, for the log
	waitingLog  time.Time // when to say that no session came yet; zero = said or not needed
	lastSession time.Time // when the last look found a session (or the start)
	lastErr     string
	foreignSeen map[string]string // reported foreign children → reason
}

func (r *Registry) loop() {
	defer close(r.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		r.step()
		if r.view.apply(time.Now()) {
			r.publish()
		}
		var wake <-chan time.Time
		if at := r.nextWake(); !at.IsZero() {
			timer.Reset(time.Until(at))
			wake = timer.C
		}
		select {
		case <-r.ctx.Done():
			return
		case <-r.kick:
		case fn := <-r.cmds:
			fn()
		case ev := <-r.watch:
			r.watch, r.dirty = nil, true
			r.log.Debug("children watch fired", "type", ev.Type.String(), "err", ev.Err)
		case <-wake:
		}
	}
}

func (r *Registry) nextWake() time.Time {
	at := r.view.next()
	for _, t := range []time.Time{r.retryAt, r.waitingLog} {
		if !t.IsZero() && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	return at
}

// step reads ZooKeeper (and registers) when there is a session and something
// to look at: a new connection, a fired watch, a new registration, a retry.
func (r *Registry) step() {
	if !r.noteState() {
		if r.handshakes.Load() >= refusedHandshakes && time.Since(r.lastSession) > 2*r.cfg.SessionTimeout {
			r.restartClient()
		}
		return
	}
	n := r.connects.Load()
	if w, _ := r.registration(); n != r.synced || w != r.lastWant {
		r.dirty, r.lastWant = true, w
	}
	if !r.dirty || time.Now().Before(r.retryAt) {
		return
	}
	r.dirty = false
	if err := r.sync(r.client().SessionID(), n); err != nil {
		r.dirty, r.retryAt = true, time.Now().Add(RetryDelay)
		if r.ctx.Err() != nil {
			return // closing
		}
		if msg := err.Error(); msg != r.lastErr {
			r.lastErr = msg
			r.log.Warn("ZooKeeper step failed; retrying", "err", err, "every", RetryDelay)
		}
		return
	}
	r.synced, r.retryAt, r.lastErr = n, time.Time{}, ""
}

// noteState logs session changes and reports whether there is a session.
func (r *Registry) noteState() bool {
	has := r.client().State() == zk.StateHasSession
	sid := r.client().SessionID()
	switch {
	case has && sid != r.session && r.session != 0:
		r.log.Warn("new ZooKeeper session (the previous one is gone: expired, or lost by ZooKeeper): registering again and re-arming the watch",
			"session", fmt.Sprintf("0x%x", sid), "previous", fmt.Sprintf("0x%x", r.session))
	case has && sid != r.session:
		r.log.Info("ZooKeeper session established", "session", fmt.Sprintf("0x%x", sid), "server", r.client().Server())
	case has && !r.connected:
		r.log.Info("ZooKeeper connection back, same session", "session", fmt.Sprintf("0x%x", sid))
	case !has && r.connected:
		r.log.Warn("ZooKeeper connection lost: keeping the last membership", "members", len(r.view.applied))
	case !has && r.session == 0 && !r.waitingLog.IsZero() && !time.Now().Before(r.waitingLog):
		r.log.Warn("no ZooKeeper session yet: no cluster until ZooKeeper answers; still trying",
			"servers", r.servers, "waited", r.cfg.SessionTimeout)
		r.waitingLog = time.Time{}
	}
	if has {
		r.session, r.waitingLog, r.lastSession = sid, time.Time{}, time.Now()
	}
	r.connected = has
	return has
}

// restartClient replaces a client whose handshakes ZooKeeper keeps refusing
// by a new one (no session, no zxid seen); the old one is closed.
func (r *Registry) restartClient() {
	old := r.client()
	r.log.Warn("ZooKeeper accepts connections but no session for this client "+
		"(it refuses a client that saw a later zxid: did ZooKeeper lose its data?): starting a new client",
		"handshakes", r.handshakes.Load(), "since", time.Since(r.lastSession).Round(time.Millisecond))
	if err := r.connect(); err != nil {
		r.log.Error("restarting the ZooKeeper client", "err", err)
		return
	}
	r.watch, r.lastSession = nil, time.Now()
	go old.Close()
}

// sync reads the root's children and their records, registers this node if
// it must, and hands the members to the view. Nothing changes in the view
// unless the whole read succeeds.
func (r *Registry) sync(sid, conns int64) error {
	if r.rootSession != sid {
		if err := r.ensurePath(r.ctx, r.cfg.Root); err != nil {
			return err
		}
		r.rootSession = sid
	}
	names, err := r.readChildren(conns)
	if err != nil {
		return err
	}
	children, err := r.readRecords(names)
	if err != nil {
		return err
	}
	members := map[string]seen{}
	var foreign []Foreign
	for name, c := range children {
		if c.reason != "" {
			foreign = append(foreign, Foreign{Addr: name, Reason: c.reason})
		} else {
			members[name] = c
		}
	}
	r.noteForeign(foreign)
	var regErr error
	if w, leaving := r.registration(); w != nil && !leaving {
		regErr = r.register(w, sid, children)
	}
	if r.view.observe(members, time.Now()) {
		r.publish()
	}
	return regErr
}

// readChildren lists the root, arming the children watch when there is none
// for this connection (go-zookeeper re-arms watches after a reconnect, but a
// failure there is only logged: arming again is cheap and sure).
func (r *Registry) readChildren(conns int64) ([]string, error) {
	root := r.cfg.Root
	if r.watch != nil && r.watchConn == conns {
		names, err := call(r.ctx, r.cfg.SessionTimeout, func() ([]string, error) {
			names, _, err := r.client().Children(root)
			return names, err
		})
		return names, wrap("children", root, err)
	}
	type armed struct {
		names []string
		ch    <-chan zk.Event
	}
	a, err := call(r.ctx, r.cfg.SessionTimeout, func() (armed, error) {
		names, _, ch, err := r.client().ChildrenW(root)
		return armed{names, ch}, err
	})
	if err != nil {
		return nil, wrap("children", root, err)
	}
	r.watch, r.watchConn = a.ch, conns
	return a.names, nil
}

// readRecords reads every child's data and stat. A child deleted meanwhile
// is left out; one this client may not read (its ACL) is foreign.
func (r *Registry) readRecords(names []string) (map[string]seen, error) {
	var mu sync.Mutex
	out := make(map[string]seen, len(names))
	g, ctx := errgroup.WithContext(r.ctx)
	g.SetLimit(readParallel)
	for _, name := range names {
		g.Go(func() error {
			s, err := r.readRecord(ctx, name)
			switch {
			case errors.Is(err, zk.ErrNoNode):
				return nil
			case errors.Is(err, zk.ErrNoAuth):
				s, err = seen{reason: "unreadable: " + err.Error()}, nil
			}
			mu.Lock()
			out[name] = s
			mu.Unlock()
			return err
		})
	}
	return out, g.Wait()
}

func (r *Registry) readRecord(ctx context.Context, name string) (seen, error) {
	path := r.cfg.Root + "/" + name
	type got struct {
		data []byte
		stat *zk.Stat
	}
	v, err := call(ctx, r.cfg.SessionTimeout, func() (got, error) {
		data, stat, err := r.client().Get(path)
		return got{data, stat}, err
	})
	if err != nil {
		return seen{}, wrap("get", path, err)
	}
	info, reason := decodeMember(name, v.data)
	return seen{info: info, raw: v.data, czxid: v.stat.Czxid, version: v.stat.Version,
		owner: v.stat.EphemeralOwner, reason: reason}, nil
}

// noteForeign keeps the foreign children and logs each one once per reason.
func (r *Registry) noteForeign(foreign []Foreign) {
	sort.Slice(foreign, func(i, j int) bool { return foreign[i].Addr < foreign[j].Addr })
	now := make(map[string]string, len(foreign))
	for _, f := range foreign {
		now[f.Addr] = f.Reason
		if r.foreignSeen[f.Addr] != f.Reason {
			r.log.Warn("ignoring a child of the root that is not a member", "path", r.cfg.Root+"/"+f.Addr, "reason", f.Reason)
		}
	}
	r.foreignSeen = now
	r.mu.Lock()
	r.foreign = foreign
	r.mu.Unlock()
}

// register makes this node's znode exist in session sid with the record
// asked for, unless a live member holds its idgen_worker_id.
func (r *Registry) register(w *registration, sid int64, children map[string]seen) error {
	data := w.info.encode()
	own, present := children[w.addr]
	mine := present && own.owner == sid
	if holder := conflictHolder(w, own, mine, children); holder != "" {
		r.setConflict(&IDConflictError{WorkerID: w.info.IdgenWorkerID, Self: w.addr, Holder: holder})
		r.setRegistered(false)
		if mine { // both registered at once: the later one steps back
			r.ownSession = 0
			return r.delete(r.ctx, w.path, own.version)
		}
		return nil
	}
	r.setConflict(nil)
	switch {
	case mine && bytes.Equal(own.raw, data):
		r.setRegistered(true)
		return nil
	case mine: // Register was called again with another record
		return r.replace(r.ctx, w.path, own.version, data)
	case present:
		r.log.Warn("replacing a znode of this node's address owned by another session "+
			"(a previous process of this node, or another node advertising the same address)",
			"path", w.path, "owner", fmt.Sprintf("0x%x", own.owner))
		if err := r.delete(r.ctx, w.path, own.version); err != nil && !errors.Is(err, zk.ErrNoNode) {
			return err
		}
	case r.ownSession == sid:
		r.log.Warn("this node's znode was deleted by another client: registering again", "path", w.path)
	}
	r.setRegistered(false)
	_, err := call(r.ctx, r.cfg.SessionTimeout, func() (string, error) {
		return r.client().Create(w.path, data, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
	})
	if err != nil {
		return wrap("create", w.path, err)
	}
	r.ownSession = sid
	r.setRegistered(true)
	r.log.Info("registered in ZooKeeper", "path", w.path, "session", fmt.Sprintf("0x%x", sid))
	return nil
}

// conflictHolder is the live member (by name order) that keeps w from
// registering: another address with the same idgen_worker_id, registered
// before w's own znode (when w has one in this session) or at all.
func conflictHolder(w *registration, own seen, mine bool, children map[string]seen) string {
	names := make([]string, 0, len(children))
	for name := range children {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		c := children[name]
		if name == w.addr || c.reason != "" || c.info.IdgenWorkerID != w.info.IdgenWorkerID {
			continue
		}
		if !mine || c.czxid < own.czxid {
			return name
		}
	}
	return ""
}

// markLeaving marks this node's znode leaving. Peers only watch the root's
// children, which a data change does not touch, so the record is replaced
// by a delete and a create in one transaction: the watch fires and peers
// read the mark. It reports whether there was a znode to mark.
func (r *Registry) markLeaving(ctx context.Context) (bool, error) {
	w, _ := r.registration()
	if w == nil {
		return false, nil
	}
	s, err := r.readOwn(ctx, w)
	if s == nil || err != nil {
		return false, err
	}
	info := w.info
	info.Leaving = true
	if err := r.replace(ctx, w.path, s.version, info.encode()); err != nil {
		return false, err
	}
	r.log.Info("marked leaving", "path", w.path)
	return true, nil
}

// deleteOwn deletes this node's znode if this session owns it.
func (r *Registry) deleteOwn(ctx context.Context) error {
	w, _ := r.registration()
	if w == nil {
		return nil
	}
	s, err := r.readOwn(ctx, w)
	if s == nil || err != nil {
		return err
	}
	r.setRegistered(false)
	r.ownSession = 0
	return r.delete(ctx, w.path, s.version)
}

// readOwn reads this node's znode; nil when it does not exist or another
// session owns it.
func (r *Registry) readOwn(ctx context.Context, w *registration) (*seen, error) {
	s, err := r.readRecord(ctx, w.addr)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return nil, nil
	case err != nil:
		return nil, err
	case s.owner != r.client().SessionID():
		return nil, nil
	}
	return &s, nil
}

// replace swaps the data of this session's ephemeral znode at path (data
// version) in one transaction of a delete and a create, so that the
// children watches of peers fire.
func (r *Registry) replace(ctx context.Context, path string, version int32, data []byte) error {
	_, err := call(ctx, r.cfg.SessionTimeout, func() ([]zk.MultiResponse, error) {
		return r.client().Multi(&zk.DeleteRequest{Path: path, Version: version},
			&zk.CreateRequest{Path: path, Data: data, Acl: zk.WorldACL(zk.PermAll), Flags: zk.FlagEphemeral})
	})
	return wrap("replace", path, err)
}

func (r *Registry) delete(ctx context.Context, path string, version int32) error {
	_, err := call(ctx, r.cfg.SessionTimeout, func() (struct{}, error) {
		return struct{}{}, r.client().Delete(path, version)
	})
	return wrap("delete", path, err)
}

// ensurePath creates every missing component of path as a persistent znode
// with no data.
func (r *Registry) ensurePath(ctx context.Context, path string) error {
	for i := 1; i <= len(path); i++ {
		if i < len(path) && path[i] != '/' {
			continue
		}
		p := path[:i]
		_, err := call(ctx, r.cfg.SessionTimeout, func() (string, error) {
			return r.client().Create(p, nil, 0, zk.WorldACL(zk.PermAll))
		})
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return wrap("create", p, err)
		}
	}
	return nil
}

type result[T any] struct {
	v   T
	err error
}

// call runs one ZooKeeper operation f and gives up after timeout or when ctx
// ends: go-zookeeper's calls have no deadline of their own and can wait on
// an unanswered connection. An abandoned f finishes in the background (the
// library fails it when the connection closes).
func call[T any](ctx context.Context, timeout time.Duration, f func() (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res := make(chan result[T], 1)
	go func() {
		v, err := f()
		res <- result[T]{v, err}
	}()
	select {
	case x := <-res:
		return x.v, x.err
	case <-ctx.Done():
		var zero T
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return zero, fmt.Errorf("no answer from ZooKeeper within %s: %w", timeout, ctx.Err())
		}
		return zero, ctx.Err()
	}
}

// wrap names the operation and the path in a ZooKeeper error (nil stays nil).
func wrap(op, path string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("zookeeper %s %s: %w", op, path, err)
}

// hostList is a zk.HostProvider over the servers as given: unlike
// go-zookeeper's DNSHostProvider it resolves no names up front (the dialer
// resolves one at each dial), so a node starts even when DNS does not answer.
type hostList struct {
	mu         sync.Mutex
	servers    []string
	curr, last int
}

func (h *hostList) Init(servers []string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(servers) == 0 {
		return errors.New("no ZooKeeper servers")
	}
	h.servers, h.curr, h.last = append([]string(nil), servers...), -1, -1
	return nil
}

func (h *hostList) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.servers)
}

// Next is the next server; retryStart is true once every server was tried
// since the last connection (go-zookeeper then waits a second).
func (h *hostList) Next() (server string, retryStart bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.curr = (h.curr + 1) % len(h.servers)
	retryStart = h.curr == h.last
	if h.last == -1 {
		h.last = 0
	}
	return h.servers[h.curr], retryStart
}

func (h *hostList) Connected() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.last = h.curr
}

// underRoot reports whether path is root or below it.
func underRoot(root, path string) bool {
	return path == root || strings.HasPrefix(path, root+"/")
}
