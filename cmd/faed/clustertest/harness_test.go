package clustertest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/testenv"
)

// faedBin is the faed binary under test, built once by TestMain (with -race
// when the tests run with it).
var faedBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "faed-cluster-")
	if err != nil {
		panic(err)
	}
	faedBin = filepath.Join(dir, "faed")
	args := []string{"build", "-o", faedBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "-ldflags", "-X main.version=cluster -X main.buildID=clustertest", "..")
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building faed: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// node is one faed process of a test cluster.
type node struct {
	t        *testing.T
	protocol string // binary (default), compact, or auto (called in binary)
	framed   bool
	name     string
	dir      string
	conf     string
	addr     string // its RPC address, also what it advertises
	http     string // its HTTP API address
	cmd      *exec.Cmd
	out      *testenv.SyncBuffer
	done     chan struct{}
}

var startedRE = regexp.MustCompile(`msg="faed started".* rpc=(\S+).* http=(\S*)`)

// startNode runs faed on conf (its rpc.listen_addr must be a fixed 127.0.0.1
// port, so that a restarted node keeps its address).
func startNode(t *testing.T, name, conf string) *node {
	t.Helper()
	return startNodeMode(t, name, "binary", false, conf)
}

// startNodeMode is startNode for a node serving protocol and framed (which
// conf must say too).
func startNodeMode(t *testing.T, name, protocol string, framed bool, conf string) *node {
	t.Helper()
	n := &node{t: t, name: name, dir: t.TempDir(), conf: conf, protocol: protocol, framed: framed}
	n.start()
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", n.name, n.out.String())
		}
	})
	return n
}

func (n *node) start() {
	n.t.Helper()
	path := filepath.Join(n.dir, "faed.cf")
	if err := os.WriteFile(path, []byte(n.conf), 0o644); err != nil {
		n.t.Fatal(err)
	}
	n.out = new(testenv.SyncBuffer)
	n.done = make(chan struct{})
	n.cmd = exec.Command(faedBin, "-conf", path, "-lockfile", "")
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	n.cmd.Dir = n.dir // files faed names relatively (metrics_logfile) stay out of the repository
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(n.cmd, n.done)
	testenv.Eventually(n.t, 20*time.Second, n.name+" serving", func() bool {
		select {
		case <-n.done:
			n.t.Fatalf("%s exited:\n%s", n.name, n.out.String())
		default:
		}
		m := startedRE.FindStringSubmatch(n.out.String())
		if m != nil {
			n.addr, n.http = m[1], m[2]
		}
		return m != nil
	})
}

// kill ends the process with SIGKILL (no leaving: its znode lives until its
// session expires).
func (n *node) kill() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	select {
	case <-n.done:
		return
	default:
	}
	n.cmd.Process.Signal(syscall.SIGCONT)
	n.cmd.Process.Kill()
	<-n.done
}

// stop sends SIGTERM and waits for the exit code.
func (n *node) stop() int {
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
		return n.cmd.ProcessState.ExitCode()
	case <-time.After(20 * time.Second):
		n.t.Fatalf("%s did not exit after SIGTERM", n.name)
		return -1
	}
}

// client is a Thrift session to a node (binary, buffered).
type client struct {
	*rpc.FunServantClient
	trans thrift.TTransport
}

func (n *node) dial(t *testing.T) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", n.addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", n.name, err)
	}
	var trans thrift.TTransport = thrift.NewTSocketFromConnConf(conn, &thrift.TConfiguration{SocketTimeout: 10 * time.Second})
	if n.framed {
		trans = thrift.NewTFramedTransportConf(trans, nil)
	} else {
		trans = thrift.NewTBufferedTransport(trans, 4096)
	}
	var pf thrift.TProtocolFactory = thrift.NewTBinaryProtocolFactoryConf(nil)
	if n.protocol == "compact" {
		pf = thrift.NewTCompactProtocolFactoryConf(nil)
	}
	c := &client{FunServantClient: rpc.NewFunServantClient(thrift.NewTStandardClient(pf.GetProtocol(trans), pf.GetProtocol(trans))), trans: trans}
	t.Cleanup(func() { trans.Close() })
	return c
}

var ridSeq atomic.Int64

func ctx() *rpc.Context {
	return &rpc.Context{Rid: ridSeq.Add(1) + time.Now().UnixNano()%1000000*1000, Reason: "cluster.test"}
}

var bg = context.Background()

// nodeConf is the config of a cluster node listening on port, registered in
// the ZooKeeper at zk; servantsExtra goes into servants.
func nodeConf(zk string, port, worker int, servantsExtra string) string {
	return nodeConfRPC(zk, port, worker, "", servantsExtra)
}

// nodeConfRPC is nodeConf with rpcExtra added to the rpc section.
func nodeConfRPC(zk string, port, worker int, rpcExtra, servantsExtra string) string {
	return fmt.Sprintf(`{
    etcd_servers: [%q]
    peer: { session_timeout: "2s" }
    http_listen_addr: "127.0.0.1:0"
    rpc: {
        listen_addr: "127.0.0.1:%d"
        session_timeout: "0s"
        io_timeout: "0s"
        %s
    }
    servants: {
        idgen_worker_id: %d
        lock: { expires: "30s" }
        proxy: { io_timeout: "2s", borrow_timeout: "1s", breaker: { failure_allowance: 2, retry_interval: "500ms" } }
        %s
    }
}`, zk, port, rpcExtra, worker, servantsExtra)
}

// startCluster starts a private ZooKeeper and n faed nodes registered in it,
// and waits until every node routes by the same n-member ring.
func startCluster(t *testing.T, n int, servantsExtra string) (*testenv.Server, []*node) {
	t.Helper()
	zk := testenv.StartZooKeeper(t)
	nodes := make([]*node, n)
	for i := range nodes {
		nodes[i] = startNode(t, fmt.Sprintf("node%d", i), nodeConf(zk.Addr(), testenv.FreePort(t), i+1, servantsExtra))
	}
	waitAgree(t, nodes, 30*time.Second)
	return zk, nodes
}

// waitAgree polls until every node in nodes routes probe keys to one owner:
// a lock taken through one node is found held through every other.
func waitAgree(t *testing.T, nodes []*node, timeout time.Duration) {
	t.Helper()
	clients := make([]*client, len(nodes))
	for i, n := range nodes {
		clients[i] = n.dial(t)
	}
	round := 0
	testenv.Eventually(t, timeout, "the nodes to agree on key owners", func() bool {
		round++
		for k := range 24 {
			key := fmt.Sprintf("agree:%d:%d:%d", time.Now().UnixNano(), round, k)
			if ok, err := clients[0].Lock(bg, ctx(), "probe", key); err != nil || !ok {
				return false
			}
			for _, c := range clients[1:] {
				if ok, err := c.Lock(bg, ctx(), "probe", key); err != nil || ok {
					return false
				}
			}
		}
		return true
	})
}

func asAppException(err error, ae *thrift.TApplicationException) bool {
	e, ok := err.(thrift.TApplicationException)
	if ok {
		*ae = e
	}
	return ok
}

// registered counts the nodes registered under /fae in the ZooKeeper at addr
// (-1 when ZooKeeper does not answer).
func registered(t *testing.T, addr string) int {
	t.Helper()
	return testenv.ZooKeeperChildren(addr, "/fae")
}
