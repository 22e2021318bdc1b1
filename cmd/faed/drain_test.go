package main_test

import (
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

// TestDrainOnSIGTERM: php-fpm-like sessions (a few calls with think time in
// between) are running when SIGTERM arrives. Every session that had started
// finishes all its calls; new sessions are refused; faed exits 0.
func TestDrainOnSIGTERM(t *testing.T) {
	for _, m := range []mode{allModes[0], allModes[3]} { // binary tcp, binary framed unix
		t.Run(m.String(), func(t *testing.T) {
			dir := t.TempDir()
			f := startFaedIn(t, dir, m.config(dir, `shutdown_timeout: "10s"`, ""))
			const workers, callsPerSession = 16, 10
			var (
				stop          atomic.Bool
				signalled     atomic.Int64 // unix ns of the SIGTERM, 0 before
				spanning      atomic.Int64 // sessions that started before and ended after the SIGTERM
				inSession     atomic.Int64 // workers between their first call and their close
				completed     atomic.Int64
				refusedLate   atomic.Int64
				wg            sync.WaitGroup
				failuresMu    sync.Mutex
				midSessionErr []error
			)
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for !stop.Load() {
						c, err := f.tryDial(m)
						if err != nil {
							refusedLate.Add(1)
							time.Sleep(5 * time.Millisecond) // back off before the next connect, not synchronisation
							continue
						}
						before := signalled.Load() == 0
						var firstErr error
						entered := false
						for i := 0; i < callsPerSession; i++ {
							_, err := c.IDNext(bg, ctx())
							if err != nil && i == 0 && signalled.Load() != 0 {
								firstErr = err // a connect that raced the closing listener
								break
							}
							if err != nil {
								failuresMu.Lock()
								midSessionErr = append(midSessionErr, err)
								failuresMu.Unlock()
								break
							}
							if i == 0 {
								inSession.Add(1)
								entered = true
							}
							time.Sleep(5 * time.Millisecond) // think time, like a PHP page between calls: the workload, not synchronisation
						}
						c.Close()
						if entered {
							inSession.Add(-1)
						}
						if firstErr == nil {
							completed.Add(1)
							if before && signalled.Load() != 0 {
								spanning.Add(1)
							}
						}
					}
				}()
			}
			testenv.Eventually(t, 10*time.Second, "every worker through a session and most inside one", func() bool {
				return completed.Load() >= workers && inSession.Load() >= workers/2
			})
			signalled.Store(time.Now().UnixNano())
			code := f.stop(syscall.SIGTERM, 15*time.Second)
			stop.Store(true)
			wg.Wait()
			if code != 0 {
				t.Errorf("exit code %d, want 0", code)
			}
			for _, err := range midSessionErr {
				t.Errorf("a call failed during the drain: %v", err)
			}
			if spanning.Load() == 0 {
				t.Errorf("no session was in flight across the SIGTERM: the test proved nothing")
			}
			t.Logf("sessions completed %d, in flight across SIGTERM %d, refused after %d",
				completed.Load(), spanning.Load(), refusedLate.Load())
			if m.unix {
				if _, err := os.Stat(f.rpcAddr); !os.IsNotExist(err) {
					t.Errorf("unix socket %s left after exit: %v", f.rpcAddr, err)
				}
			}
		})
	}
}

// TestUnixSocket: a stale socket file from a dead process is replaced; the
// socket gets rpc.unix_socket_mode.
func TestUnixSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "faed.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // leaves a stale socket file, as a crash would
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("stale socket not left: %v", err)
	}
	m := mode{"binary", false, true}
	f := startFaedIn(t, dir, m.config(dir, `unix_socket_mode: "0600"`, ""))
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := f.dial(t, m).Ping(bg, ctx()); err != nil {
		t.Fatal(err)
	}
	// A second faed on the same live socket refuses to start.
	g := writeConf(t, m.config(dir, "", ""))
	if out, code := runFaed(t, "-conf", g, "-lockfile", ""); code == 0 {
		t.Errorf("second faed on a live socket started: %s", out)
	}
}
