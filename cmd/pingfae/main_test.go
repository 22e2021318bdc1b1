package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/fae-go/fae/internal/faedtest"
	"github.com/fae-go/fae/internal/testenv"
)

// Tests against real faed processes (single-node, on 127.0.0.1) and a
// ZooKeeper of the test's own, where peer.Registry instances register the
// faed addresses as faed itself does. pingfae runs in-process through run.

var faedBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pingfae-test-")
	if err != nil {
		panic(err)
	}
	if faedBin, err = faedtest.Build(dir, faedtest.Module+"/cmd/faed"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// pingfae runs pingfae with args and returns its exit status and output.
func pingfae(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	t.Logf("pingfae %s → %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
	return code, out.String() + errOut.String()
}

// answerLine matches the line of ping #seq answered by node n.
func answerLine(n *faedtest.Node, seq int) *regexp.Regexp {
	mode := n.Protocol + ", buffered"
	if n.Framed {
		mode = n.Protocol + ", framed"
	}
	return regexp.MustCompile(fmt.Sprintf(`(?m)^%s \(%s\) #%d: \d+\.\d{3}ms: ver:test, build:testbuild, myid:%d, uptime:\S+$`,
		regexp.QuoteMeta(n.Addr()), mode, seq, n.WorkerID))
}

func failedLine(addr, cause string) *regexp.Regexp {
	return regexp.MustCompile(fmt.Sprintf(`(?m)^%s \(.*\) #1: FAILED after \d+\.\d{3}ms: .*%s`, regexp.QuoteMeta(addr), cause))
}

func wantMatch(t *testing.T, out string, res ...*regexp.Regexp) {
	t.Helper()
	for _, re := range res {
		if !re.MatchString(out) {
			t.Errorf("output lacks a line matching %s:\n%s", re, out)
		}
	}
}

func TestPingOneNode(t *testing.T) {
	n := faedtest.Start(t, faedBin, "binary", false, 3)
	code, out := pingfae(t, "-addr", n.Addr(), "-loops", "3")
	if code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	wantMatch(t, out, answerLine(n, 1), answerLine(n, 2), answerLine(n, 3),
		regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(n.Addr())+`: 3/3 answered, round trip min/avg/max [\d.]+ms/[\d.]+ms/[\d.]+ms$`),
		regexp.MustCompile(`(?m)^1 node: 1 ok, 0 failed$`))

	code, out = pingfae(t, "-host", "127.0.0.1", "-port", fmt.Sprint(n.Port))
	if code != 0 {
		t.Errorf("-host -port: exit status %d, want 0", code)
	}
	wantMatch(t, out, answerLine(n, 1))
}

// TestPingProtocolFlags: -protocol and -framed choose what pingfae speaks; a
// node serving something else does not answer it.
func TestPingProtocolFlags(t *testing.T) {
	n := faedtest.Start(t, faedBin, "compact", true, 4)
	code, out := pingfae(t, "-addr", n.Addr(), "-protocol", "compact", "-framed")
	if code != 0 {
		t.Errorf("compact framed: exit status %d, want 0", code)
	}
	wantMatch(t, out, answerLine(n, 1))

	code, out = pingfae(t, "-addr", n.Addr(), "-timeout", "500ms")
	if code != 1 {
		t.Errorf("binary buffered against a compact framed node: exit status %d, want 1", code)
	}
	wantMatch(t, out, failedLine(n.Addr(), ""), regexp.MustCompile(`(?m)^1 node: 0 ok, 1 failed: `+regexp.QuoteMeta(n.Addr())+`$`))
}

func TestPingBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-protocol", "json"}, {"-loops", "0"}, {"-zk", "127.0.0.1:1", "-addr", "127.0.0.1:2"}, {"-port", "0"}, {"extra"},
	} {
		if code, out := pingfae(t, args...); code != 2 || !strings.Contains(out, "pingfae: ") {
			t.Errorf("%q: exit status %d, want 2 and a message; output %q", args, code, out)
		}
	}
}

