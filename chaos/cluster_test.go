package chaos

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

// clusterTop is the top of a cluster node's faed.cf: registered in the
// ZooKeeper at zkAddr with a 2 s session (dropped that long after a kill).
func clusterTop(zkAddr string) string {
	return fmt.Sprintf(`etcd_servers: [%q]
    peer: { session_timeout: "2s" }`, zkAddr)
}

// clusterServants: forwarded calls give up on a dead peer fast.
const clusterServants = `proxy: { io_timeout: "2s", borrow_timeout: "1s", breaker: { failure_allowance: 2, retry_interval: "500ms" } }`

// startCluster runs a ZooKeeper of the case's own and n nodes registered in
// it, and waits until they agree.
func startCluster(t *testing.T, n int) (*testenv.Server, []*node, []*client) {
	t.Helper()
	zks := testenv.StartZooKeeper(t)
	nodes := make([]*node, n)
	clients := make([]*client, n)
	for i := range nodes {
		nodes[i] = startNode(t, fmt.Sprintf("node%d", i), nodeConf(testenv.FreePort(t), i+1, clusterTop(zks.Addr()), "", clusterServants))
		clients[i] = nodes[i].dial()
	}
	testenv.Eventually(t, 30*time.Second, "every node listing the others in /engine/peers", func() bool { return peersAgree(t, nodes) == nil })
	testenv.Eventually(t, 30*time.Second, "the nodes agreeing on key owners", func() bool { return ownersAgree(clients) == nil })
	return zks, nodes, clients
}

// peersAgree is nil when every node's /engine/peers lists exactly nodes.
func peersAgree(t *testing.T, nodes []*node) error {
	var want []string
	for _, n := range nodes {
		want = append(want, n.addr)
	}
	slices.Sort(want)
	for _, n := range nodes {
		var p struct{ Members []struct{ Addr string } }
		if err := n.getJSON("/engine/peers", &p); err != nil {
			return err
		}
		var got []string
		for _, m := range p.Members {
			got = append(got, m.Addr)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			return fmt.Errorf("%s lists %v, want %v", n.name, got, want)
		}
	}
	return nil
}

var agreeRound int

// ownersAgree is nil when a lock taken through the first client on fresh
// keys is found held through every other: each node forwards each key to
// the same owner.
func ownersAgree(clients []*client) error {
	agreeRound++
	for k := range 24 {
		key := fmt.Sprintf("agree:%d:%d:%d", time.Now().UnixNano(), agreeRound, k)
		if ok, err := clients[0].Lock(bg, ctx(), "probe", key); err != nil || !ok {
			return fmt.Errorf("lock %s through the first node: %v %v", key, ok, err)
		}
		for i, c := range clients[1:] {
			if ok, err := c.Lock(bg, ctx(), "probe", key); err != nil || ok {
				return fmt.Errorf("lock %s through node %d: %v %v, want held", key, i+1, ok, err)
			}
		}
	}
	return nil
}

// quiet is the logger of the test's own ZooKeeper sessions.
type quiet struct{}

func (quiet) Printf(string, ...any) {}

// clusterLoads runs stress on each of nodes: ping, id_next, lc_set/lc_get.
func clusterLoads(t *testing.T, nodes []*node) []*load {
	var ls []*load
	for _, n := range nodes {
		ls = append(ls, startLoad(t, n.name, "-addr", n.addr, "-c", "2", "-d", "10m", "-x", fmt.Sprint(xPing|xIDNext|xLcache)))
	}
	return ls
}

// stopLoads stops ls and returns their reports as one line, with the
// number of failed calls.
func stopLoads(ls []*load) (string, int64) {
	var s []string
	var failed int64
	for _, l := range ls {
		rep := l.stop()
		s = append(s, l.desc+": "+rep.String())
		failed += rep.failed()
		if rep.failed() > 0 {
			s = append(s, "first: "+rep.firsts())
		}
	}
	return strings.Join(s, "; "), failed
}

