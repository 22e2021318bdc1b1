package testenv

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// The shared ZooKeeper started by contrib/test-services (tickTime 2 s).
var ZooKeeperAddr = "127.0.0.1:" + EnvOr("FAE_ZK_PORT", "12181")

// Debian's zookeeper package: the jar's manifest pulls in its dependencies;
// slf4j-simple gives it a log.
const (
	zooKeeperJar = "/usr/share/java/zookeeper.jar"
	slf4jJar     = "/usr/share/java/slf4j-simple.jar"
)

// ZooKeeperTick is the tickTime of a test's own ZooKeeper: sessions from
// 2 ticks (1 s) to 40 ticks (20 s) are granted, so expiry tests take seconds.
const ZooKeeperTick = 500 * time.Millisecond

// StartZooKeeper starts a standalone ZooKeeper of the test's own (Debian's
// zookeeper package, on 127.0.0.1 and a free port, tickTime 500 ms, session
// timeouts 1–20 s, its own data directory kept across Stop and Start, no
// AdminServer, no JMX port), waits until it answers "ruok", and stops it when
// the test ends. After s.Start() (a restart) wait with ZooKeeperOK.
func StartZooKeeper(t testing.TB) *Server {
	t.Helper()
	if _, err := os.Stat(zooKeeperJar); err != nil {
		t.Fatalf("ZooKeeper is not installed (contrib/install-deps or contrib/test-services start installs it): %v", err)
	}
	dir := t.TempDir()
	s := Start(t, "zookeeper", func(port int) []string {
		cfg := filepath.Join(dir, "zoo.cfg")
		writeZooCfg(t, cfg, filepath.Join(dir, "data"), port)
		return []string{"/usr/bin/java", "-Xms16m", "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
			"-XX:-UsePerfData", "-Djava.net.preferIPv4Stack=true", "-Dzookeeper.forceSync=no",
			"-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", zooKeeperJar + ":" + slf4jJar,
			"org.apache.zookeeper.server.ZooKeeperServerMain", cfg}
	})
	Eventually(t, 30*time.Second, "ZooKeeper at "+s.Addr()+" answering ruok", func() bool { return ZooKeeperOK(s.Addr()) })
	zooKeeperData.Store(s, filepath.Join(dir, "data"))
	return s
}

// zooKeeperData maps each *Server of StartZooKeeper to its data directory.
var zooKeeperData sync.Map

// WipeZooKeeperData deletes the data (znodes and sessions) of a stopped
// ZooKeeper of StartZooKeeper: started again, it is an empty ZooKeeper that
// knows no session, as a replaced server would be.
func WipeZooKeeperData(t testing.TB, s *Server) {
	t.Helper()
	dir, ok := zooKeeperData.Load(s)
	if !ok {
		t.Fatal("WipeZooKeeperData: not a ZooKeeper of StartZooKeeper")
	}
	if err := os.RemoveAll(dir.(string)); err != nil {
		t.Fatal(err)
	}
}

func writeZooCfg(t testing.TB, path, data string, port int) {
	cfg := fmt.Sprintf(`tickTime=%d
minSessionTimeout=%d
maxSessionTimeout=%d
dataDir=%s
clientPort=%d
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,mntr,stat
autopurge.purgeInterval=0
`, ZooKeeperTick.Milliseconds(), 2*ZooKeeperTick.Milliseconds(), 40*ZooKeeperTick.Milliseconds(), data, port)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ZooKeeperOK reports whether the ZooKeeper at addr answers "ruok" with
// "imok" within a second (a frozen or stopped one does not).
func ZooKeeperOK(addr string) bool {
	return FourLetterWord(addr, "ruok", time.Second) == "imok"
}

// FourLetterWord sends ZooKeeper's four-letter command cmd (it must be in
// the server's 4lw.commands.whitelist) to addr and returns the answer, or ""
// when none came within timeout: the whole exchange has a deadline (a plain
// `nc` probe of a frozen ZooKeeper hangs).
func FourLetterWord(addr, cmd string, timeout time.Duration) string {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte(cmd)); err != nil {
		return ""
	}
	b, err := io.ReadAll(io.LimitReader(c, 1<<20))
	if err != nil {
		return ""
	}
	return string(b)
}

// ZooKeeperChildren counts the children of path (e.g. "/fae": the nodes
// registered there) in the ZooKeeper at addr, read with a session of its
// own; -1 when ZooKeeper does not answer within 3 s.
func ZooKeeperChildren(addr, path string) int {
	conn, _, err := zk.Connect([]string{addr}, 2*time.Second, zk.WithLogInfo(false), zk.WithLogger(nopLogger{}))
	if err != nil {
		return -1
	}
	defer conn.Close()
	done := make(chan int, 1)
	go func() {
		kids, _, err := conn.Children(path)
		if err != nil {
			done <- -1
			return
		}
		done <- len(kids)
	}()
	select {
	case n := <-done:
		return n
	case <-time.After(3 * time.Second):
		return -1
	}
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}
