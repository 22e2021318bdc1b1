package clustertest

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

// Issue 8: a node whose idgen_worker_id is held by a live member does not
// register, and its id_next names both nodes; the first keeps issuing ids.
func TestWorkerIDConflict(t *testing.T) {
	zk := testenv.StartZooKeeper(t)
	a := startNode(t, "a", nodeConf(zk.Addr(), testenv.FreePort(t), 5, ""))
	testenv.Eventually(t, 20*time.Second, "a registered", func() bool { return registered(t, zk.Addr()) == 1 })
	b := startNode(t, "b", nodeConf(zk.Addr(), testenv.FreePort(t), 5, ""))
	cb := b.dial(t)
	testenv.Eventually(t, 20*time.Second, "b's id_next refused", func() bool {
		_, err := cb.IDNext(bg, ctx())
		return err != nil && strings.Contains(err.Error(), a.addr) && strings.Contains(err.Error(), b.addr)
	})
	if n := registered(t, zk.Addr()); n != 1 {
		t.Fatalf("%d nodes registered, want only the first of the two with worker id 5", n)
	}
	if _, err := a.dial(t).IDNext(bg, ctx()); err != nil {
		t.Fatalf("the first node's id_next: %v", err)
	}
}

// Issue 8: a node started while ZooKeeper is down serves at once as a
// one-node cluster (keyed calls run locally) and registers when ZooKeeper
// comes.
func TestStartWithoutZooKeeper(t *testing.T) {
	zk := testenv.StartZooKeeper(t)
	zk.Stop()
	n := startNode(t, "n", nodeConf(zk.Addr(), testenv.FreePort(t), 1, ""))
	c := n.dial(t)
	if ok, err := c.Lock(bg, ctx(), "why", "k"); err != nil || !ok {
		t.Fatalf("lock with ZooKeeper down: %v %v", ok, err)
	}
	zk.Start()
	testenv.Eventually(t, 30*time.Second, "the node registered once ZooKeeper is up", func() bool { return registered(t, zk.Addr()) == 1 })
}

// Issue 8: a node leaving on purpose (SIGTERM) marks itself leaving, peers drop
// it at once, and it answers what they already sent: no call through the
// other nodes fails while it goes.
func TestLeaveUnderLoad(t *testing.T) {
	_, nodes := startCluster(t, 3, "")
	var calls, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		c := nodes[w%2].dial(t)
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("leave:%d:%d", w, i)
				rid := ctx()
				if _, err := c.Lock(bg, rid, "load", key); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				} else if err := c.Unlock(bg, rid, "load", key); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				calls.Add(1)
			}
		})
	}
	testenv.Eventually(t, 10*time.Second, "calls flowing", func() bool { return calls.Load() > 200 })
	if code := nodes[2].stop(); code != 0 {
		t.Fatalf("leaving node exited %d", code)
	}
	from := calls.Load()
	testenv.Eventually(t, 10*time.Second, "calls after the leave", func() bool { return calls.Load() > from+500 })
	close(stop)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d calls failed while a node left on purpose; first: %v", n, calls.Load(), firstErr.Load())
	}
	waitAgree(t, nodes[:2], 10*time.Second)
}
