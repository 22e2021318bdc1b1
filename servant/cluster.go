package servant

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/peer"
	"github.com/fae-go/fae/pool"
	"github.com/fae-go/fae/proxy"
)

// The cluster side of the servant: a keyed call (lock, unlock, my_query and
// my_evict with a cacheKey, each cacheKey'd element of my_bulk_exec, my_merge)
// runs on the owner of its key, chosen by the generation's peer.Picker (one
// ring for the whole call); another node's key is forwarded there through the
// core's proxy pools, sticky so that it is never forwarded again. Everything
// else runs locally, and so do self-owned keys.

// ZooKeeper is what zk_* need of the node's ZooKeeper session (peer.Registry).
type ZooKeeper interface {
	Create(ctx context.Context, path string, data []byte) error
	Children(ctx context.Context, path string) ([]string, error)
	Delete(ctx context.Context, path string) error
}

// ClusterStats count what routing did, since start.
type ClusterStats struct {
	Forwarded     atomic.Int64 // calls sent to their key's owner
	ForwardFailed atomic.Int64 // forwarded calls that failed (the owner's answer of an error not included)
	Misrouted     atomic.Int64 // sticky calls served here though this node's ring names another owner
	LocalFallback atomic.Int64 // cacheKey'd reads run here without the cache because the owner was unreachable
	NoOwner       atomic.Int64 // keyed calls refused because no member is known (a proxy-only node alone)

	byPeer   sync.Map     // peer address → *PeerForwards, at most MaxForwardPeers entries (see Peers)
	addMu    sync.Mutex   // serialises additions to byPeer
	nPeers   int          // entries in byPeer; guarded by addMu
	overflow PeerForwards // the calls to peers past MaxForwardPeers
}

// MaxForwardPeers bounds the peers whose forwarded calls are counted one by
// one. Peers are members' addresses, so a cluster has far fewer; but every
// address ever forwarded to keeps its row (counters never go back, as
// Prometheus wants), and members restarted on new ports add addresses over
// a process's life. Past the cap, calls are counted under OtherPeer.
const MaxForwardPeers = 1024

// OtherPeer is the row of the calls to peers past MaxForwardPeers.
const OtherPeer = "(other)"

// PeerForwards count the calls forwarded to one peer.
type PeerForwards struct {
	Calls  atomic.Int64 // calls sent to it
	Failed atomic.Int64 // of those, the ones that failed to reach it (its answer of an error not included)
}

// PeerForwardStats are one row of ClusterStats.Peers.
type PeerForwardStats struct {
	Peer   string `json:"peer"`   // the member's address (host:port), or OtherPeer
	Calls  int64  `json:"calls"`  // calls forwarded to it since start
	Failed int64  `json:"failed"` // of those, failed to reach it
}

// peer returns the counters of addr, adding them on its first forwarded
// call. A call pays one lock-free sync.Map load; only a peer's first call
// takes a lock.
func (c *ClusterStats) peer(addr string) *PeerForwards {
	if v, ok := c.byPeer.Load(addr); ok {
		return v.(*PeerForwards)
	}
	c.addMu.Lock()
	defer c.addMu.Unlock()
	if v, ok := c.byPeer.Load(addr); ok {
		return v.(*PeerForwards)
	}
	if c.nPeers >= MaxForwardPeers {
		return &c.overflow
	}
	pf := new(PeerForwards)
	c.byPeer.Store(addr, pf)
	c.nPeers++
	return pf
}

// Peers returns the calls forwarded to each peer since start, sorted by
// address, with an OtherPeer row last when the cap was passed. At most
// MaxForwardPeers+1 rows.
func (c *ClusterStats) Peers() []PeerForwardStats {
	out := []PeerForwardStats{}
	c.byPeer.Range(func(k, v any) bool {
		pf := v.(*PeerForwards)
		out = append(out, PeerForwardStats{Peer: k.(string), Calls: pf.Calls.Load(), Failed: pf.Failed.Load()})
		return true
	})
	slices.SortFunc(out, func(a, b PeerForwardStats) int { return strings.Compare(a.Peer, b.Peer) })
	if n := c.overflow.Calls.Load(); n > 0 {
		out = append(out, PeerForwardStats{Peer: OtherPeer, Calls: n, Failed: c.overflow.Failed.Load()})
	}
	return out
}

