package clustertest

import (
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
	"github.com/fae-go/fae/peer"
)

// keysOwnedBy returns n lock keys (with prefix) that nodes[owner] owns on the
// ring of nodes.
func keysOwnedBy(nodes []*node, owner, n int, prefix string) []string {
	addrs := make([]string, len(nodes))
	for i, nd := range nodes {
		addrs[i] = nd.addr
	}
	ring := peer.NewRing(addrs)
	var keys []string
	for i := 0; len(keys) < n; i++ {
		k := fmt.Sprintf("%s:%d", prefix, i)
		if o, _ := ring.Owner(k); o == nodes[owner].addr {
			keys = append(keys, k)
		}
	}
	return keys
}

// 256 clients of node0 lock and unlock keys of their own that node1 owns:
// the calls share node0's pipelined connections to node1, and each client
// gets its own answers (a reply handed to another call would answer a lock
// with another key's state).
func TestPipelinedLocks(t *testing.T) {
	_, nodes := startCluster(t, 2, "")
	const clients = 256
	keys := keysOwnedBy(nodes, 1, clients, "pipe")
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		c := nodes[0].dial(t)
		wg.Go(func() {
			rid, key := ctx(), keys[i]
			for round := range 5 {
				for j, want := range []bool{true, false} {
					if ok, err := c.Lock(bg, rid, "pipe", key); err != nil || ok != want {
						errs <- fmt.Errorf("client %d round %d: lock %d of %s = %t, %v; want %t", i, round, j, key, ok, err, want)
						return
					}
				}
				if err := c.Unlock(bg, rid, "pipe", key); err != nil {
					errs <- fmt.Errorf("client %d: unlock: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Every key is free again on its owner.
	c1 := nodes[1].dial(t)
	for _, key := range keys[:8] {
		if ok, err := c1.Lock(bg, ctx(), "pipe", key); err != nil || !ok {
			t.Errorf("lock of %s on its owner after the unlocks = %t, %v", key, ok, err)
		}
	}
}

// A key's owner frozen (SIGSTOP) for less than its ZooKeeper session: locks
// forwarded to it fail within the proxy's io_timeout (plus the breaker's
// health check), saying they may or may not have run; after SIGCONT they
// succeed again, on a new connection.
func TestPipelinedLockOwnerFrozen(t *testing.T) {
	zk := testenv.StartZooKeeper(t)
	conf := func(worker int) string {
		return strings.Replace(strings.Replace(nodeConf(zk.Addr(), testenv.FreePort(t), worker, ""),
			`peer: { session_timeout: "2s" }`, `peer: { session_timeout: "20s" }`, 1),
			`io_timeout: "2s"`, `io_timeout: "500ms"`, 1)
	}
	nodes := []*node{startNode(t, "node0", conf(1)), startNode(t, "node1", conf(2))}
	waitAgree(t, nodes, 30*time.Second)
	keys := keysOwnedBy(nodes, 1, 9, "frozen")
	c := nodes[0].dial(t)
	if ok, err := c.Lock(bg, ctx(), "warm", keys[0]); err != nil || !ok {
		t.Fatalf("lock before the freeze = %t, %v", ok, err)
	}
	if err := nodes[1].cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "node1 stopped", func() bool { return testenv.ThreadsStopped(nodes[1].cmd.Process.Pid) == 1 })
	var wg sync.WaitGroup
	start := time.Now()
	for i, key := range keys[1:8] {
		cl := nodes[0].dial(t)
		wg.Go(func() {
			_, err := cl.Lock(bg, ctx(), "frozen", key)
			if err == nil || !strings.Contains(err.Error(), nodes[1].addr) || !strings.Contains(err.Error(), "may or may not have run") {
				t.Errorf("lock %d while the owner is frozen: %v; want an error naming it and saying the call may or may not have run", i, err)
			}
		})
	}
	wg.Wait()
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("locks failed after %s, want io_timeout 500ms plus a health check of at most 1s", took)
	}
	if err := nodes[1].cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// keys[1:8] may be held now: their locks may have run once node1 read them.
	testenv.Eventually(t, 15*time.Second, "locks forwarded to node1 again", func() bool {
		ok, err := c.Lock(bg, ctx(), "thawed", keys[8])
		return err == nil && ok
	})
}
