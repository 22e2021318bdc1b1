package chaos

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/fae-go/fae/internal/testenv"
)

// page is one php-cli run of contrib/php/retry_call.php: a php-fpm page
// whose session to the first node is idle between its calls.
type page struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
	errs  *testenv.SyncBuffer
}

// retryResult is the last line of retry_call.php.
type retryResult struct {
	Node   string            `json:"node"`
	Failed map[string]string `json:"failed"`
	Value  string            `json:"value"`
	Error  string            `json:"error"`
}

// phpDir is contrib/php of the repository.
func phpDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "contrib", "php")
}

// startPage runs a page on nodes (tried in that order) and returns once it
// has pinged the first one and waits, its session idle.
func startPage(t *testing.T, nodes ...string) *page {
	t.Helper()
	p := &page{errs: new(testenv.SyncBuffer)}
	p.cmd = exec.Command("php", "retry_call.php", strings.Join(nodes, ","), "2000", "1")
	p.cmd.Dir = phpDir()
	p.cmd.Stderr = p.errs
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("php-cli (make deps installs it): %v", err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	p.out = bufio.NewScanner(stdout)
	if !p.out.Scan() || !strings.Contains(p.out.Text(), `"ready"`) {
		t.Fatalf("retry_call.php did not get ready: %q, stderr %s", p.out.Text(), p.errs.String())
	}
	return p
}

// finish lets the page make its call and returns its result.
func (p *page) finish(t *testing.T) retryResult {
	t.Helper()
	io.WriteString(p.stdin, "go\n")
	if !p.out.Scan() {
		t.Fatalf("retry_call.php printed no result; stderr %s", p.errs.String())
	}
	var r retryResult
	if err := json.Unmarshal(p.out.Bytes(), &r); err != nil {
		t.Fatalf("retry_call.php printed %q: %v", p.out.Text(), err)
	}
	return r
}

// TestSIGTERMUnderLoad: SIGTERM to one of 2 nodes under load. No call faed
// has read fails (stress: no call answered with an error, none timed out;
// sessions of 10 calls in a row that began before the signal end whole);
// php pages idle between calls have their session closed after the drain's
// grace and FaeClient.php retries their next call once on the other node,
// so no page fails; new connections are refused; the node leaves ZooKeeper
// before its listener closes. Goroutines and descriptors: of the survivor.
func TestSIGTERMUnderLoad(t *testing.T) {
	if _, err := exec.LookPath("php"); err != nil {
		t.Fatalf("php-cli is not installed (make deps installs it): %v", err)
	}
	r := newRow(t, "SIGTERM under load")
	zks, nodes, _ := startCluster(t, 2)
	a, b := nodes[0], nodes[1]
	baseline(t, b, r)
	pages := make([]*page, pick(3, 10))
	for i := range pages {
		pages[i] = startPage(t, a.addr, b.addr)
	}
	l := startLoad(t, "stress", "-addr", a.addr, "-c", "4", "-d", "10m", "-x", fmt.Sprint(xPing|xIDNext|xLcache))
	var spanning, midFail, signalledAt atomic.Int64
	var firstMid atomic.Value
	stopWorkers := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { sessionWorker(a.addr, stopWorkers, &signalledAt, &spanning, &midFail, &firstMid) })
	}
	calls0 := a.stat().RPC.Calls
	testenv.Eventually(t, 10*time.Second, "load running", func() bool { return a.stat().RPC.Calls > calls0+200 })
	r.Load = fmt.Sprintf("stress -c 4 + 4 sessions of 10 calls in a row + %d php pages idle between calls, on the node signalled", len(pages))

	leave := watchLeave(t, zks.Addr(), a.addr)
	signalled := time.Now()
	signalledAt.Store(signalled.UnixNano())
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(20 * time.Second):
		t.Fatal("faed did not exit within 20s of SIGTERM")
	}
	exited := time.Since(signalled)
	leftZK, refusedAt := leave()
	close(stopWorkers)
	wg.Wait()
	rep := l.stop()
	r.Faults = fmt.Sprintf("SIGTERM; left ZooKeeper after %s, refused connections after %s, exited %d after %s",
		round(leftZK.Sub(signalled)), round(refusedAt.Sub(signalled)), a.exitCode, round(exited))
	if a.exitCode != 0 {
		t.Errorf("exit code %d, want 0", a.exitCode)
	}
	if leftZK.After(refusedAt) {
		t.Errorf("the node refused connections %s before it left ZooKeeper, want it to leave first", leftZK.Sub(refusedAt))
	}
	retried := finishPages(t, pages, a.addr, b.addr)
	r.Failed = fmt.Sprintf("stress: %s; sessions across the signal %d, failed mid-session %d; php pages: %d of %d retried on the other node, 0 failed",
		rep, spanning.Load(), midFail.Load(), retried, len(pages))
	if e := rep.Errors["call"].Count + rep.Errors["timeout"].Count; e != 0 {
		t.Errorf("stress: %s: a call faed read failed: %s", rep, rep.firsts())
	}
	if midFail.Load() != 0 {
		t.Errorf("%d sessions failed mid-session: %v", midFail.Load(), firstMid.Load())
	}
	if spanning.Load() == 0 {
		t.Errorf("no session was in flight across the SIGTERM: the case proved nothing")
	}
	testenv.Eventually(t, 10*time.Second, "the survivor listing only itself", func() bool { return peersAgree(t, nodes[1:]) == nil })
	r.Recover = round(exited) + " (drained and exited)"
	checkLeaks(t, b, r)
}

