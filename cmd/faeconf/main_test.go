package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/faedtest"
	"github.com/fae-go/fae/internal/testenv"
	"github.com/fae-go/fae/peer"
)

// Tests against a ZooKeeper of the test's own (testenv.StartZooKeeper) where
// peer.Registry instances stand for the nodes (the addresses need no
// process: faeconf never connects to the nodes). faeconf runs in-process
// through run, with -session-timeout 1s.

const session = "1s"

// faeconf runs faeconf with args until the test ends; its log is returned.
func faeconf(t *testing.T, args ...string) *testenv.SyncBuffer {
	t.Helper()
	log := new(testenv.SyncBuffer)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() { done <- run(ctx, args, log) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("faeconf exited with %d", code)
		}
		if t.Failed() {
			t.Logf("faeconf log:\n%s", log.String())
		}
	})
	return log
}

// info is a node's record: protocol, framed and worker id as given.
func info(protocol string, framed bool, worker int) peer.MemberInfo {
	return peer.MemberInfo{Version: "test", Pid: 1000 + worker, Started: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC),
		Protocol: protocol, Framed: framed, IdgenWorkerID: worker}
}

// readList reads and decodes the JSON file at path.
func readList(path string) (nodeList, error) {
	var l nodeList
	b, err := os.ReadFile(path)
	if err != nil {
		return l, err
	}
	err = json.Unmarshal(b, &l)
	return l, err
}

// waitNodes polls the JSON file at path until its nodes' addresses are want.
func waitNodes(t *testing.T, path string, want ...string) nodeList {
	t.Helper()
	var l nodeList
	testenv.Eventually(t, 20*time.Second, path+" listing "+strings.Join(want, " "), func() bool {
		var err error
		l, err = readList(path)
		return err == nil && reflect.DeepEqual(l.addrs(), want)
	})
	return l
}

// phpValue is what PHP's require of the PHP file returns, as JSON decoded in Go.
func phpValue(t *testing.T, path string) any {
	t.Helper()
	out, err := exec.Command("php", "-r", `echo json_encode(require $argv[1]);`, path).CombinedOutput()
	if err != nil {
		t.Fatalf("php require %s: %v\n%s", path, err, out)
	}
	var v any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("php's json_encode of %s: %v\n%s", path, err, out)
	}
	return v
}

func jsonValue(t *testing.T, path string) any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// watchFile reads path every millisecond until the test ends and fails the
// test if a read finds anything but no file or a complete node list with at
// least one node: the rewrites are atomic and never empty.
func watchFile(t *testing.T, path string) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bad []string
	reads := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			l, err := readList(path)
			switch {
			case errors.Is(err, fs.ErrNotExist):
			case err != nil:
				bad = append(bad, err.Error())
			case len(l.Nodes) == 0:
				bad = append(bad, "an empty node list")
			default:
				reads++
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		wg.Wait()
		if len(bad) > 0 {
			t.Errorf("a reader of %s saw %d bad versions, e.g. %s", path, len(bad), bad[0])
		}
		t.Logf("%d complete reads of %s", reads, path)
	})
}

// TestFileFollowsMembership: both files list the live nodes with their
// protocol and transport, follow a node's leaving and return, are never seen
// partly written, and are not rewritten empty when the last node goes.
func TestFileFollowsMembership(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	const root = "/fae"
	dir := t.TempDir()
	jsonPath, phpPath := filepath.Join(dir, "fae_nodes.json"), filepath.Join(dir, "fae_nodes.php")
	watchFile(t, jsonPath)
	log := faeconf(t, "-zk", z.Addr(), "-root", root, "-json", jsonPath, "-php", phpPath, "-session-timeout", session)

	a, b := testenv.FreeAddr(t), testenv.FreeAddr(t)
	bInfo := info("compact", true, 2)
	bInfo.Version = `it's a \ test` // quoted in the PHP form
	ra := faedtest.Register(t, z.Addr(), root, a, info("binary", false, 1))
	rb := faedtest.Register(t, z.Addr(), root, b, bInfo)
	want := []string{a, b}
	if b < a {
		want = []string{b, a}
	}
	l := waitNodes(t, jsonPath, want...)
	byAddr := map[string]node{}
	for _, n := range l.Nodes {
		byAddr[n.Addr] = n
	}
	if n := byAddr[a]; n.Protocol != "binary" || n.Framed || n.IdgenWorkerID != 1 || n.Pid != 1001 {
		t.Errorf("node %s: %+v, want binary, buffered, worker 1, pid 1001", a, n)
	}
	if n := byAddr[b]; n.Protocol != "compact" || !n.Framed || n.Version != bInfo.Version || n.Started != "2026-11-30T12:00:00Z" {
		t.Errorf("node %s: %+v, want compact, framed, version %q", b, n, bInfo.Version)
	}
	if l.Root != root || !reflect.DeepEqual(l.ZooKeeper, []string{z.Addr()}) {
		t.Errorf("root %q zookeeper %v", l.Root, l.ZooKeeper)
	}
	testenv.Eventually(t, 10*time.Second, "the PHP form returning the JSON form's array", func() bool {
		return reflect.DeepEqual(phpValue(t, phpPath), jsonValue(t, jsonPath))
	})

	rb.Close() // b leaves: its ephemeral znode goes with its session
	waitNodes(t, jsonPath, a)
	rb = faedtest.Register(t, z.Addr(), root, b, bInfo) // and comes back
	waitNodes(t, jsonPath, want...)

	rb.Close()
	waitNodes(t, jsonPath, a)
	st, err := os.Stat(phpPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm()&0o044 != 0o044 {
		t.Errorf("%s has mode %v: php-fpm's user must read it", phpPath, st.Mode())
	}
	testenv.Eventually(t, 10*time.Second, "the PHP form listing "+a, func() bool {
		return reflect.DeepEqual(phpValue(t, phpPath), jsonValue(t, jsonPath))
	})

	// The last node leaves: nothing is written, the log says so.
	before, _ := os.ReadFile(jsonPath)
	beforePHP, _ := os.ReadFile(phpPath)
	ra.Close()
	testenv.Eventually(t, 10*time.Second, "faeconf logging the empty membership", func() bool {
		return strings.Contains(log.String(), "no live node left: keeping the last node list")
	})
	if after, _ := os.ReadFile(jsonPath); !bytes.Equal(after, before) {
		t.Errorf("the JSON file changed when the last node left:\n%s", after)
	}
	if after, _ := os.ReadFile(phpPath); !bytes.Equal(after, beforePHP) {
		t.Errorf("the PHP file changed when the last node left:\n%s", after)
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, ".*")); len(tmp) > 0 {
		t.Errorf("temporary files left behind: %v", tmp)
	}
	writes := strings.Count(log.String(), "node list written")
	faedtest.Register(t, z.Addr(), root, a, info("binary", false, 1)) // back: written again
	testenv.Eventually(t, 10*time.Second, "the node list written again", func() bool {
		return strings.Count(log.String(), "node list written") > writes
	})
	waitNodes(t, jsonPath, a)
}

