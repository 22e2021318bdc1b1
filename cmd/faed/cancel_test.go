package main_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

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
	testenv.Eventually(t, 10*time.Second, "the statement running on MariaDB", func() bool { return testenv.MySQLRunning(t, db, tag) == 1 })
	c.Close() // the worker gives up
	start := time.Now()
	testenv.Eventually(t, 5*time.Second, "the statement killed", func() bool { return testenv.MySQLRunning(t, db, tag) == 0 })
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
	testenv.RequireServer(t, "MariaDB", testenv.MySQLAddr)
	db := setupMysqlSchema(t, testenv.MySQLAddr)
	m := allModes[0]
	dir := t.TempDir()
	f := startFaedIn(t, dir, m.config(dir, `shutdown_timeout: "500ms"`, mysqlSection(testenv.MySQLAddr, "")))
	c := f.dial(t, m)
	defer c.Close()
	tag := fmt.Sprintf("shut%d", time.Now().UnixNano())
	go c.MyQuery(context.Background(), ctx(), "Global", "t", 0, "SELECT SLEEP(30) AS "+tag, nil, "")
	testenv.Eventually(t, 10*time.Second, "the statement running on MariaDB", func() bool { return testenv.MySQLRunning(t, db, tag) == 1 })
	if code := f.stop(syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	testenv.Eventually(t, 5*time.Second, "the statement killed", func() bool { return testenv.MySQLRunning(t, db, tag) == 0 })
}
