package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

// This file runs a faed binary as a child process on loopback, so that a
// benchmark can read the server's own CPU time and memory from /proc, apart
// from the client's (the other benchmarks here run faed in process).

// faedStartTimeout bounds the wait for a started faed to answer ping.
const faedStartTimeout = 20 * time.Second

// faedStopTimeout bounds the drain after SIGTERM; faed's own bound is
// rpc.shutdown_timeout, 10 s by default.
const faedStopTimeout = 15 * time.Second

// buildFaed builds ./cmd/faed of this tree into dir and returns the binary's path.
func buildFaed(tb testing.TB, dir string) string {
	tb.Helper()
	bin := filepath.Join(dir, "faed")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/fae-go/fae/cmd/faed")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build ./cmd/faed: %v\n%s", err, out)
	}
	return bin
}

// faedProc is one faed binary running as a child process.
type faedProc struct {
	bin    string
	addr   string // RPC listener, 127.0.0.1:port (binary protocol, buffered transport)
	dir    string // holds faed.cf and faed.log
	cmd    *exec.Cmd
	stderr *testenv.SyncBuffer // what faed writes before its log file is open (config errors)
	done   chan struct{}       // closed once the process has exited
	state  *os.ProcessState
}

// faedConfig is a faed.cf that both builds compared here understand: RPC on
// addr with the binary protocol and buffered transport, and servantsExtra added
// to the servants section.
func faedConfig(addr, servantsExtra string) string {
	return fmt.Sprintf(`{
    rpc: {
        listen_addr: %q
        protocol: "binary"
        framed: false
    }
    servants: {
        idgen_worker_id: 1
        %s
    }
}`, addr, servantsExtra)
}

// startFaedProc runs bin on a config with servantsExtra in a new directory
// under parent, on a free loopback port, and returns once it answers ping on
// that port. It fails tb when faed exits or does not answer within
// faedStartTimeout; the process is stopped at the end of tb in any case.
func startFaedProc(tb testing.TB, bin, parent, servantsExtra string) *faedProc {
	tb.Helper()
	return startFaedProcConf(tb, bin, parent, func(addr string) string { return faedConfig(addr, servantsExtra) })
}

// startFaedProcConf is startFaedProc with the whole config, conf(addr).
func startFaedProcConf(tb testing.TB, bin, parent string, conf func(addr string) string) *faedProc {
	tb.Helper()
	for attempt := 1; ; attempt++ {
		f, err := tryStartFaedProc(tb, bin, parent, conf)
		if err == nil {
			return f
		}
		// The free port was taken between our probe and faed's listen: pick another.
		if errors.Is(err, errPortTaken) && attempt < 3 {
			continue
		}
		tb.Fatalf("faed %s did not start: %v", bin, err)
	}
}

var errPortTaken = errors.New("port taken")

func tryStartFaedProc(tb testing.TB, bin, parent string, confFor func(addr string) string) (*faedProc, error) {
	dir, err := os.MkdirTemp(parent, "faed-")
	if err != nil {
		return nil, err
	}
	f := &faedProc{bin: bin, dir: dir, addr: testenv.FreeAddr(tb), stderr: new(testenv.SyncBuffer), done: make(chan struct{})}
	conf := filepath.Join(dir, "faed.cf")
	if err := os.WriteFile(conf, []byte(confFor(f.addr)), 0o644); err != nil {
		return nil, err
	}
	f.cmd = exec.Command(bin, "-conf", conf, "-lockfile", "", "-log", filepath.Join(dir, "faed.log"))
	f.cmd.Stdout, f.cmd.Stderr = f.stderr, f.stderr
	f.cmd.Dir = dir // files faed names relatively (metrics_logfile) stay out of the repository
	if err := f.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		f.cmd.Wait()
		f.state = f.cmd.ProcessState
		close(f.done)
	}()
	tb.Cleanup(func() { f.cmd.Process.Kill(); <-f.done })
	if err := f.waitServing(); err != nil {
		f.cmd.Process.Kill()
		<-f.done
		out := f.output()
		if strings.Contains(out, "address already in use") && !errors.Is(err, errPortTaken) {
			err = fmt.Errorf("%w: %v", errPortTaken, err)
		}
		return nil, fmt.Errorf("%w\n%s", err, out)
	}
	return f, nil
}

// waitServing polls ping until it answers on f.addr, then checks that the
// listener answering is f's own (not another process that took the port).
func (f *faedProc) waitServing() error {
	deadline := time.Now().Add(faedStartTimeout)
	for {
		select {
		case <-f.done:
			return fmt.Errorf("faed exited before serving: %v", f.state)
		default:
		}
		reply, err := pingOnce(f.addr)
		if err == nil {
			return f.checkOwnsListener(reply)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to ping on %s within %s: %v", f.addr, faedStartTimeout, err)
		}
		time.Sleep(20 * time.Millisecond) // poll interval of the start-up wait
	}
}

func (f *faedProc) checkOwnsListener(pingReply string) error {
	_, portText, _ := net.SplitHostPort(f.addr)
	port, _ := strconv.Atoi(portText)
	owns, err := listensOn(f.cmd.Process.Pid, port)
	switch {
	case err != nil:
		return err
	case !owns:
		return fmt.Errorf("%w: %s answered ping (%q) but faed pid %d does not listen there",
			errPortTaken, f.addr, pingReply, f.cmd.Process.Pid)
	}
	return nil
}

// pingOnce opens a session to addr, calls ping once and closes it.
func pingOnce(addr string) (string, error) {
	s, err := dialSession(addr, time.Second)
	if err != nil {
		return "", err
	}
	defer s.close()
	return s.client.Ping(context.Background(), benchContext)
}

// listensOn reports whether process pid holds a TCP socket listening on
// 127.0.0.1:port: a socket inode among /proc/<pid>/fd matches the LISTEN
// (state 0A) entry of /proc/net/tcp for that local address.
func listensOn(pid, port int) (bool, error) {
	table, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false, err
	}
	local := fmt.Sprintf("0100007F:%04X", port) // 127.0.0.1, little-endian hex, as /proc/net/tcp prints it
	inodes := map[string]bool{}
	for _, line := range strings.Split(string(table), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 9 && f[1] == local && f[3] == "0A" {
			inodes["socket:["+f[9]+"]"] = true
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return false, err
	}
	for _, fd := range fds {
		if target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && inodes[target] {
			return true, nil
		}
	}
	return false, nil
}

// output is what faed wrote to stderr and the last 4 KiB of its log file.
func (f *faedProc) output() string {
	log, _ := os.ReadFile(filepath.Join(f.dir, "faed.log"))
	if len(log) > 4096 {
		log = log[len(log)-4096:]
	}
	return fmt.Sprintf("stderr: %s\nfaed.log: %s", f.stderr.String(), log)
}

// rssKiB is the process's resident set size in KiB (VmRSS of /proc/<pid>/status).
func (f *faedProc) rssKiB() (int64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", f.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS line", f.cmd.Process.Pid)
}

// stop sends SIGTERM and waits up to faedStopTimeout for faed to drain and
// exit; it fails tb if faed does not exit in time or exits with a non-zero status.
func (f *faedProc) stop(tb testing.TB) {
	tb.Helper()
	f.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-f.done:
		if !f.state.Success() {
			tb.Fatalf("faed %s exited with %v after SIGTERM\n%s", f.bin, f.state, f.output())
		}
	case <-time.After(faedStopTimeout):
		tb.Fatalf("faed %s did not exit within %s of SIGTERM\n%s", f.bin, faedStopTimeout, f.output())
	}
}
