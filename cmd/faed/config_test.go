package main_test

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runFaed runs faed with args to its end and returns its output and exit code.
func runFaed(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(faedBin, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatal(err)
		}
	}
	return string(out), cmd.ProcessState.ExitCode()
}

func httpGet(t *testing.T, url string) (string, int) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode
}

func writeConf(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "faed.cf")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestConfigCheck: faed -t accepts the original sample unchanged (the original
// fae's faed.cf.sample, copied into testdata), our sample and the embedded
// default, and refuses bad configs with exit 2 and a message naming the file and
// the key.
func TestConfigCheck(t *testing.T) {
	for _, good := range []string{"testdata/original.cf.sample", "../../etc/faed.cf.sample"} {
		if out, code := runFaed(t, "-t", "-conf", good); code != 0 || !strings.Contains(out, "is good") {
			t.Errorf("faed -t -conf %s = %d %q", good, code, out)
		}
	}
	if out, code := runFaed(t, "-t"); code != 0 || !strings.Contains(out, "embedded default config") {
		t.Errorf("faed -t = %d %q", code, out)
	}
	const rpc = `rpc: { listen_addr: "127.0.0.1:0" }` + "\n"
	for _, tc := range []struct{ conf, want string }{
		{"{\n" + rpc + "bogus_key: 1\n}", "invalid keys: bogus_key"},
		{"{\nrpc: {\nlisten_addr: \":1\"\nbogus: 1\n}\n}", "'rpc' has invalid keys: bogus"},
		{"{\nrpc: {\nlisten_addr: \":1\"\nio_timeout: 4\n}\n}", "'rpc.io_timeout' want a duration string"},
		{"{\nrpc: {\nlisten_addr: \":1\"\nio_timeout: \"4 seconds\"\n}\n}", `'rpc.io_timeout' bad duration "4 seconds"`},
		{"{\nrpc: {\nlisten_addr: \":1\"\nmax_outstanding_sessions: \"many\"\n}\n}", "'rpc.max_outstanding_sessions' expected type 'int'"},
		{"{\nrpc: {\nlisten_addr: \":1\"\nmax_outstanding_sessions: 0\n}\n}", "rpc.max_outstanding_sessions: must be at least 1"},
		{"{\nrpc: {\nlisten_addr: \":1\"\nprotocol: \"json\"\n}\n}", `rpc.protocol: must be "binary", "compact" or "auto"`},
		{"{\n" + rpc + "servants: { idgen_worker_id: 32 }\n}", "servants.idgen_worker_id: must be 0..31, got 32"},
		{"{\n" + rpc + "servants: { mysql: { servers: [ { pool: \"a\", host: \"h\", db: \"d\", port: 99999 } ] } }\n}", "servants.mysql.servers[0].port: must be a port 1..65535"},
		{"{\n" + rpc + "servants: { mysql: { servers: [ { pool: \"a\", db: \"d\" } ] } }\n}", "servants.mysql.servers[0].host: required"},
		{"{\n" + rpc + "servants: { memcache: { hash_strategy: \"random\" } }\n}", "servants.memcache.hash_strategy: must be one of"},
		{"{\n" + rpc + "servants: { redis: { breaker: { failure_allowance: 0 } } }\n}", "servants.redis.breaker.failure_allowance: must be at least 1"},
		{"{\nservants: {}\n}", "rpc: required section is missing"},
		{"{\nrpc: { listen_addr: \":1\"", "syntax:"},
		{"{\n" + rpc + "cpu_num: \"lots\"\n}", `cpu_num: must be "auto", "max" or a number`},
	} {
		path := writeConf(t, tc.conf)
		out, code := runFaed(t, "-t", "-conf", path)
		if code != 2 || !strings.Contains(out, path) || !strings.Contains(out, tc.want) {
			t.Errorf("faed -t on %q:\n got %d %q\nwant 2 and a message with the file and %q", tc.conf, code, out, tc.want)
		}
		// faed itself refuses to start on it, with the same message.
		if out2, code := runFaed(t, "-conf", path, "-lockfile", ""); code != 2 || !strings.Contains(out2, tc.want) {
			t.Errorf("faed on a bad config = %d %q, want exit 2", code, out2)
		}
	}
}

// TestMissingConfigFile: a missing file is an error naming it, not an empty config.
func TestMissingConfigFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "faed.cf")
	out, code := runFaed(t, "-t", "-conf", missing)
	if code != 2 || !strings.Contains(out, missing) {
		t.Errorf("faed -t on a missing file = %d %q", code, out)
	}
}

// TestLockFile: a second faed with the same lock file refuses to start; a stale
// lock file left by a dead process does not block a restart.
func TestLockFile(t *testing.T) {
	dir := t.TempDir()
	lock := filepath.Join(dir, "faed.lock")
	// stale: a pid that is certainly not a running faed
	if err := os.WriteFile(lock, []byte("999999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := allModes[0]
	f := startFaedIn(t, dir, m.config(dir, "", "")) // uses dir/faed.lock
	pid, _ := os.ReadFile(lock)
	if strings.TrimSpace(string(pid)) != strconv.Itoa(f.cmd.Process.Pid) {
		t.Errorf("lock file holds %q, want faed's pid %d", pid, f.cmd.Process.Pid)
	}
	conf := writeConf(t, m.config(dir, "", ""))
	out, code := runFaed(t, "-conf", conf, "-lockfile", lock)
	if code != 1 || !strings.Contains(out, "another faed is running") {
		t.Errorf("second faed = %d %q, want exit 1, another faed is running", code, out)
	}
	if code := f.stop(syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
	if _, err := os.Stat(lock); !os.IsNotExist(err) {
		t.Errorf("lock file left after a clean exit: %v", err)
	}
}
