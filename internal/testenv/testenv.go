// Package testenv runs the backend servers tests need: the shared ones started
// by contrib/test-services, and servers a test owns (to stop, freeze or count
// connections on without disturbing other tests). For tests only.
package testenv

import (
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
)

// The shared backend servers started by contrib/test-services (make test starts them).
var (
	ServicesDir   = EnvOr("FAE_SERVICES_DIR", "/tmp/fae-services")
	MySQLAddr     = "127.0.0.1:" + EnvOr("FAE_MYSQL_PORT", "13306")
	RedisAddr     = "127.0.0.1:" + EnvOr("FAE_REDIS_PORT", "16379")
	Redis2Addr    = "127.0.0.1:" + EnvOr("FAE_REDIS2_PORT", "16380")
	MemcacheAddr  = "127.0.0.1:" + EnvOr("FAE_MEMCACHE_PORT", "11311")
	Memcache2Addr = "127.0.0.1:" + EnvOr("FAE_MEMCACHE2_PORT", "11312")
	MongoAddr     = "127.0.0.1:" + EnvOr("FAE_MONGO_PORT", "17017")
)

// EnvOr is the environment variable key, or def when it is unset or empty.
func EnvOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// RequireServer fails the test when one of addrs (servers called name) does
// not accept a connection within 2 s: the suite needs its real servers
// (contrib/test-services start, as make test does) and never skips.
func RequireServer(t testing.TB, name string, addrs ...string) {
	t.Helper()
	for _, addr := range addrs {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatalf("%s at %s is not running (contrib/test-services start): %v", name, addr, err)
		}
		c.Close()
	}
}

// Eventually polls cond every 10 ms until it holds, failing the test with what
// after timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(timeout, cond) {
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// Poll polls cond every 10 ms until it holds (true) or timeout passes
// (false): Eventually for a caller that records a timeout rather than fail
// the test at once, or that runs off the test's goroutine.
func Poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FreeAddr is 127.0.0.1:FreePort: nothing listens there (a dial is refused)
// unless another process took the port since.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(FreePort(t))
}

// Server is a server process a test owns: it can stop, restart, freeze and
// thaw it on the same port.
type Server struct {
	t    testing.TB
	Name string
	Port int
	args func(port int) []string // the command line, for the port
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// Addr is 127.0.0.1:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// Start starts a server whose command line args gives for a free port, waits
// until it accepts connections, and stops it when the test ends.
func Start(t testing.TB, name string, args func(port int) []string) *Server {
	t.Helper()
	s := &Server{t: t, Name: name, Port: FreePort(t), args: args, dir: t.TempDir()}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Start (re)starts the server and waits until it accepts connections.
func (s *Server) Start() {
	s.t.Helper()
	argv := s.args(s.Port)
	s.cmd = exec.Command(argv[0], argv[1:]...)
	s.cmd.Dir = s.dir // what a server writes relatively (a dump, a metrics log) stays out of the repository
	logf, err := os.Create(filepath.Join(s.dir, s.Name+".log"))
	if err != nil {
		s.t.Fatal(err)
	}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("starting %s: %v", s.Name, err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); logf.Close(); close(done) }(s.cmd, s.done)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
			c.Close()
			return
		}
		select {
		case <-s.done:
			log, _ := os.ReadFile(filepath.Join(s.dir, s.Name+".log"))
			s.t.Fatalf("%s exited at start:\n%s", s.Name, log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s did not listen on %s within 30s", s.Name, s.Addr())
		}
	}
}

// Stop stops the server (SIGTERM, then SIGKILL after 10s) and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGCONT) // a frozen server cannot handle SIGTERM
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// Kill kills the server with SIGKILL (no chance to clean up, as a crash or
// the OOM killer) and returns once it has exited; Start brings it back on the
// same port.
func (s *Server) Kill() {
	s.t.Helper()
	s.signal(syscall.SIGKILL)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.t.Fatalf("%s did not exit within 10s of SIGKILL", s.Name)
	}
}

// Freeze stops the process with SIGSTOP and returns once every thread of it
// is stopped (the signal takes effect asynchronously: a thread already woken
// could still answer one request): the kernel still completes TCP handshakes
// into its listen backlog, but nothing is answered.
func (s *Server) Freeze() {
	s.t.Helper()
	s.signal(syscall.SIGSTOP)
	Eventually(s.t, 10*time.Second, s.Name+" stopped", func() bool { return s.threadsStopped() == 1 })
}

