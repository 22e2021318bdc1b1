package php_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

// retryNode is a faed for the retry tests: binary protocol, buffered
// transport, its HTTP API on Stat's address, rpcExtra added to its rpc section.
type retryNode struct {
	*testenv.Server
	http string
}

func startRetryNode(t *testing.T, worker int, rpcExtra string) *retryNode {
	t.Helper()
	dir := t.TempDir()
	n := &retryNode{http: testenv.FreeAddr(t)}
	n.Server = testenv.Start(t, fmt.Sprintf("faed-%d", worker), func(port int) []string {
		conf := filepath.Join(dir, "faed.cf")
		text := fmt.Sprintf(`{
    http_listen_addr: %q
    rpc: { listen_addr: "127.0.0.1:%d", protocol: "binary", framed: false, shutdown_timeout: "2s", %s }
    servants: { idgen_worker_id: %d, lcache: { max_items: 1000 } }
}`, n.http, port, rpcExtra, worker)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return []string{faedBin, "-conf", conf, "-lockfile", "", "-level", "warn"}
	})
	return n
}

// stat is the node's /engine/stat "rpc" section.
func (n *retryNode) stat(t *testing.T) map[string]any {
	t.Helper()
	resp, err := http.Get("http://" + n.http + "/engine/stat")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct{ RPC map[string]any }
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st.RPC
}

// retryResult is the last line of retry_call.php.
type retryResult struct {
	Node   string            `json:"node"`
	Failed map[string]string `json:"failed"`
	Value  string            `json:"value"`
	Error  string            `json:"error"`
}

// retryCall runs retry_call.php on nodes (tried in that order, no probe).
// With between non-nil the script first pings the first node and waits:
// between runs, then the script makes its call. It returns the script's result.
func retryCall(t *testing.T, recvMs int, between func(), nodes ...string) retryResult {
	t.Helper()
	wait := "0"
	if between != nil {
		wait = "1"
	}
	cmd := exec.Command("php", "retry_call.php", strings.Join(nodes, ","), fmt.Sprint(recvMs), wait)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := new(testenv.SyncBuffer)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	sc := bufio.NewScanner(stdout)
	if between != nil {
		if !sc.Scan() || !strings.Contains(sc.Text(), `"ready"`) {
			cmd.Process.Kill()
			t.Fatalf("retry_call.php did not get ready: %q, stderr %s", sc.Text(), stderr.String())
		}
		between()
		io.WriteString(stdin, "go\n")
	}
	if !sc.Scan() {
		t.Fatalf("retry_call.php printed no result; stderr %s", stderr.String())
	}
	var r retryResult
	if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
		t.Fatalf("retry_call.php printed %q: %v", sc.Text(), err)
	}
	return r
}

// TestRetryOverloaded: a node whose one session slot is held answers the
// page's first call "faed overloaded:"; the call is retried once on the next
// node and succeeds there, and the refused node counted one refusal.
func TestRetryOverloaded(t *testing.T) {
	requirePHP(t)
	a := startRetryNode(t, 1, `max_outstanding_sessions: 1, accept_wait: "0s"`)
	b := startRetryNode(t, 2, "")
	hold, err := net.Dial("tcp", a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	testenv.Eventually(t, 10*time.Second, "the held session active", func() bool {
		return a.stat(t)["sessions_active"] == float64(1)
	})

	r := retryCall(t, 2000, nil, a.Addr(), b.Addr())
	if r.Error != "" || r.Value != "v" || r.Node != b.Addr() {
		t.Errorf("result %+v: want the call served by %s", r, b.Addr())
	}
	if why := r.Failed[a.Addr()]; !strings.Contains(why, "lc_set never ran: faed overloaded: 1 sessions") {
		t.Errorf("%s given up as %q, want the overload refusal of lc_set", a.Addr(), why)
	}
	refused := a.stat(t)["refused"].(map[string]any)
	if refused["overloaded"] != float64(1) {
		t.Errorf("%s refused %v, want overloaded 1", a.Addr(), refused)
	}
}

// TestRetryDrainClosed: SIGTERM closes the page's session, idle between two
// calls, after the drain's grace; the page's next call finds the connection
// closed before any reply byte, is retried on the next node and succeeds.
func TestRetryDrainClosed(t *testing.T) {
	requirePHP(t)
	a := startRetryNode(t, 1, "")
	b := startRetryNode(t, 2, "")
	r := retryCall(t, 2000, func() {
		a.Stop() // SIGTERM; returns once faed has drained and exited
	}, a.Addr(), b.Addr())
	if r.Error != "" || r.Value != "v" || r.Node != b.Addr() {
		t.Errorf("result %+v: want the call retried on %s", r, b.Addr())
	}
	if why := r.Failed[a.Addr()]; !strings.Contains(why, "lc_set never ran: connection closed before any reply byte") {
		t.Errorf("%s given up as %q, want lc_set on a closed connection", a.Addr(), why)
	}
}

// TestNoRetryAfterTimeout: a call sent to a node that then answers nothing
// (frozen with SIGSTOP) may have run: it times out and the caller gets the
// error; the next node never sees a call.
func TestNoRetryAfterTimeout(t *testing.T) {
	requirePHP(t)
	a := startRetryNode(t, 1, "")
	b := startRetryNode(t, 2, "")
	r := retryCall(t, 300, func() { a.Freeze() }, a.Addr(), b.Addr())
	a.Thaw()
	if !strings.Contains(r.Error, "timed out reading") || r.Node != a.Addr() || len(r.Failed) != 0 {
		t.Errorf("result %+v: want lc_set's timeout on %s, no retry", r, a.Addr())
	}
	if calls := b.stat(t)["calls_total"]; calls != float64(0) { // its sessions count testenv's readiness dial
		t.Errorf("%s saw %v calls, want none", b.Addr(), calls)
	}
}
