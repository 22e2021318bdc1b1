package servant

import (
	"context"
	"errors"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/peer"
)

func members(addrs ...string) []peer.Member {
	ms := make([]peer.Member, len(addrs))
	for i, a := range addrs {
		ms[i] = peer.Member{Addr: a, Info: peer.MemberInfo{Protocol: "binary"}}
	}
	return ms
}

func lockServant(t *testing.T, self string) *FunServant {
	cfg := baseConfig()
	cfg.Lock = &LockConfig{MaxItems: 100}
	return newTestServant(t, cfg, Options{Self: self})
}

// A node that is no member (server_mode false) with no member known has no
// owner for a key: a clear error, never a division by zero.
func TestNoMembersKnown(t *testing.T) {
	s := lockServant(t, "")
	s.SetMembers(nil)
	_, err := s.Lock(context.Background(), validCtx(), "why", "k")
	if !errors.Is(err, peer.ErrNoMembers) || s.Cluster.NoOwner.Load() != 1 {
		t.Fatalf("lock on a proxy-only node with no member: %v (no owner %d)", err, s.Cluster.NoOwner.Load())
	}
	// A member that sees nobody yet (not registered) owns every key.
	m := lockServant(t, "127.0.0.1:1")
	m.SetMembers(nil)
	if ok, err := m.Lock(context.Background(), validCtx(), "why", "k"); err != nil || !ok {
		t.Fatalf("lock on a member seeing no member: %v %v", ok, err)
	}
}

// A sticky call runs where it lands, counted as misrouted when this node's
// ring names another owner; a self-owned key never leaves the process.
func TestStickyAndSelfOwned(t *testing.T) {
	s := lockServant(t, "127.0.0.1:1")
	s.SetMembers(members("127.0.0.1:1", "127.0.0.1:2"))
	ring := peer.NewRing([]string{"127.0.0.1:1", "127.0.0.1:2"})
	var mine, theirs string
	for i := 0; mine == "" || theirs == ""; i++ {
		k := string(rune('a'+i%26)) + string(rune('a'+i/26%26))
		if o, _ := ring.Owner(k); o == "127.0.0.1:1" {
			mine = k
		} else {
			theirs = k
		}
	}
	if ok, err := s.Lock(context.Background(), validCtx(), "why", mine); err != nil || !ok || s.Cluster.Forwarded.Load() != 0 {
		t.Fatalf("self-owned key: %v %v, forwarded %d", ok, err, s.Cluster.Forwarded.Load())
	}
	sticky := &rpc.Context{Rid: 1, Reason: "r", Sticky: thrift.BoolPtr(true)}
	if ok, err := s.Lock(context.Background(), sticky, "why", theirs); err != nil || !ok {
		t.Fatalf("sticky call of another's key: %v %v, want it run here", ok, err)
	}
	if s.Cluster.Misrouted.Load() != 1 || s.Cluster.Forwarded.Load() != 0 {
		t.Fatalf("misrouted %d, forwarded %d", s.Cluster.Misrouted.Load(), s.Cluster.Forwarded.Load())
	}
	// A call of another's key is forwarded; here the peer is not there.
	if _, err := s.Lock(context.Background(), validCtx(), "why", theirs); err == nil || s.Cluster.Forwarded.Load() != 1 {
		t.Fatalf("forwarded to a dead peer: %v, forwarded %d", err, s.Cluster.Forwarded.Load())
	}
	if got := s.Cluster.Peers(); len(got) != 1 || got[0] != (PeerForwardStats{Peer: "127.0.0.1:2", Calls: 1, Failed: 1}) {
		t.Fatalf("forwarded by peer: %+v", got)
	}
	if ps := s.PoolStats(); len(ps) != 1 || ps[0].Backend != "peer" || ps[0].Server != "127.0.0.1:2" || ps[0].Open != 0 {
		t.Fatalf("pool stats: %+v, want the dead peer's row", ps)
	}
}