// TestZooKeeperAway: ZooKeeper stopped for 60 s (3 s in the fast subset)
// under load on 3 nodes: every node keeps serving, and forwarding on the
// last membership (locks agree throughout); restarted, every node registers
// again and they agree on the owners again (/engine/peers on each node).
func TestZooKeeperAway(t *testing.T) {
	r := newRow(t, "ZooKeeper stopped")
	zks, nodes, clients := startCluster(t, 3)
	baseline(t, nodes[0], r)
	loads := clusterLoads(t, nodes)
	away := pick(3*time.Second, 60*time.Second)
	r.Load = "stress -c 2 on each of 3 nodes (ping, id_next, lcache) + lock probes forwarded to owners"
	zks.Stop()
	stopped := time.Now()
	probes, failedProbes := 0, 0
	for time.Since(stopped) < away {
		probes++
		if err := ownersAgree(clients); err != nil {
			failedProbes++
			t.Errorf("%s into the outage: %v", round(time.Since(stopped)), err)
		}
		time.Sleep(200 * time.Millisecond) // the probes' pace through the outage, not synchronisation
	}
	r.Faults = fmt.Sprintf("private ZooKeeper stopped (SIGTERM) for %s", round(time.Since(stopped)))
	zks.Start()
	restarted := time.Now()
	testenv.Eventually(t, 30*time.Second, "ZooKeeper back", func() bool { return testenv.ZooKeeperOK(zks.Addr()) })
	testenv.Eventually(t, 30*time.Second, "every node registered again", func() bool { return testenv.ZooKeeperChildren(zks.Addr(), "/fae") == 3 })
	testenv.Eventually(t, 30*time.Second, "every node listing the 3 in /engine/peers", func() bool { return peersAgree(t, nodes) == nil })
	testenv.Eventually(t, 30*time.Second, "owners agreed again", func() bool { return ownersAgree(clients) == nil })
	r.Recover = round(time.Since(restarted)) + " (re-registered, peers and owners agree)"
	line, failed := stopLoads(loads)
	r.Failed = fmt.Sprintf("%s; lock probes %d rounds, %d failed", line, probes, failedProbes)
	if failed != 0 {
		t.Errorf("calls failed while ZooKeeper was away: %s", line)
	}
	checkLeaks(t, nodes[0], r)
}

// TestPeerKilled: one of 3 nodes killed with -9 under load: the calls of
// the survivors never fail; its keys fail fast, naming it, while its znode
// lives; then they move to the survivors.
func TestPeerKilled(t *testing.T) {
	r := newRow(t, "peer kill -9")
	_, nodes, clients := startCluster(t, 3)
	keys := make([]string, 60)
	for i := range keys {
		keys[i] = fmt.Sprintf("kill:%d:%d", time.Now().UnixNano(), i)
		if ok, err := clients[0].Lock(bg, ctx(), "setup", keys[i]); err != nil || !ok {
			t.Fatalf("lock %s: %v %v", keys[i], ok, err)
		}
	}
	baseline(t, nodes[0], r)
	loads := clusterLoads(t, nodes[:2])
	r.Load = "stress -c 2 on each of the 2 survivors (ping, id_next, lcache) + 60 locks forwarded to owners"
	dead := nodes[2]
	dead.kill()
	killed := time.Now()
	r.Faults = "kill -9 one of 3 faeds"
	var lost []string
	for _, k := range keys {
		start := time.Now()
		ok, err := clients[0].Lock(bg, ctx(), "after-kill", k)
		d := time.Since(start)
		switch {
		case err != nil && !strings.Contains(err.Error(), dead.addr):
			t.Fatalf("lock %s after the kill: %v, want only the dead node's keys to fail, naming %s", k, err, dead.addr)
		case err != nil:
			lost = append(lost, k)
			if d > 500*time.Millisecond {
				t.Errorf("lock of the dead node's key %s failed after %s, want fast", k, d)
			}
		case ok:
			t.Fatalf("lock %s = true right after the kill: a key moved before the node's session expired", k)
		}
	}
	if len(lost) < 5 || len(lost) > 40 {
		t.Fatalf("%d of %d keys failed after killing one of 3 nodes, want about a third", len(lost), len(keys))
	}
	testenv.Eventually(t, 30*time.Second, "the dead node's keys to move", func() bool {
		ok, err := clients[0].Lock(bg, ctx(), "moved", lost[0])
		return err == nil && ok
	})
	r.Recover = round(time.Since(killed)) + " (its keys moved; session timeout 2s)"
	for _, k := range lost[1:] {
		if ok, err := clients[0].Lock(bg, ctx(), "moved", k); err != nil || !ok {
			t.Errorf("moved key %s: %v %v", k, ok, err)
		}
	}
	testenv.Eventually(t, 10*time.Second, "the survivors agreeing", func() bool { return ownersAgree(clients[:2]) == nil })
	line, failed := stopLoads(loads)
	r.Failed = fmt.Sprintf("%s; dead node's locks: %d of 60 failed fast, then moved", line, len(lost))
	if failed != 0 {
		t.Errorf("calls of the survivors failed: %s", line)
	}
	checkLeaks(t, nodes[0], r)
}
