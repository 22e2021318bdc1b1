package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

var dropReportRE = regexp.MustCompile(`faed: log /dev/full: (\d+) records \((\d+) bytes\) dropped since start; last cause: (.*)`)

// lastDropReport is the record count of the last drop report in out (-1: none) and its cause.
func lastDropReport(out string) (int, string) {
	m := dropReportRE.FindAllStringSubmatch(out, -1)
	if m == nil {
		return -1, ""
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	return n, m[len(m)-1][3]
}

// TestLogToDevFull: faed -log /dev/full (every log write fails with ENOSPC,
// as on a full disk) starts, answers pings and failing calls that log
// promptly, reports the dropped records on stderr, and at the stop reports a
// count grown by the session and call lines it could not write; it exits 0.
func TestLogToDevFull(t *testing.T) {
	m := allModes[1] // binary, buffered, unix socket: its address is known without the log
	dir := t.TempDir()
	conf := filepath.Join(dir, "faed.cf")
	if err := os.WriteFile(conf, []byte(m.config(dir, "", "")), 0o644); err != nil {
		t.Fatal(err)
	}
	out := new(testenv.SyncBuffer)
	cmd := exec.Command(faedBin, "-conf", conf, "-lockfile", filepath.Join(dir, "faed.lock"),
		"-log", "/dev/full", "-level", "debug")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() { cmd.Wait(); done <- cmd.ProcessState.ExitCode() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("faed output:\n%s", out)
		}
	})
	f := &faed{t: t, rpcAddr: filepath.Join(dir, "faed.sock"), unix: true}
	testenv.Eventually(t, 20*time.Second, "faed serving on its socket", func() bool {
		c, err := f.tryDial(m)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	first := -1
	testenv.Eventually(t, 10*time.Second, "a drop report on stderr", func() bool {
		first, _ = lastDropReport(out.String())
		return first > 0
	})

	const sessions = 200
	var slowest time.Duration
	for i := range sessions {
		c, err := f.tryDial(m)
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		start := time.Now()
		if got, err := c.Ping(bg, ctx()); err != nil || !strings.HasPrefix(got, "ver:test,") {
			t.Fatalf("session %d: ping = %q, %v", i, got, err)
		}
		_, err = c.McGet(bg, ctx(), "pool", "k")
		wantErrContains(t, "McGet without memcache", err, "memcache is not configured")
		slowest = max(slowest, time.Since(start))
		c.Close() // its session end is logged at debug
	}
	if slowest > 2*time.Second {
		t.Errorf("slowest ping + failing call took %s with the log on a full disk", slowest)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code %d, want 0", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("faed did not exit within 20s of SIGTERM")
	}
	last, cause := lastDropReport(out.String())
	if last < first+sessions {
		t.Errorf("last drop report: %d records, want at least %d (first report %d + %d session ends)",
			last, first+sessions, first, sessions)
	}
	if cause != "write /dev/full: no space left on device" {
		t.Errorf("last cause %q, want ENOSPC", cause)
	}
}