// SetMembers makes members the cluster this node routes by: a new generation
// with a new ring, every pool reused, swapped in like a reload (serialised
// with Reload), so that a call sees one ring from start to end. Pools to peers
// no longer in members close once their calls in flight have returned. Until
// the first call (ZooKeeper not read yet, or no etcd_servers) this node owns
// every key.
func (s *FunServant) SetMembers(members []peer.Member) {
	s.reload.Lock()
	defer s.reload.Unlock()
	old := s.gen.Load()
	if old.closed {
		return
	}
	s.members = slices.Clone(members)
	// A member that sees no member at all (not even itself, not registered
	// yet) owns every key, as before ZooKeeper was read; a node that is no
	// member (server_mode false) then has nowhere to send keyed calls.
	s.membersKnown = len(members) > 0 || s.opts.Self == ""
	g, err := s.build(old.cfg, old)
	if err != nil { // unchanged config: it rebuilt nothing but the ring
		s.log.Error("membership change not applied", "err", err)
		return
	}
	s.gen.Store(g)
	old.retire(g)
	s.lastDone = old.done
	if s.proxies != nil {
		addrs := make([]string, len(members))
		for i, m := range members {
			addrs[i] = m.Addr
		}
		s.proxies.Retain(addrs)
	}
}

// buildPicker gives g the ring of the members known (none known yet: nil,
// every key local).
func (s *FunServant) buildPicker(g *generation) {
	if !s.membersKnown {
		return
	}
	addrs := make([]string, 0, len(s.members))
	g.peers = make(map[string]proxy.Peer, len(s.members))
	for _, m := range s.members {
		addrs = append(addrs, m.Addr)
		g.peers[m.Addr] = proxy.Peer{Addr: m.Addr, Protocol: m.Info.Protocol, Framed: m.Info.Framed}
	}
	g.picker = peer.NewPicker(peer.NewRing(addrs), s.opts.Self)
}

// route says where the call for key runs: remote with the owner's proxy.Peer,
// or here. A sticky call (forwarded by a peer) always runs here; it is counted
// as misrouted when this node's ring names another owner. An empty key, or no
// membership read yet, runs here.
func (s *FunServant) route(g *generation, c *rpc.Context, key string) (proxy.Peer, bool, error) {
	if g.picker == nil || key == "" {
		return proxy.Peer{}, false, nil
	}
	addr, remote, err := g.picker.PickPeer(key)
	switch {
	case err != nil:
		s.Cluster.NoOwner.Add(1)
		return proxy.Peer{}, false, err
	case c.GetSticky():
		if remote {
			s.Cluster.Misrouted.Add(1)
		}
		return proxy.Peer{}, false, nil
	case !remote:
		return proxy.Peer{}, false, nil
	}
	return g.peers[addr], true, nil
}

// sticky is the Sticky of every forwarded Context, shared: nothing writes
// through it (the client code only reads it, to encode it), and a pointer of
// its own cost each forwarded call an allocation.
var sticky = true

// forward runs call on the peer p (method is its IDL name) with a sticky copy
// of c, watching this call's client: when it leaves, the forwarded call is
// cancelled too. A peer's answer comes back as the peer gave it (a declared
// exception as itself, an application exception naming the peer once, see
// proxy.ServantError); a failure to reach it is a *pool.Error naming it.
func forward[T any](s *FunServant, ctx context.Context, p proxy.Peer, method string, c *rpc.Context,
	call func(context.Context, *rpc.FunServantClient, *rpc.Context) (T, error)) (T, error) {
	fc := &rpc.Context{Rid: c.Rid, Reason: c.Reason, UID: c.UID, Sticky: &sticky}
	var r T
	// A pipelined call (lock, unlock) holds no connection while it waits, and
	// the watch would cost it more than a µs (a derived ctx and a timer).
	wctx, stop := ctx, func() {}
	if !s.proxies.Pipelined(method) {
		wctx, stop = engine.WatchClient(ctx)
	}
	err := s.proxies.Call(wctx, p, method, func(ctx context.Context, cl *rpc.FunServantClient) (err error) {
		r, err = call(ctx, cl, fc)
		return err
	})
	stop()
	s.Cluster.Forwarded.Add(1)
	pf := s.Cluster.peer(p.Addr)
	pf.Calls.Add(1)
	if err != nil && !peerAnswered(err) {
		s.Cluster.ForwardFailed.Add(1)
		pf.Failed.Add(1)
	}
	if err != nil && errors.Is(context.Cause(wctx), engine.ErrClientGone) {
		return r, fmt.Errorf("%w: %s: %w", thrift.ErrAbandonRequest, method, engine.ErrClientGone)
	}
	return r, proxy.ServantError(ctx, err)
}

// peerAnswered tells an answer of the owner (a declared exception, or an
// error it reported) from a failure to reach it.
func peerAnswered(err error) bool {
	var te thrift.TException
	if errors.As(err, &te) && te.TExceptionType() == thrift.TExceptionTypeCompiled {
		return true
	}
	return pool.KindOf(err).Answered()
}

// mergeKey is the key my_merge is routed by: its key argument, or when that
// is empty the row it names (pool, table, hintId and where), so that merges
// into one row are serialised on one node.
func mergeKey(pool, table string, hintID int64, where, key string) string {
	if key != "" {
		return key
	}
	return fmt.Sprintf("my_merge:%s/%s/%d/%s", pool, table, hintID, where)
}
