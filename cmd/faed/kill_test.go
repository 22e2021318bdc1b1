package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

// faed -k, SIGUSR1 and the stats line, through the faed binary.

// runKill runs faed -k on lockFile and returns its exit code and output.
func runKill(t *testing.T, lockFile string, args ...string) (int, string) {
	t.Helper()
	out, err := exec.Command(faedBin, append([]string{"-k", "-lockfile", lockFile}, args...)...).CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		t.Fatal(err)
	}
	return 0, string(out)
}

// TestKill: faed -k stops the faed of the lock file gracefully while a
// session is open (SIGTERM: drain, exit 0) and exits 0 once it has exited;
// -k again, with no faed running, exits 1 saying so.
func TestKill(t *testing.T) {
	m, dir := allModes[0], t.TempDir()
	f := startFaedIn(t, dir, m.config(dir, `shutdown_timeout: "10s"`, ""))
	c := f.dial(t, m)
	if _, err := c.Ping(bg, ctx()); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(dir, "faed.lock")
	start := time.Now()
	code, out := runKill(t, lock)
	t.Logf("faed -k took %s: %s", time.Since(start), strings.TrimSpace(out))
	if code != 0 || !regexp.MustCompile(`^faed -k: pid \d+ stopped in `).MatchString(out) {
		t.Fatalf("faed -k = %d, %q; want 0 and stopped", code, out)
	}
	// faed has exited when -k returns; the test's own Wait reaps it a moment later.
	select {
	case <-f.done:
	case <-time.After(2 * time.Second):
		t.Fatal("faed -k returned 0 while faed still runs")
	}
	if f.exitCode != 0 || !strings.Contains(f.out.String(), `msg="stop signal" signal=terminated`) ||
		!strings.Contains(f.out.String(), `msg="faed stopped"`) {
		t.Errorf("faed exited %d; want 0 after a drain on SIGTERM", f.exitCode)
	}
	code, out = runKill(t, lock)
	if code != 1 || !strings.Contains(out, "no faed runs: lock file "+lock+" does not exist") {
		t.Errorf("faed -k with no faed = %d, %q; want 1 and no faed runs", code, out)
	}
}

// TestKillStaleLockFile: a lock file that no process holds (left by a crash)
// names no running faed: -k exits 1 and sends no signal.
func TestKillStaleLockFile(t *testing.T) {
	lock := filepath.Join(t.TempDir(), "faed.lock")
	if err := os.WriteFile(lock, []byte("1\n"), 0o644); err != nil { // pid 1: must never be signalled
		t.Fatal(err)
	}
	code, out := runKill(t, lock)
	if code != 1 || !strings.Contains(out, "no faed runs: lock file "+lock+" is not locked (left by pid 1)") {
		t.Errorf("faed -k on a stale lock file = %d, %q; want 1 and not locked", code, out)
	}
}

// TestKillWaitBounded: when the faed does not exit within -kwait (frozen by
// SIGSTOP here, a fault no request can cause), -k exits 1 saying it still runs.
func TestKillWaitBounded(t *testing.T) {
	m, dir := allModes[0], t.TempDir()
	f := startFaedIn(t, dir, m.config(dir, "", ""))
	f.cmd.Process.Signal(syscall.SIGSTOP)
	code, out := runKill(t, filepath.Join(dir, "faed.lock"), "-kwait", "300ms")
	f.cmd.Process.Signal(syscall.SIGCONT)
	if code != 1 || !regexp.MustCompile(`pid \d+ still running 300ms after SIGTERM`).MatchString(out) {
		t.Errorf("faed -k on a frozen faed = %d, %q; want 1 and still running", code, out)
	}
	select { // the SIGTERM was delivered: it drains once thawed
	case <-f.done:
	case <-time.After(10 * time.Second):
		t.Fatal("faed did not exit after SIGCONT")
	}
}

// TestSIGUSR1Drains: SIGUSR1 stops faed as SIGTERM does (the original's
// graceful signal): drain and exit 0.
func TestSIGUSR1Drains(t *testing.T) {
	m, dir := allModes[0], t.TempDir()
	f := startFaedIn(t, dir, m.config(dir, "", ""))
	if code := f.stop(syscall.SIGUSR1, 10*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGUSR1, want 0", code)
	}
	for _, want := range []string{`msg="stop signal" signal="user defined signal 1"`, `msg=draining`, `msg="faed stopped"`} {
		if !strings.Contains(f.out.String(), want) {
			t.Errorf("output lacks %s", want)
		}
	}
}

// TestStatsLine: every rpc.stats_output_interval faed logs sessions, calls,
// failures and qps; the counts are exact (40 noop calls on one session).
func TestStatsLine(t *testing.T) {
	m, dir := allModes[0], t.TempDir()
	f := startFaedIn(t, dir, m.config(dir, `stats_output_interval: "200ms"`, ""))
	c := f.dial(t, m)
	for i := range 40 {
		if _, err := c.Noop(bg, int32(i)); err != nil {
			t.Fatal(err)
		}
	}
	line := regexp.MustCompile(`level=INFO msg="rpc stats" sessions=1 sessions_total=1 calls=40 failures=0 qps=(\S+)`)
	var qps []string
	testenv.Eventually(t, 10*time.Second, "a stats line with calls=40 and one with qps=0", func() bool {
		qps = qps[:0]
		for _, m := range line.FindAllStringSubmatch(f.out.String(), -1) {
			qps = append(qps, m[1])
		}
		return len(qps) >= 2 && qps[len(qps)-1] == "0"
	})
	if !regexp.MustCompile(`msg="rpc stats" .* qps=[1-9]`).MatchString(f.out.String()) {
		t.Errorf("no stats line with qps > 0 for the interval of the 40 calls:\n%s", f.out.String())
	}
}
