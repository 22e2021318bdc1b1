package main_test

import (
	"context"
	"database/sql"
	"fmt"
	"syscall"
	"testing"
	"time"
)

// sleeping counts the statements running SLEEP(…) tagged with tag on MariaDB.
func sleeping(t *testing.T, db *sql.DB, tag string) int {
	t.Helper()
	var n int
	err := db.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE ? AND INFO NOT LIKE '%PROCESSLIST%'",
		"%"+tag+"%").Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Issue 7: a php-fpm worker that gives up mid-call cancels its call, and the
// backend sees it: the MySQL statement is killed, not left running.
func TestClientGoneKillsStatement(t *testing.T) {
	f, c, db := startMysqlFaed(t, "")
	tag := fmt.Sprintf("gone%d", time.Now().UnixNano())
	done := make(chan error, 1)
	go func() {
		_, err := c.MyQuery(context.Background(), ctx(), "Global", "t", 0, "SELECT SLEEP(30) AS "+tag, nil, "")
		done <- err
	}()
	eventually(t, 10*time.Second, "the statement running on MariaDB", func() bool { return sleeping(t, db, tag) == 1 })
	c.Close() // the worker gives up
	start := time.Now()
	eventually(t, 5*time.Second, "the statement killed", func() bool { return sleeping(t, db, tag) == 0 })
	t.Logf("statement gone %s after the client closed", time.Since(start).Round(time.Millisecond))
	<-done
	// faed goes on serving.
	c2 := f.dial(t, allModes[0])
	defer c2.Close()
	if _, err := c2.Ping(context.Background(), ctx()); err != nil {
		t.Fatal(err)
	}
}

// When the drain gives up (shutdown_timeout), calls still running are
// cancelled and their statements killed, and pools close after them.
func TestShutdownKillsStatement(t *testing.T) {
	requireServer(t, "MariaDB", mysqlAddr)
	db := setupMysqlSchema(t, mysqlAddr)
	m := allModes[0]
	dir := t.TempDir()
	f := startFaedIn(t, dir, m.config(dir, `shutdown_timeout: "500ms"`, mysqlSection(mysqlAddr, "")))
	c := f.dial(t, m)
	defer c.Close()
	tag := fmt.Sprintf("shut%d", time.Now().UnixNano())
	go c.MyQuery(context.Background(), ctx(), "Global", "t", 0, "SELECT SLEEP(30) AS "+tag, nil, "")
	eventually(t, 10*time.Second, "the statement running on MariaDB", func() bool { return sleeping(t, db, tag) == 1 })
	if code := f.stop(syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	eventually(t, 5*time.Second, "the statement killed", func() bool { return sleeping(t, db, tag) == 0 })
}