// Thaw resumes a frozen server (SIGCONT) and returns once no thread is stopped.
func (s *Server) Thaw() {
	s.t.Helper()
	s.signal(syscall.SIGCONT)
	Eventually(s.t, 10*time.Second, s.Name+" running", func() bool { return s.threadsStopped() == 0 })
}

// Pid is the server's process id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

func (s *Server) threadsStopped() int { return ThreadsStopped(s.Pid()) }

// ThreadsStopped is 1 when every thread of process pid is stopped (state T
// in /proc), 0 when none is, and -1 in between: SIGSTOP and SIGCONT take
// effect asynchronously, so a test waits for it after sending them.
func ThreadsStopped(pid int) int {
	stats, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	stopped := 0
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state …: the state follows the last ')'.
		if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) && b[i+2] == 'T' {
			stopped++
		}
	}
	switch stopped {
	case len(stats):
		return 1
	case 0:
		return 0
	}
	return -1
}

func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("%s: %v: %v", s.Name, sig, err)
	}
}

// StartRedis starts a Redis of the test's own (no persistence).
func StartRedis(t testing.TB) *Server {
	return Start(t, "redis", func(port int) []string {
		return []string{"/usr/bin/redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
			"--save", "", "--appendonly", "no", "--daemonize", "no"}
	})
}

// StartMemcached starts a memcached of the test's own.
func StartMemcached(t testing.TB) *Server {
	return Start(t, "memcached", func(port int) []string {
		return []string{"/usr/bin/memcached", "-u", "memcache", "-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-m", "16"}
	})
}

// StartMariaDB starts a MariaDB of the test's own, with root (no password) and
// user fae/fae, on a datadir initialised for it (about 2 s).
func StartMariaDB(t testing.TB) *Server {
	t.Helper()
	// Not t.TempDir: mariadbd runs as user mysql and must reach the datadir.
	base, err := os.MkdirTemp("", "fae-mariadb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	data := filepath.Join(base, "data")
	os.Mkdir(data, 0o755)
	exec.Command("chown", "-R", "mysql:mysql", base).Run()
	if out, err := exec.Command("mariadb-install-db", "--no-defaults", "--user=mysql", "--datadir="+data,
		"--auth-root-authentication-method=normal", "--skip-test-db").CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	s := Start(t, "mariadb", func(port int) []string {
		return []string{"/usr/sbin/mariadbd", "--no-defaults", "--user=mysql", "--datadir=" + data,
			"--socket=" + filepath.Join(base, "mysqld.sock"), "--bind-address=127.0.0.1",
			"--port=" + strconv.Itoa(port), "--skip-name-resolve", "--character-set-server=utf8mb4",
			"--innodb-buffer-pool-size=32M", "--skip-log-bin"}
	})
	out, err := exec.Command("mariadb", "--no-defaults", "--protocol=tcp", "-h127.0.0.1", "-P"+strconv.Itoa(s.Port), "-uroot",
		"-e", "CREATE USER IF NOT EXISTS 'fae'@'127.0.0.1' IDENTIFIED BY 'fae'; GRANT ALL ON *.* TO 'fae'@'127.0.0.1'; CREATE DATABASE IF NOT EXISTS fae_test;").CombinedOutput()
	if err != nil {
		t.Fatalf("creating user fae: %v\n%s", err, out)
	}
	return s
}

// StartFerretDB starts a FerretDB (MongoDB wire, SQLite) of the test's own,
// with the binary contrib/test-services built.
func StartFerretDB(t testing.TB) *Server {
	t.Helper()
	bin := filepath.Join(ServicesDir, "bin", "ferretdb")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("FerretDB binary missing (contrib/test-services start builds it): %v", err)
	}
	dir := t.TempDir()
	return Start(t, "ferretdb", func(port int) []string {
		return []string{bin, "--handler=sqlite", "--sqlite-url=file:" + dir + "/", fmt.Sprintf("--listen-addr=127.0.0.1:%d", port),
			"--debug-addr=-", "--state-dir=" + dir, "--telemetry=disable", "--log-level=warn"}
	})
}

// LoopbackPair returns both ends of a real connection of network ("tcp" on
// 127.0.0.1, or "unix" in a temporary directory), closed when t ends.
func LoopbackPair(t testing.TB, network string) (server, client net.Conn) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "s")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return server, client
}
