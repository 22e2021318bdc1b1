package main_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMemcacheServerFrozen: a memcached the test owns is frozen with SIGSTOP
// (a real hung server: the kernel still completes TCP handshakes, so dials
// succeed, but nothing answers). Each call times out after timeout; the
// breaker's health check ("version" on a connection of its own) fails too, so
// after failure_allowance calls the breaker opens and calls fail at once with
// "circuit open". After SIGCONT calls succeed again within retry_interval.
func TestMemcacheServerFrozen(t *testing.T) {
	srv := newMemcachedServer(t)
	t.Cleanup(func() { srv.cmd.Process.Signal(syscall.SIGCONT) }) // runs before srv's own Stop
	const timeout, retry = 300 * time.Millisecond, time.Second
	_, c := startKV(t, mcSection("standard", 1, `timeout: "300ms", breaker: { failure_allowance: 2, retry_interval: "1s" }`,
		mcSrv{"p", srv.Addr()}))
	k := kvKey(t, "k")
	if ok, err := c.McSet(bg, ctx(), "p", k, mcData("v", 0), 60); !ok || err != nil {
		t.Fatalf("mc_set = %v, %v", ok, err)
	}
	get := func() (time.Duration, error) {
		start := time.Now()
		_, err := c.McGet(bg, ctx(), "p", k)
		return time.Since(start), err
	}
	srv.cmd.Process.Signal(syscall.SIGSTOP)
	waitThreads(t, srv.cmd.Process.Pid, true)
	at := `memcache get "` + k + `": pool "p", server ` + srv.Addr() + ": "
	for i := 0; i < 2; i++ {
		d, err := get()
		wantErrContains(t, "mc_get of a frozen server", err, at+"timeout: ", "i/o timeout")
		// timeout, then a health check of at most 1 s.
		if d < timeout || d > timeout+2*time.Second {
			t.Errorf("call %d failed after %s, want about timeout (%s) plus a health check", i, d, timeout)
		}
	}
	d, err := get()
	wantErrContains(t, "mc_get with the breaker open", err, at+"circuit open")
	if d > 100*time.Millisecond {
		t.Errorf("refusal took %s, want it at once", d)
	}
	srv.cmd.Process.Signal(syscall.SIGCONT)
	waitThreads(t, srv.cmd.Process.Pid, false)
	resumed := time.Now()
	eventually(t, retry+time.Second, "calls to succeed after SIGCONT", func() bool {
		_, err := get()
		if err != nil && !strings.Contains(err.Error(), "circuit open") {
			t.Errorf("%s after SIGCONT: %v; want circuit open until the probe, then success",
				time.Since(resumed).Round(time.Millisecond), err)
		}
		return err == nil
	})
	t.Logf("back %s after SIGCONT (retry_interval %s)", time.Since(resumed).Round(time.Millisecond), retry)
}

// waitThreads polls the states of the threads of process pid
// (/proc/<pid>/task/*/stat) until all are stopped ("T"), or none is: SIGSTOP
// and SIGCONT take effect asynchronously, and a memcached worker thread
// already woken by a request may still answer it.
func waitThreads(t testing.TB, pid int, stopped bool) {
	t.Helper()
	eventually(t, 5*time.Second, fmt.Sprintf("process %d stopped = %v", pid, stopped), func() bool {
		stats, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		for _, f := range stats {
			b, err := os.ReadFile(f)
			i := strings.LastIndexByte(string(b), ')')
			if err != nil || i < 0 || i+2 >= len(b) || (b[i+2] == 'T') != stopped {
				return false
			}
		}
		return len(stats) > 0
	})
}
