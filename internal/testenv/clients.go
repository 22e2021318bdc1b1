package testenv

import (
	"bufio"
	"bytes"
	"database/sql"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/gomodule/redigo/redis"
)

// Direct clients of the backend servers, to set up data and to look behind
// faed's back.

// OpenMySQL is a database/sql pool on the MariaDB at addr as the suite's user
// fae (password fae), on database db ("" = none); it is closed when the test ends.
func OpenMySQL(t testing.TB, addr, db string) *sql.DB {
	t.Helper()
	return openMySQL(t, addr, "fae", "fae", db)
}

// OpenMySQLRoot is OpenMySQL as root without a password, which only a server of
// StartMariaDB has: its connections are told apart from faed's (user fae) in
// PROCESSLIST.
func OpenMySQLRoot(t testing.TB, addr string) *sql.DB {
	t.Helper()
	return openMySQL(t, addr, "root", "", "")
}

func openMySQL(t testing.TB, addr, user, password, db string) *sql.DB {
	t.Helper()
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = user, password, "tcp", addr, db
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := sql.OpenDB(c)
	t.Cleanup(func() { d.Close() })
	return d
}

// MySQLRunning is the number of statements running on the server of db whose
// text contains marker (the asking statement left out), from PROCESSLIST: a
// user sees its own statements, root (OpenMySQLRoot) everyone's.
func MySQLRunning(t testing.TB, db *sql.DB, marker string) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE ? AND ID <> CONNECTION_ID()",
		"%"+marker+"%").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// RedisInfo is the integer field of the INFO clients section of the Redis at
// addr (blocked_clients, connected_clients…), asked on a connection of its own
// (counted in connected_clients). It fails the test when the field is missing.
func RedisInfo(t testing.TB, addr, field string) int {
	t.Helper()
	conn, err := redis.Dial("tcp", addr, redis.DialReadTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	text, err := redis.String(conn.Do("INFO", "clients"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(text, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	t.Fatalf("no %s in INFO clients of %s:\n%s", field, addr, text)
	return 0
}

// MemcachedClients is the number of connections the memcached at addr has open
// besides the one asking (its "stats" curr_connections less one), asked within
// 1 s. It fails the test when memcached does not answer.
func MemcachedClients(t testing.TB, addr string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c, "stats\r\n")
	sc := bufio.NewScanner(c)
	for sc.Scan() && sc.Text() != "END" {
		if v, ok := strings.CutPrefix(sc.Text(), "STAT curr_connections "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("memcached %s: curr_connections %q", addr, v)
			}
			return n - 1
		}
	}
	t.Fatalf("memcached %s: no curr_connections in stats (%v)", addr, sc.Err())
	return 0
}

// SyncBuffer collects what a process or a logger writes from several
// goroutines; safe for concurrent use.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
