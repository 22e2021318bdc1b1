// Package faedtest runs real faed processes for the tests of the operator
// tools (cmd/pingfae, cmd/faeconf) and of the PHP client, and registers them
// in a test's ZooKeeper the way a node registers itself. For tests only.
package faedtest

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/internal/testenv"
	"github.com/fae-go/fae/peer"
)

// Module is the module path; Build takes packages below it.
const Module = "github.com/fae-go/fae"

// Build compiles the main package pkg (an import path, e.g.
// Module+"/cmd/faed") into dir and returns the binary's path. faed's ping
// then answers "ver:test, build:testbuild, …". Errors carry go build's output.
func Build(dir, pkg string) (string, error) {
	bin := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, "-ldflags", "-X main.version=test -X main.buildID=testbuild", pkg)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}

// BuildMains is a TestMain's build of the commands it runs: each of cmds
// (paths under the module, e.g. "/cmd/faed") is compiled with Build into one
// new temporary directory (named after pattern, as os.MkdirTemp), and *bin
// set to its binary. It returns the directory, to remove after m.Run, and
// exits the test binary with go build's output on a failure.
func BuildMains(pattern string, bins map[string]*string) string {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		panic(err)
	}
	for cmd, bin := range bins {
		if *bin, err = Build(dir, Module+cmd); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	return dir
}

// Node is one faed process of a test: a single-node faed on 127.0.0.1 (no
// etcd_servers, no HTTP API), serving Protocol ("binary", "compact" or "auto") over
// the framed transport when Framed, the buffered one otherwise.
type Node struct {
	*testenv.Server
	Protocol string
	Framed   bool
	WorkerID int // servants.idgen_worker_id: faed's ping names it as myid
}

// Start runs the faed binary bin as a Node on a free port and returns once
// it accepts connections; it is stopped when the test ends. Its log is in
// the server's directory (testenv.Server).
func Start(t testing.TB, bin, protocol string, framed bool, worker int) *Node {
	t.Helper()
	return StartWith(t, bin, protocol, framed, worker, Extra{})
}

// Extra is what StartWith adds to a Node's faed.cf: Top at the top level
// (e.g. `dashboard_listen_addr: "127.0.0.1:9102"`), Servants inside the
// servants section (e.g. a redis section).
type Extra struct{ Top, Servants string }

// StartWith is Start with extra keys in the node's faed.cf.
func StartWith(t testing.TB, bin, protocol string, framed bool, worker int, extra Extra) *Node {
	t.Helper()
	dir := t.TempDir()
	n := &Node{Protocol: protocol, Framed: framed, WorkerID: worker}
	n.Server = testenv.Start(t, fmt.Sprintf("faed-%d", worker), func(port int) []string {
		conf := filepath.Join(dir, "faed.cf")
		text := fmt.Sprintf(`{
    http_listen_addr: ""
    %s
    rpc: { listen_addr: "127.0.0.1:%d", protocol: %q, framed: %v, shutdown_timeout: "2s" }
    servants: {
        idgen_worker_id: %d
        lcache: { max_items: 1000 }
        %s
    }
}`, extra.Top, port, protocol, framed, worker, extra.Servants)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return []string{bin, "-conf", conf, "-lockfile", "", "-level", "warn"}
	})
	return n
}

// Kill kills the process (SIGKILL) and returns once its port refuses
// connections.
func (n *Node) Kill(t testing.TB) {
	t.Helper()
	if err := syscall.Kill(n.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, n.Addr()+" refusing connections", func() bool {
		c, err := net.DialTimeout("tcp", n.Addr(), time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
}

// Info is the record faed would register for n (binary buffered for protocol auto: engine.Config.PeerWire).
func (n *Node) Info() peer.MemberInfo {
	cfg := engine.Config{Protocol: n.Protocol, Framed: n.Framed}
	protocol, framed := cfg.PeerWire()
	return peer.MemberInfo{Version: "test", Pid: n.Pid(), Started: time.Now().UTC().Truncate(time.Second),
		Protocol: protocol, Framed: framed, IdgenWorkerID: n.WorkerID}
}

// Session is the ZooKeeper session timeout of the registries of Register:
// the shortest a test ZooKeeper (testenv.ZooKeeperTick 500 ms) grants.
const Session = time.Second

// Register registers addr with info under root in the ZooKeeper at zkAddr,
// through a peer.Registry of its own standing for the node's registration
// (faed registers itself only when etcd_servers is set). It returns once the
// registry sees itself a member; the registry is closed when the test ends.
func Register(t testing.TB, zkAddr, root, addr string, info peer.MemberInfo) *peer.Registry {
	t.Helper()
	var cfg peer.Config
	cfg.SetDefaults()
	cfg.Root, cfg.SessionTimeout = root, Session
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	r, err := peer.New([]string{zkAddr}, cfg, log.With("node", addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if err := r.Register(info, addr); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, addr+" registered", r.Registered)
	return r
}

// RegisterNode is Register with n's address and record.
func RegisterNode(t testing.TB, zkAddr, root string, n *Node) *peer.Registry {
	t.Helper()
	return Register(t, zkAddr, root, n.Addr(), n.Info())
}
