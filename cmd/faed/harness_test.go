package main_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/testenv"
)

// faedBin is the faed binary under test, built once by TestMain with the
// faetest tag (fault injection, see fault_faetest.go) and -race when the tests
// run with -race.
var faedBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "faed-test-")
	if err != nil {
		panic(err)
	}
	faedBin = filepath.Join(dir, "faed")
	args := []string{"build", "-tags", "faetest", "-o", faedBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "-ldflags", "-X main.version=test -X main.buildID=testbuild", ".")
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building faed: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if plainFaed.bin != "" {
		os.RemoveAll(filepath.Dir(plainFaed.bin))
	}
	os.Exit(code)
}

// faed is one running faed process.
type faed struct {
	t        testing.TB
	cmd      *exec.Cmd
	out      *testenv.SyncBuffer
	dir      string
	rpcAddr  string // host:port, or the socket path
	httpAddr string
	unix     bool
	done     chan struct{}
	exitCode int
}

// mode is one protocol × transport × listener combination.
type mode struct {
	protocol string // binary | compact
	framed   bool
	unix     bool
}

func (m mode) String() string {
	s := m.protocol
	if m.framed {
		s += "-framed"
	} else {
		s += "-buffered"
	}
	if m.unix {
		return s + "-unix"
	}
	return s + "-tcp"
}

var allModes = []mode{
	{"binary", false, false}, {"binary", false, true}, {"binary", true, false}, {"binary", true, true},
	{"compact", false, false}, {"compact", false, true}, {"compact", true, false}, {"compact", true, true},
}

// config returns a faed.cf for m; rpcExtra and servantsExtra are added to the
// rpc and servants sections.
func (m mode) config(dir, rpcExtra, servantsExtra string) string {
	addr := "127.0.0.1:0"
	if !strings.Contains(servantsExtra, "lock:") {
		servantsExtra += "\n        lock: { expires: \"10s\" }"
	}
	if m.unix {
		addr = filepath.Join(dir, "faed.sock")
	}
	return fmt.Sprintf(`{
    http_listen_addr: "127.0.0.1:0"
    rpc: {
        listen_addr: %q
        protocol: %q
        framed: %v
        %s
    }
    servants: {
        idgen_worker_id: 7
        lcache: { max_items: 1000 }
        %s
    }
}`, addr, m.protocol, m.framed, rpcExtra, servantsExtra)
}

var startedRE = regexp.MustCompile(`msg="faed started".* rpc=(\S+).* http=(\S*)`)

// startFaedIn runs faed on the config text conf (written into dir as faed.cf)
// and waits until it serves. The process is killed at the end of the test.
func startFaedIn(t testing.TB, dir, conf string, args ...string) *faed {
	t.Helper()
	return startFaedBin(t, faedBin, dir, conf, args...)
}

// startFaedSession starts faed (binary, buffered, TCP) with servantsExtra in
// its servants section and opens a session.
func startFaedSession(t *testing.T, servantsExtra string) (*faed, *client) {
	t.Helper()
	m := allModes[0]
	dir := t.TempDir()
	f := startFaedIn(t, dir, m.config(dir, "", servantsExtra))
	return f, f.dial(t, m)
}

// startFaedBin is startFaedIn with the faed binary bin.
func startFaedBin(t testing.TB, bin, dir, conf string, args ...string) *faed {
	t.Helper()
	path := filepath.Join(dir, "faed.cf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &faed{t: t, out: new(testenv.SyncBuffer), dir: dir, done: make(chan struct{})}
	f.cmd = exec.Command(bin, append([]string{"-conf", path, "-lockfile", filepath.Join(dir, "faed.lock")}, args...)...)
	f.cmd.Stdout, f.cmd.Stderr = f.out, f.out
	f.cmd.Dir = dir // files faed names relatively (metrics_logfile) stay out of the repository
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		f.cmd.Wait()
		f.exitCode = f.cmd.ProcessState.ExitCode()
		close(f.done)
	}()
	t.Cleanup(func() {
		f.cmd.Process.Kill()
		<-f.done
		if t.Failed() {
			t.Logf("faed output:\n%s", f.out.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if m := startedRE.FindStringSubmatch(f.out.String()); m != nil {
			f.rpcAddr, f.httpAddr = m[1], m[2]
			f.unix = strings.Contains(f.rpcAddr, "/")
			return f
		}
		select {
		case <-f.done:
			t.Fatalf("faed exited with %d before serving:\n%s", f.exitCode, f.out.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("faed did not start in 20s:\n%s", f.out.String())
		}
	}
}

// stop sends sig and waits up to timeout for the exit; it returns the exit code.
func (f *faed) stop(sig syscall.Signal, timeout time.Duration) int {
	f.t.Helper()
	f.cmd.Process.Signal(sig)
	select {
	case <-f.done:
		return f.exitCode
	case <-time.After(timeout):
		f.t.Fatalf("faed did not exit within %s of %s", timeout, sig)
		return -1
	}
}

func (f *faed) network() string {
	if f.unix {
		return "unix"
	}
	return "tcp"
}

// dialRaw opens a plain connection to faed's RPC listener.
func (f *faed) dialRaw(t testing.TB) net.Conn {
	t.Helper()
	c, err := net.DialTimeout(f.network(), f.rpcAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// client is a Go Thrift client of one session.
type client struct {
	*rpc.FunServantClient
	trans thrift.TTransport
}

func (c *client) Close() { c.trans.Close() }

// dial opens a session in mode m, as the generated Go client does.
func (f *faed) dial(t testing.TB, m mode) *client {
	t.Helper()
	c, err := f.tryDial(m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func (f *faed) tryDial(m mode) (*client, error) {
	conf := &thrift.TConfiguration{ConnectTimeout: 5 * time.Second, SocketTimeout: 10 * time.Second}
	var sock *thrift.TSocket
	if f.unix {
		sock = thrift.NewTSocketFromAddrConf(&net.UnixAddr{Name: f.rpcAddr, Net: "unix"}, conf)
	} else {
		sock = thrift.NewTSocketConf(f.rpcAddr, conf)
	}
	var trans thrift.TTransport = thrift.NewTBufferedTransport(sock, 4096)
	if m.framed {
		trans = thrift.NewTFramedTransportConf(sock, conf)
	}
	var pf thrift.TProtocolFactory = thrift.NewTBinaryProtocolFactoryConf(conf)
	if m.protocol == "compact" {
		pf = thrift.NewTCompactProtocolFactoryConf(conf)
	}
	if err := trans.Open(); err != nil {
		return nil, err
	}
	return &client{rpc.NewFunServantClientFactory(trans, pf), trans}, nil
}

var ridSeq int64 = time.Now().UnixNano()

// ctx returns a valid Context with a fresh rid.
func ctx() *rpc.Context {
	return &rpc.Context{Rid: atomic.AddInt64(&ridSeq, 1), Reason: "test.call", UID: 42}
}

var bg = context.Background()

// wantErrContains fails unless err's text contains every part.
func wantErrContains(t testing.TB, what string, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want %q", what, parts)
		return
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %q does not contain %q", what, err, p)
		}
	}
}
