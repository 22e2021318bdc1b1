package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/faedtest"
	"github.com/fae-go/fae/internal/testenv"
)

// Tests against real faed processes on 127.0.0.1 (TCP and a unix socket),
// the shared backend servers of contrib/test-services, and a ZooKeeper of
// the test's own. The stress tool runs as the real binary, built by TestMain.

var faedBin, stressBin string

func TestMain(m *testing.M) {
	dir := faedtest.BuildMains("stress-test-", map[string]*string{"/cmd/faed": &faedBin, "/cmd/stress": &stressBin})
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// node is one faed process: RPC on a TCP port and a unix socket, HTTP API
// on HTTPAddr. Freeze and Thaw come from testenv.Server.
type node struct {
	*testenv.Server
	HTTPAddr string
	Sock     string
}

// startNode runs faed with rpc added to its rpc section, extra at the top
// level of its config and servants inside its servants section.
func startNode(t *testing.T, name, rpc, extra, servants string) *node {
	t.Helper()
	dir := t.TempDir()
	n := &node{HTTPAddr: testenv.FreeAddr(t), Sock: filepath.Join(dir, "faed.sock")}
	n.Server = testenv.Start(t, name, func(port int) []string {
		conf := filepath.Join(dir, "faed.cf")
		text := fmt.Sprintf(`{
    http_listen_addr: %q
    metrics_logfile: ""
    %s
    rpc: { listen_addr: ["127.0.0.1:%d", %q], shutdown_timeout: "1s", %s }
    servants: {
        lcache: { max_items: 100000 }
        %s
    }
}`, n.HTTPAddr, extra, port, n.Sock, rpc, servants)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return []string{faedBin, "-conf", conf, "-lockfile", "", "-level", "warn"}
	})
	// testenv.Start's probe connection is one session; faed counts it when it
	// accepts it, which may come after the test's first read of the counters.
	// faed binds its RPC listeners first (the probe gets in), its HTTP API
	// later (after joining the cluster): until then the API refuses.
	testenv.Eventually(t, 20*time.Second, name+" serving its HTTP API and counting the probe session", func() bool {
		resp, err := http.Get("http://" + n.HTTPAddr + "/engine/stat")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return n.stat(t).Sessions == 1
	})
	return n
}

// stat is faed's own count of calls and sessions (/engine/stat).
type stat struct{ Calls, Sessions int64 }

func (n *node) stat(t *testing.T) stat {
	t.Helper()
	var st struct {
		RPC struct {
			Calls    int64 `json:"calls_total"`
			Sessions int64 `json:"sessions_total"`
		} `json:"rpc"`
	}
	getJSON(t, "http://"+n.HTTPAddr+"/engine/stat", &st)
	return stat{st.RPC.Calls, st.RPC.Sessions}
}

// methodCalls is faed's fae_calls_total of method with outcome (ok, error, miss…).
func (n *node) methodCalls(t *testing.T, method, outcome string) int64 {
	t.Helper()
	resp, err := http.Get("http://" + n.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	want := fmt.Sprintf(`fae_calls_total{method=%q,outcome=%q} `, method, outcome)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), want); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return int64(f)
		}
	}
	t.Fatalf("/metrics has no %s", want)
	return 0
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %s", url, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("%s: %v\n%s", url, err, body)
	}
}

// result is one run of the stress binary.
type result struct {
	code           int
	stdout, stderr string
	rep            *Report // the -json report (nil without -json)
}

// stress runs the stress binary with args to its end.
func stress(t *testing.T, args ...string) result {
	t.Helper()
	p := startStress(t, args...)
	return p.wait(t)
}

// stressProc is a stress binary running.
type stressProc struct {
	cmd         *exec.Cmd
	args        []string
	out, errOut *testenv.SyncBuffer
}

func startStress(t *testing.T, args ...string) *stressProc {
	t.Helper()
	p := &stressProc{cmd: exec.Command(stressBin, args...), args: args, out: new(testenv.SyncBuffer), errOut: new(testenv.SyncBuffer)}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.errOut
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill() })
	return p
}

func (p *stressProc) wait(t *testing.T) result {
	t.Helper()
	p.cmd.Wait()
	r := result{code: p.cmd.ProcessState.ExitCode(), stdout: p.out.String(), stderr: p.errOut.String()}
	t.Logf("stress %s → %d\n%s%s", strings.Join(p.args, " "), r.code, r.stdout, tail(r.stderr, 2000))
	for _, a := range p.args {
		if a == "-json" {
			r.rep = new(Report)
			if err := json.Unmarshal([]byte(r.stdout), r.rep); err != nil {
				t.Fatalf("-json output: %v\n%s", err, r.stdout)
			}
		}
	}
	return r
}

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// waitFor polls until the process's stderr contains s (the run is under way).
func (p *stressProc) waitFor(t *testing.T, s string) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, "stress printing "+s, func() bool { return strings.Contains(p.errOut.String(), s) })
}

// wantErrors fails unless rep counts exactly the errors of want by kind
// (missing kinds: 0).
func wantErrors(t *testing.T, rep *Report, want map[string]int64) {
	t.Helper()
	for _, k := range kindNames {
		if got := rep.Errors[k].Count; got != want[k] {
			t.Errorf("%s errors: %d, want %d (first: %q)", k, got, want[k], rep.Errors[k].First)
		}
	}
}
