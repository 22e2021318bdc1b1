package main_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// The shared backend servers started by contrib/test-services (make test starts
// them). Tests that stop a server start one of their own with backendServer, so
// that stopping it disturbs no other test.
var (
	servicesDir   = envOr("FAE_SERVICES_DIR", "/tmp/fae-services")
	mysqlAddr     = "127.0.0.1:" + envOr("FAE_MYSQL_PORT", "13306")
	redisAddr     = "127.0.0.1:" + envOr("FAE_REDIS_PORT", "16379")
	redis2Addr    = "127.0.0.1:" + envOr("FAE_REDIS2_PORT", "16380")
	memcacheAddr  = "127.0.0.1:" + envOr("FAE_MEMCACHE_PORT", "11311")
	memcache2Addr = "127.0.0.1:" + envOr("FAE_MEMCACHE2_PORT", "11312")
	mongoAddr     = "127.0.0.1:" + envOr("FAE_MONGO_PORT", "17017")
)

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// requireServer fails the test when addr does not accept connections: the
// suite needs its real servers (run contrib/test-services start, as make test does).
func requireServer(t testing.TB, name, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("%s at %s is not running (contrib/test-services start): %v", name, addr, err)
	}
	c.Close()
}

// backendServer is a server process a test owns: it can stop and restart it
// on the same port, to show what faed does while a backend is down.
type backendServer struct {
	t    testing.TB
	name string
	port int
	args func(port int) []string // the command line, for the port
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// Addr is 127.0.0.1:port.
func (s *backendServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func newBackendServer(t testing.TB, name string, args func(port int) []string) *backendServer {
	t.Helper()
	s := &backendServer{t: t, name: name, port: freePort(t), args: args, dir: t.TempDir()}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Start starts the server and waits until it accepts connections.
func (s *backendServer) Start() {
	s.t.Helper()
	argv := s.args(s.port)
	s.cmd = exec.Command(argv[0], argv[1:]...)
	logf, err := os.Create(filepath.Join(s.dir, s.name+".log"))
	if err != nil {
		s.t.Fatal(err)
	}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("starting %s: %v", s.name, err)
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
			log, _ := os.ReadFile(filepath.Join(s.dir, s.name+".log"))
			s.t.Fatalf("%s exited at start:\n%s", s.name, log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s did not listen on %s within 30s", s.name, s.Addr())
		}
	}
}

// Stop stops the server (SIGTERM, then SIGKILL after 10s) and waits until its port is free.
func (s *backendServer) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// newRedisServer starts a Redis of the test's own (no persistence).
func newRedisServer(t testing.TB) *backendServer {
	return newBackendServer(t, "redis", func(port int) []string {
		return []string{"/usr/bin/redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
			"--save", "", "--appendonly", "no", "--daemonize", "no"}
	})
}

// newMemcachedServer starts a memcached of the test's own.
func newMemcachedServer(t testing.TB) *backendServer {
	return newBackendServer(t, "memcached", func(port int) []string {
		return []string{"/usr/bin/memcached", "-u", "memcache", "-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-m", "16"}
	})
}

// newMariaDBServer starts a MariaDB of the test's own, with root (no password)
// and user fae/fae, on a datadir initialised for it (about 2 s).
func newMariaDBServer(t testing.TB) *backendServer {
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
	s := newBackendServer(t, "mariadb", func(port int) []string {
		return []string{"/usr/sbin/mariadbd", "--no-defaults", "--user=mysql", "--datadir=" + data,
			"--socket=" + filepath.Join(filepath.Dir(data), "mysqld.sock"), "--bind-address=127.0.0.1",
			"--port=" + strconv.Itoa(port), "--skip-name-resolve", "--character-set-server=utf8mb4",
			"--innodb-buffer-pool-size=32M", "--skip-log-bin"}
	})
	out, err := exec.Command("mariadb", "--no-defaults", "--protocol=tcp", "-h127.0.0.1", "-P"+strconv.Itoa(s.port), "-uroot",
		"-e", "CREATE USER IF NOT EXISTS 'fae'@'127.0.0.1' IDENTIFIED BY 'fae'; GRANT ALL ON *.* TO 'fae'@'127.0.0.1';").CombinedOutput()
	if err != nil {
		t.Fatalf("creating user fae: %v\n%s", err, out)
	}
	return s
}

// newFerretDBServer starts a FerretDB (MongoDB wire, SQLite) of the test's own,
// with the binary contrib/test-services built.
func newFerretDBServer(t testing.TB) *backendServer {
	t.Helper()
	bin := filepath.Join(servicesDir, "bin", "ferretdb")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("FerretDB binary missing (contrib/test-services start builds it): %v", err)
	}
	dir := t.TempDir()
	return newBackendServer(t, "ferretdb", func(port int) []string {
		return []string{bin, "--handler=sqlite", "--sqlite-url=file:" + dir + "/", fmt.Sprintf("--listen-addr=127.0.0.1:%d", port),
			"--debug-addr=-", "--state-dir=" + dir, "--telemetry=disable", "--log-level=warn"}
	})
}