// watchLeave watches, from now, node's znode in the ZooKeeper at zkAddr
// and its RPC port; the function it returns waits until the znode is gone
// and the port refuses connections, and returns when each happened (polled
// every 2 ms).
func watchLeave(t *testing.T, zkAddr, node string) func() (leftZK, refusedAt time.Time) {
	t.Helper()
	conn, _, err := zk.Connect([]string{zkAddr}, 2*time.Second, zk.WithLogInfo(false), zk.WithLogger(quiet{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	var left, ref time.Time
	done := make(chan struct{})
	go func() {
		defer close(done)
		testenv.Poll(time.Minute, func() bool {
			if ok, _, err := conn.Exists("/fae/" + node); left.IsZero() && err == nil && !ok {
				left = time.Now()
			}
			if ref.IsZero() && refused(node) {
				ref = time.Now()
			}
			return !left.IsZero() && !ref.IsZero()
		})
	}()
	return func() (time.Time, time.Time) {
		<-done
		if left.IsZero() || ref.IsZero() {
			t.Fatalf("within a minute: left ZooKeeper at %v, refused connections at %v", left, ref)
		}
		return left, ref
	}
}

// finishPages lets every page make its call and checks that each was
// retried on next after the call on first never ran; it returns how many.
func finishPages(t *testing.T, pages []*page, first, next string) int {
	t.Helper()
	retried := 0
	for i, p := range pages {
		res := p.finish(t)
		switch {
		case res.Error != "" || res.Value != "v" || res.Node != next:
			t.Errorf("page %d: %+v, want its call retried on %s", i, res, next)
		case !strings.Contains(res.Failed[first], "never ran"):
			t.Errorf("page %d: %s given up as %q, want a call that never ran", i, first, res.Failed[first])
		default:
			retried++
		}
	}
	return retried
}

// sessionWorker runs sessions of 10 calls in a row (5 ms apart, a page's
// think time) on addr until stop: a call that fails after the session's
// first answer is a call faed read and failed. spanning counts the sessions
// that began before signalled (unix ns, 0 before the signal) and ended whole
// after it.
func sessionWorker(addr string, stop chan struct{}, signalled, spanning, midFail *atomic.Int64, first *atomic.Value) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		c, err := dialAddr(addr, 2*time.Second)
		if err != nil {
			time.Sleep(5 * time.Millisecond) // back off: the node is going away
			continue
		}
		before := signalled.Load() == 0
		for i := range 10 {
			if _, err := c.IDNext(bg, ctx()); err != nil {
				if i > 0 {
					midFail.Add(1)
					first.CompareAndSwap(nil, err.Error())
				}
				break
			}
			if i == 9 && before && signalled.Load() != 0 {
				spanning.Add(1)
			}
			time.Sleep(5 * time.Millisecond) // think time: the workload
		}
		c.Close()
	}
}
