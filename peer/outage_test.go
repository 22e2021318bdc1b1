package peer

import (
	"context"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/fae-go/fae/internal/testenv"
)

// ZooKeeper away and back: each test stops or freezes a ZooKeeper of its own.

var three = []string{"127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"}

func threeNodes(t *testing.T, zkAddr string, cfg Config) []*Registry {
	var rs []*Registry
	for i, addr := range three {
		rs = append(rs, node(t, zkAddr, cfg, addr, i+1))
	}
	return rs
}

// countChanges subscribes to each registry and counts the deliveries after
// the first (the membership at subscription).
func countChanges(t *testing.T, rs []*Registry) *atomic.Int32 {
	var n atomic.Int32
	for _, r := range rs {
		var first atomic.Bool
		cancel := r.Subscribe(func([]Member) {
			if !first.CompareAndSwap(false, true) {
				n.Add(1)
			}
		})
		t.Cleanup(cancel)
		testenv.Eventually(t, time.Second, "the first delivery", first.Load)
	}
	return &n
}

// waitRegistered polls until every registry's znode belongs to its current session.
func waitRegistered(t *testing.T, zkAddr string, rs []*Registry) {
	t.Helper()
	c := rawClient(t, zkAddr)
	for i, r := range rs {
		testenv.Eventually(t, 20*time.Second, fmt.Sprintf("%s registered in its current session", three[i]), func() bool {
			return registeredIn(t, c, r, r.cfg.Root+"/"+three[i])
		})
	}
}

// Nodes start while ZooKeeper is down (and are not held up), register when
// it comes; ZooKeeper stopped past the removal delay changes no membership;
// back, every node is registered (ZooKeeper 3.8 restores the sessions from
// its data); replaced by an empty ZooKeeper, every node registers again in a
// new session.
func TestZooKeeperOutage(t *testing.T) {
	t.Parallel()
	z := testenv.StartZooKeeper(t)
	z.Stop()
	cfg := testConfig("/fae", testSession)
	start := time.Now()
	rs := threeNodes(t, z.Addr(), cfg)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("starting 3 registries without ZooKeeper took %s: it must not wait for ZooKeeper", took)
	}
	if ms := rs[0].Members(); len(ms) != 0 || rs[0].Registered() {
		t.Fatalf("without ZooKeeper: members %v, registered %v", addrsOf(ms), rs[0].Registered())
	}
	// zk_* answer within their bound while ZooKeeper is away.
	start = time.Now()
	_, err := rs[0].Children(context.Background(), "/")
	if took := time.Since(start); err == nil || took > cfg.SessionTimeout+500*time.Millisecond {
		t.Fatalf("children without ZooKeeper: %v after %s, want an error within %s", err, took, cfg.SessionTimeout)
	}
	t.Logf("zk_children without ZooKeeper: %v after %s", err, time.Since(start).Round(time.Millisecond))

	z.Start()
	testenv.Eventually(t, 30*time.Second, "ZooKeeper up", func() bool { return testenv.ZooKeeperOK(z.Addr()) })
	waitMembers(t, 15*time.Second, three, rs...)
	waitRegistered(t, z.Addr(), rs)

	var before []int64
	for _, r := range rs {
		before = append(before, r.client().SessionID())
	}
	changes := countChanges(t, rs)
	z.Stop()
	for i, r := range rs {
		testenv.Eventually(t, 10*time.Second, fmt.Sprintf("registry %d to see the connection lost", i), func() bool {
			return r.client().State() != zk.StateHasSession
		})
	}
	time.Sleep(3 * cfg.SessionTimeout) // waits out the removal delay: nothing may be dropped meanwhile
	for i, r := range rs {
		if got := addrsOf(r.Members()); !reflect.DeepEqual(got, three) {
			t.Fatalf("registry %d while ZooKeeper is down: members %v, want the last ones %v", i, got, three)
		}
	}
	if n := changes.Load(); n != 0 {
		t.Fatalf("%d membership changes while ZooKeeper was down, want none", n)
	}
	z.Start()
	testenv.Eventually(t, 30*time.Second, "ZooKeeper up again", func() bool { return testenv.ZooKeeperOK(z.Addr()) })
	waitRegistered(t, z.Addr(), rs)
	waitMembers(t, 15*time.Second, three, rs...)
	for i, r := range rs {
		t.Logf("registry %d: session 0x%x before the outage, 0x%x after", i, before[i], r.client().SessionID())
	}

	// ZooKeeper replaced by an empty one: no session and no znode survive;
	// every node gets a new session, creates the root and registers again.
	for i, r := range rs {
		before[i] = r.client().SessionID()
	}
	z.Stop()
	testenv.WipeZooKeeperData(t, z)
	z.Start()
	testenv.Eventually(t, 30*time.Second, "the empty ZooKeeper up", func() bool { return testenv.ZooKeeperOK(z.Addr()) })
	for i, r := range rs {
		testenv.Eventually(t, 20*time.Second, fmt.Sprintf("registry %d in a new session", i), func() bool {
			return r.client().SessionID() != before[i] && r.client().State() == zk.StateHasSession
		})
	}
	waitRegistered(t, z.Addr(), rs)
	waitMembers(t, 15*time.Second, three, rs...)
}

// ZooKeeper frozen (SIGSTOP) past the session timeout, then resumed: the
// membership is kept meanwhile, and afterwards every node is registered in
// its current session and all agree again. (Resumed, ZooKeeper 3.8 mostly
// lets the reconnecting clients keep their sessions; testSessionExpiry
// covers an expiry for sure.)
func TestZooKeeperFrozen(t *testing.T) {
	t.Parallel()
	z := testenv.StartZooKeeper(t)
	cfg := testConfig("/fae", testSession)
	rs := threeNodes(t, z.Addr(), cfg)
	waitMembers(t, 15*time.Second, three, rs...)
	waitRegistered(t, z.Addr(), rs)
	var before []int64
	for _, r := range rs {
		before = append(before, r.client().SessionID())
	}
	z.Freeze()
	time.Sleep(3 * cfg.SessionTimeout) // past the session timeout: ZooKeeper expires the sessions once it runs
	for i, r := range rs {
		if got := addrsOf(r.Members()); !reflect.DeepEqual(got, three) {
			t.Fatalf("registry %d while ZooKeeper is frozen: members %v, want the last ones %v", i, got, three)
		}
	}
	z.Thaw()
	waitRegistered(t, z.Addr(), rs)
	waitMembers(t, 15*time.Second, three, rs...)
	for i, r := range rs {
		t.Logf("registry %d: session 0x%x before the freeze, 0x%x after", i, before[i], r.client().SessionID())
	}
}
