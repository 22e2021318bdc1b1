package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/testenv"
)

// node is one faed process of a case: RPC on a fixed 127.0.0.1 port (so a
// restarted node keeps its address), its HTTP API on a free one.
type node struct {
	t        *testing.T
	name     string
	dir      string
	conf     string
	args     []string // extra command-line flags (-log /dev/full)
	addr     string
	http     string
	cmd      *exec.Cmd
	out      *testenv.SyncBuffer
	done     chan struct{}
	exitCode int
	held     int64 // sessions the test itself keeps open (dial)
	base     int64 // sessions open at the baseline (the test's, peers' forwarding)
}

var startedRE = regexp.MustCompile(`msg="faed started".* rpc=(\S+).* http=(\S*)`)

// nodeConf is a faed.cf listening on port: top at the top level, rpc in the
// rpc section, servants in servants.
func nodeConf(port, worker int, top, rpcExtra, servants string) string {
	return fmt.Sprintf(`{
    http_listen_addr: "127.0.0.1:0"
    metrics_logfile: ""
    %s
    rpc: { listen_addr: "127.0.0.1:%d", shutdown_timeout: "5s", %s }
    servants: {
        idgen_worker_id: %d
        lcache: { max_items: 100000 }
        lock: { expires: "30s" }
        %s
    }
}`, top, port, rpcExtra, worker, servants)
}

// startNode runs faed on conf and returns once it serves; it is killed when
// the test ends.
func startNode(t *testing.T, name, conf string, args ...string) *node {
	t.Helper()
	return startNodeAt(t, name, "", "", conf, args...)
}