// TestFileKeptWhileZooKeeperAway: faeconf started while ZooKeeper is down
// leaves an existing file alone and writes once ZooKeeper answers; ZooKeeper
// stopped for longer than the session timeouts leaves the file as it was.
func TestFileKeptWhileZooKeeperAway(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	const root = "/fae"
	a, b := testenv.FreeAddr(t), testenv.FreeAddr(t)
	faedtest.Register(t, z.Addr(), root, a, info("binary", false, 1))
	faedtest.Register(t, z.Addr(), root, b, info("binary", true, 2))
	want := []string{a, b}
	if b < a {
		want = []string{b, a}
	}
	z.Stop()

	jsonPath := filepath.Join(t.TempDir(), "fae_nodes.json")
	old := []byte(`{"generated": "by a previous run", "nodes": [{"addr": "127.0.0.1:1"}]}` + "\n")
	if err := os.WriteFile(jsonPath, old, 0o644); err != nil {
		t.Fatal(err)
	}
	faeconf(t, "-zk", z.Addr(), "-root", root, "-json", jsonPath, "-session-timeout", session)
	time.Sleep(2500 * time.Millisecond) // waits out faeconf's first tries (session timeout 1s): nothing to see
	if got, _ := os.ReadFile(jsonPath); !bytes.Equal(got, old) {
		t.Fatalf("faeconf changed the file while ZooKeeper was down:\n%s", got)
	}

	z.Start()
	testenv.Eventually(t, 30*time.Second, "ZooKeeper back", func() bool { return testenv.ZooKeeperOK(z.Addr()) })
	waitNodes(t, jsonPath, want...)
	written, _ := os.ReadFile(jsonPath)

	z.Stop()
	// Waits out the sessions (1 s, nodes' and faeconf's) and faeconf's removal
	// delay (1 s) several times over: the file must not follow.
	time.Sleep(4 * time.Second)
	if got, _ := os.ReadFile(jsonPath); !bytes.Equal(got, written) {
		t.Fatalf("the file changed while ZooKeeper was down:\nbefore %s\nafter %s", written, got)
	}
	z.Start()
	testenv.Eventually(t, 30*time.Second, "ZooKeeper back", func() bool { return testenv.ZooKeeperOK(z.Addr()) })
	waitNodes(t, jsonPath, want...)
}

func TestFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-json", "x.json"}, "-zk is required"},
		{[]string{"-zk", "127.0.0.1:2181"}, "give -json FILE, -php FILE or both"},
		{[]string{"-zk", "127.0.0.1", "-json", "x"}, "-zk[0]: not a ZooKeeper host:port"},
		{[]string{"-zk", "127.0.0.1:2181", "-json", "x", "-root", "fae"}, "-root: \"fae\" is not an absolute ZooKeeper path"},
		{[]string{"-zk", "127.0.0.1:2181", "-json", "x", "-session-timeout", "10ms"}, "-session-timeout: must be 1s..5m0s"},
		{[]string{"-zk", "127.0.0.1:2181", "-json", "x", "-level", "loud"}, "-level"},
		{[]string{"-zk", "127.0.0.1:2181", "-json", "x", "extra"}, "unexpected arguments"},
	} {
		var out bytes.Buffer
		if code := run(context.Background(), c.args, &out); code != 2 || !strings.Contains(out.String(), c.want) {
			t.Errorf("%q: exit status %d, output %q; want 2 and %q", c.args, code, out.String(), c.want)
		}
	}
}