// TestPingCluster: with -zk, pingfae pings every registered node in the
// protocol and transport its record advertises; a killed node and a frozen
// one are named in the output and make the exit status 1, within -timeout.
func TestPingCluster(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	const root = "/fae/ping"
	a := faedtest.Start(t, faedBin, "binary", false, 1)
	b := faedtest.Start(t, faedBin, "compact", true, 2)
	faedtest.RegisterNode(t, z.Addr(), root, a)
	faedtest.RegisterNode(t, z.Addr(), root, b)

	code, out := pingfae(t, "-zk", z.Addr(), "-root", root, "-loops", "2")
	if code != 0 {
		t.Errorf("two live nodes: exit status %d, want 0", code)
	}
	wantMatch(t, out, answerLine(a, 1), answerLine(a, 2), answerLine(b, 1), answerLine(b, 2),
		regexp.MustCompile(`(?m)^2 nodes: 2 ok, 0 failed$`))

	b.Kill(t) // still registered: its registry lives in this process
	code, out = pingfae(t, "-zk", z.Addr(), "-root", root)
	if code != 1 {
		t.Errorf("one node killed: exit status %d, want 1", code)
	}
	wantMatch(t, out, answerLine(a, 1), failedLine(b.Addr(), "connection refused"),
		regexp.MustCompile(`(?m)^2 nodes: 1 ok, 1 failed: `+regexp.QuoteMeta(b.Addr())+`$`))

	c := faedtest.Start(t, faedBin, "binary", true, 3)
	faedtest.RegisterNode(t, z.Addr(), root, c)
	c.Freeze()
	start := time.Now()
	code, out = pingfae(t, "-zk", z.Addr(), "-root", root, "-timeout", "300ms")
	took := time.Since(start)
	if code != 1 {
		t.Errorf("one node killed, one frozen: exit status %d, want 1", code)
	}
	failed := []string{b.Addr(), c.Addr()}
	sort.Strings(failed) // nodes go in address order
	wantMatch(t, out, answerLine(a, 1), failedLine(b.Addr(), "connection refused"), failedLine(c.Addr(), "i/o timeout"),
		regexp.MustCompile(`(?m)^3 nodes: 1 ok, 2 failed: `+regexp.QuoteMeta(strings.Join(failed, " "))+`$`))
	if took > 3*time.Second { // the nodes are pinged at once: about one -timeout, plus the ZooKeeper read
		t.Errorf("pingfae took %s with -timeout 300ms", took)
	}
	c.Thaw()
}

// TestPingForeignAndEmpty: a child of the root that is not this
// implementation's record (an original fae registers with empty data) is
// pinged with -protocol/-framed and noted; an empty root is an error.
func TestPingForeignAndEmpty(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	const root = "/fae"
	conn, events, err := zk.Connect([]string{z.Addr()}, 2*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := waitSession(ctx, events); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Create(root, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	code, out := pingfae(t, "-zk", z.Addr(), "-root", root)
	if code != 1 || !strings.Contains(out, "no node registered under /fae") {
		t.Errorf("empty root: exit status %d, want 1 and a message", code)
	}

	n := faedtest.Start(t, faedBin, "binary", false, 5)
	if _, err := conn.Create(root+"/"+n.Addr(), nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Create(root+"/not-an-address", []byte("x"), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	code, out = pingfae(t, "-zk", z.Addr(), "-root", root)
	if code != 0 {
		t.Errorf("one original-style node: exit status %d, want 0", code)
	}
	wantMatch(t, out, regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(n.Addr())+
		` \(binary, buffered; empty record \(an original fae\?\): pinged as -protocol/-framed say\) #1: [\d.]+ms: ver:test`),
		regexp.MustCompile(`(?m)^1 node: 1 ok, 0 failed$`))
}

// TestPingZooKeeperDown: no ZooKeeper answering → exit status 1 with a
// message, within -zk-timeout.
func TestPingZooKeeperDown(t *testing.T) {
	start := time.Now()
	code, out := pingfae(t, "-zk", testenv.FreeAddr(t), "-zk-timeout", "1s")
	if code != 1 || !strings.Contains(out, "no session within 1s") {
		t.Errorf("exit status %d, want 1 and a message naming the bound", code)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %s with -zk-timeout 1s", took)
	}
}