// startNodeAt is startNode for a faed whose RPC and HTTP addresses conf
// fixes (rpcAddr, httpAddr): it is waited for on them, not on its log.
func startNodeAt(t *testing.T, name, rpcAddr, httpAddr, conf string, args ...string) *node {
	t.Helper()
	n := &node{t: t, name: name, dir: t.TempDir(), conf: conf, args: args, addr: rpcAddr, http: httpAddr}
	n.start()
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			t.Logf("%s output (tail):\n%s", n.name, tail(n.out.String(), 4000))
		}
	})
	return n
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func (n *node) start() {
	n.t.Helper()
	path := filepath.Join(n.dir, "faed.cf")
	if err := os.WriteFile(path, []byte(n.conf), 0o644); err != nil {
		n.t.Fatal(err)
	}
	n.out, n.done = new(testenv.SyncBuffer), make(chan struct{})
	n.cmd = exec.Command(faedBin, append([]string{"-conf", path, "-lockfile", ""}, n.args...)...)
	n.cmd.Stdout, n.cmd.Stderr, n.cmd.Dir = n.out, n.out, n.dir
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	go func(cmd *exec.Cmd, done chan struct{}) {
		cmd.Wait()
		n.exitCode = cmd.ProcessState.ExitCode()
		close(done)
	}(n.cmd, n.done)
	if n.http != "" { // its log elsewhere (-log): the addresses were fixed in the config
		testenv.Eventually(n.t, 30*time.Second, n.name+" serving", func() bool {
			if n.exited() {
				n.t.Fatalf("%s exited:\n%s", n.name, n.out.String())
			}
			return !refused(n.addr) && n.getJSON("/engine/stat", new(engineStat)) == nil
		})
		return
	}
	testenv.Eventually(n.t, 30*time.Second, n.name+" serving", func() bool {
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

func (n *node) pid() int { return n.cmd.Process.Pid }

// kill ends the process with SIGKILL (SIGCONT first: it may be frozen).
func (n *node) kill() {
	select {
	case <-n.done:
		return
	default:
	}
	n.cmd.Process.Signal(syscall.SIGCONT)
	n.cmd.Process.Kill()
	<-n.done
}

// exited reports whether the process has ended.
func (n *node) exited() bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}

// api is the HTTP client of the tests: no keep-alive, so that reading a
// node's figures leaves no connection (nor goroutine) of its own in faed.
var api = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// getJSON decodes the node's HTTP API answer at path into v.
func (n *node) getJSON(path string, v any) error {
	resp, err := api.Get("http://" + n.http + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (n *node) mustJSON(path string, v any) {
	n.t.Helper()
	if err := n.getJSON(path, v); err != nil {
		n.t.Fatal(err)
	}
}

// goroutines is faed's count (/engine/runtime) less the session goroutines
// waiting for a next session (/engine/stat rpc.idle_goroutines: kept for
// reuse, at most 128 a listener, not a leak).
func (n *node) goroutines() int {
	n.t.Helper()
	var rt struct{ Goroutines int }
	n.mustJSON("/engine/runtime", &rt)
	var st struct {
		RPC struct {
			Idle int `json:"idle_goroutines"`
		} `json:"rpc"`
	}
	n.mustJSON("/engine/stat", &st)
	return rt.Goroutines - st.RPC.Idle
}

// fds is the number of open file descriptors of the process (/proc/<pid>/fd):
// sockets to clients and backends, listeners, logs.
func (n *node) fds() int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", n.pid()))
	if err != nil {
		n.t.Fatal(err)
	}
	return len(ents)
}

// rpcStat is the rpc section of /engine/stat.
type rpcStat struct {
	Calls    int64 `json:"calls_total"`
	Failed   int64 `json:"calls_failed"`
	Active   int64 `json:"sessions_active"`
	Sessions int64 `json:"sessions_total"`
	Refused  map[string]int64
}

type engineStat struct {
	RPC rpcStat
	Log map[string]struct {
		Records int64 `json:"dropped_records"`
		Bytes   int64 `json:"dropped_bytes"`
	}
}

func (n *node) stat() engineStat {
	n.t.Helper()
	var st engineStat
	n.mustJSON("/engine/stat", &st)
	return st
}

// poolStat is one server of /svt/stat "pools".
type poolStat struct {
	Backend, Pool, Server string
	Open                  int
	Breaker               string
}

// backendStat is one line of /svt/stat "backends": faed's count of the
// operations on one server by outcome kind (pool.Kind labels).
type backendStat struct {
	Backend, Pool, Server, Op string
	Kinds                     map[string]int64
}

func (n *node) svtStat() (pools []poolStat, backends []backendStat) {
	n.t.Helper()
	var st struct {
		Pools    []poolStat
		Backends []backendStat
	}
	n.mustJSON("/svt/stat", &st)
	return st.Pools, st.Backends
}

// breaker is the state of backend's breakers ("closed", "half-open",
// "open"; "" when the backend has no server).
func (n *node) breaker(backend string) string {
	pools, _ := n.svtStat()
	for _, p := range pools {
		if p.Backend == backend {
			return p.Breaker
		}
	}
	return ""
}

// failedKinds sums faed's failed operations on backend by kind (ok and miss left out).
func (n *node) failedKinds(backend string) map[string]int64 {
	_, bs := n.svtStat()
	out := map[string]int64{}
	for _, b := range bs {
		if b.Backend != backend {
			continue
		}
		for k, v := range b.Kinds {
			if k != "ok" && k != "miss" {
				out[k] += v
			}
		}
	}
	return out
}

// client is one Thrift session (binary, buffered).
type client struct {
	*rpc.FunServantClient
	trans thrift.TTransport
}

func (c *client) Close() { c.trans.Close() }

func dialAddr(addr string, timeout time.Duration) (*client, error) {
	conf := &thrift.TConfiguration{ConnectTimeout: timeout, SocketTimeout: timeout}
	trans := thrift.NewTBufferedTransport(thrift.NewTSocketConf(addr, conf), 4096)
	if err := trans.Open(); err != nil {
		return nil, err
	}
	return &client{rpc.NewFunServantClientFactory(trans, thrift.NewTBinaryProtocolFactoryConf(conf)), trans}, nil
}

// dial opens a session to n (closed when the test ends).
func (n *node) dial() *client {
	n.t.Helper()
	c, err := dialAddr(n.addr, 10*time.Second)
	if err != nil {
		n.t.Fatal(err)
	}
	n.held++
	n.t.Cleanup(c.Close)
	return c
}

var ridSeq atomic.Int64

func init() { ridSeq.Store(time.Now().UnixNano()) }

func ctx() *rpc.Context { return &rpc.Context{Rid: ridSeq.Add(1), Reason: "chaos"} }

var bg = context.Background()

// appError is err as a TApplicationException, the typed answer faed gives a
// backend failure, or nil.
func appError(err error) thrift.TApplicationException {
	var ae thrift.TApplicationException
	if errors.As(err, &ae) {
		return ae
	}
	return nil
}

// refused reports whether a connection to addr is refused now.
func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err != nil
}

// bsonDoc is the BSON document {key: value}.
func bsonDoc(key string, value any) []byte {
	b, err := bson.Marshal(bson.D{{Key: key, Value: value}})
	if err != nil {
		panic(err)
	}
	return b
}
