package clustertest

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

// lockAll locks keys through c and fails unless every lock is taken.
func lockAll(t *testing.T, c *client, keys []string) {
	t.Helper()
	for _, k := range keys {
		if ok, err := c.Lock(bg, ctx(), "setup", k); err != nil || !ok {
			t.Fatalf("lock %s: %v %v", k, ok, err)
		}
	}
}

// Issue 8: kill -9 one node: its keys fail fast (naming it) while its znode
// lives; once its session expires they move to the survivors; after a
// restart on the same address they return to it.
func TestNodeKilled(t *testing.T) {
	_, nodes := startCluster(t, 3, "")
	c := nodes[0].dial(t)
	keys := make([]string, 60)
	for i := range keys {
		keys[i] = fmt.Sprintf("kill:%d:%d", time.Now().UnixNano(), i)
	}
	lockAll(t, c, keys)
	nodes[2].kill()

	// The dead node's keys fail (the breaker opens after failure_allowance 2),
	// the others answer "held".
	var dead []string
	for _, k := range keys {
		ok, err := c.Lock(bg, ctx(), "after-kill", k)
		switch {
		case err != nil:
			if !strings.Contains(err.Error(), nodes[2].addr) {
				t.Fatalf("lock %s after the kill: %v, want only the dead node's keys to fail (naming %s)", k, err, nodes[2].addr)
			}
			dead = append(dead, k)
		case ok:
			t.Fatalf("lock %s = true right after the kill: a key moved before the node's session expired", k)
		}
	}
	if len(dead) < 5 || len(dead) > 40 {
		t.Fatalf("%d of %d keys failed after killing one of 3 nodes, want about a third", len(dead), len(keys))
	}
	start := time.Now()
	_, err := c.Lock(bg, ctx(), "fast", dead[0])
	if err == nil || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("lock of a dead node's key: %v after %s, want a fast failure", err, time.Since(start))
	}
	t.Logf("dead node's key: %v", err)

	// Its session expires (2 s) and peers drop it after the removal delay: its
	// keys move to the survivors, where they are free.
	testenv.Eventually(t, 30*time.Second, "the dead node's keys to move", func() bool {
		ok, err := c.Lock(bg, ctx(), "moved", dead[0])
		return err == nil && ok
	})
	for _, k := range dead[1:] {
		if ok, err := c.Lock(bg, ctx(), "moved", k); err != nil || !ok {
			t.Fatalf("moved key %s: %v %v", k, ok, err)
		}
	}
	waitAgree(t, nodes[:2], 10*time.Second)

	// Back on the same address: its keys return to it (its lock table is empty).
	nodes[2].start()
	waitAgree(t, nodes, 30*time.Second)
	for _, k := range dead {
		if ok, err := c.Lock(bg, ctx(), "returned", k); err != nil || !ok {
			t.Fatalf("key %s after the node's return: %v %v, want it owned by the fresh node", k, ok, err)
		}
	}
}

// Issue 8: ZooKeeper stopped → every node keeps serving and forwarding on the
// last membership, and registers again once it is back.
func TestZooKeeperAway(t *testing.T) {
	zk, nodes := startCluster(t, 3, "")
	zk.Stop()
	away := time.Now()
	for time.Since(away) < 30*time.Second { // the 30 s, well past the 2 s session timeout
		waitAgree(t, nodes, 5*time.Second)
	}
	zk.Start()
	testenv.Eventually(t, 30*time.Second, "ZooKeeper back", func() bool { return testenv.ZooKeeperOK(zk.Addr()) })
	// The registrations are there again (a fresh client lists them).
	testenv.Eventually(t, 30*time.Second, "every node registered again", func() bool { return registered(t, zk.Addr()) == 3 })
	waitAgree(t, nodes, 30*time.Second)
}

// Issue 8: a node frozen past its session timeout is dropped by the others;
// resumed, it registers again and all three agree.
func TestNodeFrozen(t *testing.T) {
	zk, nodes := startCluster(t, 3, "")
	if err := nodes[2].cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the frozen node dropped", func() bool { return registered(t, zk.Addr()) == 2 })
	waitAgree(t, nodes[:2], 30*time.Second)
	if err := nodes[2].cmd.Process.Signal(syscall.SIGCONT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the resumed node registered again", func() bool { return registered(t, zk.Addr()) == 3 })
	waitAgree(t, nodes, 30*time.Second)
}
