package clustertest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/internal/testenv"
)

// Issue 8: all three nodes agree on the owner of 10,000 keys — a lock taken
// through one node is held for the other two — and a lock's rid owns it: an
// unlock by another rid, through any node, leaves it held.
func TestOwnersAgreeAndClusterLock(t *testing.T) {
	_, nodes := startCluster(t, 3, "")
	cs := []*client{nodes[0].dial(t), nodes[1].dial(t), nodes[2].dial(t)}
	before, keys := forwardedByPeer(t, nodes[0]), []string{}
	for k := range 10000 {
		key := ownerKey(k)
		keys = append(keys, key)
		first := k % 3
		if ok, err := cs[first].Lock(bg, ctx(), "agree", key); err != nil || !ok {
			t.Fatalf("lock %s through node%d: %v %v", key, first, ok, err)
		}
		for i, c := range cs {
			if i == first {
				continue
			}
			if ok, err := c.Lock(bg, ctx(), "agree", key); err != nil || ok {
				t.Fatalf("lock %s through node%d after node%d took it: %v %v (the nodes disagree on its owner)", key, i, first, ok, err)
			}
		}
	}
	checkForwardedByPeer(t, nodes, before, keys) // node0 was asked about every key once

	holder := ctx()
	if ok, err := cs[0].Lock(bg, holder, "why", "the-lock"); err != nil || !ok {
		t.Fatalf("lock on A: %v %v", ok, err)
	}
	if ok, err := cs[1].Lock(bg, ctx(), "why", "the-lock"); err != nil || ok {
		t.Fatalf("lock of the same key on B = %v %v, want false", ok, err)
	}
	if err := cs[2].Unlock(bg, ctx(), "why", "the-lock"); err != nil {
		t.Fatalf("unlock by another rid: %v (it returns normally)", err)
	}
	if ok, _ := cs[1].Lock(bg, ctx(), "why", "the-lock"); ok {
		t.Fatal("an unlock by another rid freed the lock")
	}
	if err := cs[2].Unlock(bg, holder, "why", "the-lock"); err != nil {
		t.Fatal(err)
	}
	if ok, err := cs[1].Lock(bg, ctx(), "why", "the-lock"); err != nil || !ok {
		t.Fatalf("lock after the holder's unlock (through another node) = %v %v", ok, err)
	}
}

// zk_* run on the node's session; the registration root is refused.
func TestZkMethods(t *testing.T) {
	zk, nodes := startCluster(t, 1, "")
	// zk_* need the node's ZooKeeper session: wait for it (its registration).
	testenv.Eventually(t, 20*time.Second, "the node registered", func() bool { return registered(t, zk.Addr()) == 1 })
	c := nodes[0].dial(t)
	path := fmt.Sprintf("/fae-test-%d", time.Now().UnixNano())
	if ok, err := c.ZkCreate(bg, ctx(), path, "data"); err != nil || !ok {
		t.Fatalf("zk_create %s: %v %v", path, ok, err)
	}
	for _, child := range []string{"b", "a"} {
		if ok, err := c.ZkCreate(bg, ctx(), path+"/"+child, ""); err != nil || !ok {
			t.Fatalf("zk_create child: %v %v", ok, err)
		}
	}
	kids, err := c.ZkChildren(bg, ctx(), path)
	if err != nil || strings.Join(kids, ",") != "a,b" {
		t.Fatalf("zk_children = %v %v, want a,b sorted", kids, err)
	}
	if _, err := c.ZkCreate(bg, ctx(), path, "again"); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("zk_create of an existing path: %v, want an error naming it", err)
	}
	if ok, err := c.ZkDel(bg, ctx(), path+"/a"); err != nil || !ok {
		t.Fatalf("zk_del: %v %v", ok, err)
	}
	if _, err := c.ZkCreate(bg, ctx(), "/fae/evil", ""); err == nil {
		t.Fatal("zk_create under the registration root succeeded")
	}
	if _, err := c.ZkDel(bg, ctx(), "/fae/"+nodes[0].addr); err == nil {
		t.Fatal("zk_del of a registration succeeded")
	}
}

// A forwarded call's failure reaches the client once, naming the peer; a
// peer's declared exception would reach it as itself (see proxy tests).
func TestForwardedErrorNamesPeer(t *testing.T) {
	_, nodes := startCluster(t, 2, "")
	c := nodes[0].dial(t)
	// Neither node has servants.mysql: a cacheKey'd my_query owned by the
	// other node is forwarded and answered "mysql is not configured" there.
	var peerErr error
	for k := 0; k < 200 && peerErr == nil; k++ {
		_, err := c.MyQuery(bg, ctx(), "Global", "t", 0, "SELECT 1", nil, fmt.Sprintf("ck:%d", k))
		if err != nil && strings.Contains(err.Error(), "peer ") {
			peerErr = err
		}
	}
	if peerErr == nil {
		t.Fatal("no cacheKey of 200 was owned by the other node")
	}
	msg := peerErr.Error()
	if strings.Count(msg, "peer ") != 1 || strings.Count(msg, "Internal error processing") != 1 ||
		!strings.Contains(msg, "mysql is not configured") {
		t.Fatalf("forwarded error %q: want the peer named once and one processor prefix", msg)
	}
	var ae thrift.TApplicationException
	if !asAppException(peerErr, &ae) || ae.TypeId() != thrift.INTERNAL_ERROR {
		t.Fatalf("forwarded error %T %v", peerErr, peerErr)
	}
}

// Issue 8: peers speak what the owner serves: four nodes of three
// protocol/transport pairs and rpc.protocol auto agree and forward to each
// other. The auto node (framed: true, which auto ignores; the test calls it
// framed binary) registers binary buffered (engine.Config.PeerWire), what
// its peers call it in.
func TestMixedProtocols(t *testing.T) {
	zk := testenv.StartZooKeeper(t)
	modes := []struct {
		protocol string
		framed   bool
	}{{"binary", false}, {"compact", true}, {"binary", true}, {"auto", true}}
	nodes := make([]*node, len(modes))
	for i, m := range modes {
		rpc := fmt.Sprintf("protocol: %q, framed: %v", m.protocol, m.framed)
		nodes[i] = startNodeMode(t, fmt.Sprintf("node%d", i), m.protocol, m.framed,
			nodeConfRPC(zk.Addr(), testenv.FreePort(t), i+1, rpc, ""))
	}
	waitAgree(t, nodes, 30*time.Second)
	var p struct {
		Members []struct {
			Addr string `json:"addr"`
			Info struct {
				Protocol string `json:"protocol"`
				Framed   bool   `json:"framed"`
			} `json:"info"`
		} `json:"members"`
	}
	nodes[1].getJSON(t, "/engine/peers", &p)
	found := false
	for _, m := range p.Members {
		if m.Addr == nodes[3].addr {
			found = true
			if m.Info.Protocol != "binary" || m.Info.Framed {
				t.Errorf("the auto node's record: protocol %q framed %v, want binary buffered", m.Info.Protocol, m.Info.Framed)
			}
		}
	}
	if !found || len(p.Members) != 4 {
		t.Errorf("/engine/peers: %d members, the auto node %s among them: %v", len(p.Members), nodes[3].addr, found)
	}
}
