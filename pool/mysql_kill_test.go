package pool

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

// myKillTest runs op (a SELECT SLEEP(30) or DO SLEEP(30) carrying marker)
// under ctx in the background, waits until the server runs it, calls end (a
// cancel, or nothing when query_timeout ends it), and checks that op fails
// with kind within a few seconds, that the statement is gone from the server's
// PROCESSLIST within 2 s (a driver cancel alone only closes the socket:
// MariaDB would run SLEEP up to 5 s more, a scan to its end), and that the
// kill was observed, once.
func myKillTest(t *testing.T, m *MySQL, obs *Counters, marker string, kind Kind, end func(), op func() error) {
	t.Helper()
	admin := myAdmin(t, "")
	errc := make(chan error, 1)
	go func() { errc <- op() }()
	testenv.Eventually(t, 5*time.Second, "the statement to run", func() bool { return testenv.MySQLRunning(t, admin, marker) == 1 })
	end()
	var err error
	select {
	case err = <-errc:
	case <-time.After(5 * time.Second):
		t.Fatal("the call did not end")
	}
	ended := time.Now()
	if !errors.Is(err, kind) {
		t.Errorf("the call failed with %v, want %v", err, kind)
	}
	testenv.Eventually(t, 2*time.Second, "the statement to be killed on the server", func() bool { return testenv.MySQLRunning(t, admin, marker) == 0 })
	t.Logf("%v; gone from the server %s after the call ended", err, time.Since(ended).Round(time.Millisecond))
	// The kill is reported once: KindOK, or KindMiss when the server had
	// already ended the connection's thread on seeing its socket closed
	// (abort closes it before the kill's own connection is dialled; seen
	// once in CI, 1 ms after the call ended).
	server := "Global (" + testenv.MySQLAddr + ")"
	testenv.Eventually(t, 5*time.Second, "the kill to be observed", func() bool {
		return myCount(obs, "Global", server, "kill", KindOK)+myCount(obs, "Global", server, "kill", KindMiss) == 1
	})
	if n := myCount(obs, "Global", server, "kill", KindMiss); n != 0 {
		t.Logf("the kill found the statement's thread gone already (KindMiss)")
	}
}

// TestMysqlKillOnCancel: a statement whose ctx is canceled is killed on the
// server: a prepared SELECT (statement cache on) and a text DO.
func TestMysqlKillOnCancel(t *testing.T) {
	c := myConfig(t, testenv.MySQLAddr, map[string]string{"Global": "mysql"}, "Global")
	c.CachePrepareStmtMaxItems = 16
	obs := NewCounters()
	m := newMyTest(t, c, obs, Limits{})
	marker := fmt.Sprintf("kill-cancel-%d", time.Now().UnixNano())
	ctx, cancel := context.WithCancel(myBg)
	myKillTest(t, m, obs, marker, KindCanceled, cancel, func() error {
		_, _, err := m.Query(ctx, "Global", 0, "SELECT SLEEP(30), '"+marker+"'", nil)
		wantMyError(t, err, KindCanceled, "query", "Global", "Global ("+testenv.MySQLAddr+")")
		return err
	})
	if _, rows, err := m.Query(myBg, "Global", 0, "SELECT 1", nil); err != nil || rows[0][0] != "1" {
		t.Errorf("the next query: %v %v", rows, err)
	}
}

func TestMysqlKillOnCancelExec(t *testing.T) {
	c := myConfig(t, testenv.MySQLAddr, map[string]string{"Global": "mysql"}, "Global")
	obs := NewCounters()
	m := newMyTest(t, c, obs, Limits{})
	marker := fmt.Sprintf("kill-exec-%d", time.Now().UnixNano())
	ctx, cancel := context.WithCancel(myBg)
	myKillTest(t, m, obs, marker, KindCanceled, cancel, func() error {
		_, _, err := m.Exec(ctx, "Global", 0, "DO SLEEP(30), '"+marker+"'", nil)
		wantMyError(t, err, KindCanceled, "exec", "Global", "Global ("+testenv.MySQLAddr+")")
		return err
	})
}

// TestMysqlKillOnQueryTimeout: a statement past query_timeout fails with
// KindTimeout naming it, is killed on the server, and does not count on the
// breaker (the server passes the health check).
func TestMysqlKillOnQueryTimeout(t *testing.T) {
	c := myConfig(t, testenv.MySQLAddr, map[string]string{"Global": "mysql"}, "Global")
	c.QueryTimeout = time.Second
	c.Breaker.FailureAllowance = 1
	obs := NewCounters()
	m := newMyTest(t, c, obs, Limits{})
	marker := fmt.Sprintf("kill-timeout-%d", time.Now().UnixNano())
	myKillTest(t, m, obs, marker, KindTimeout, func() {}, func() error {
		start := time.Now()
		_, _, err := m.Query(myBg, "Global", 0, "SELECT SLEEP(30), '"+marker+"'", nil)
		wantMyError(t, err, KindTimeout, "query", "Global", "Global ("+testenv.MySQLAddr+")", "query_timeout 1s passed")
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("the call took %s with query_timeout 1s", d)
		}
		return err
	})
	if st := m.BreakerState("Global"); st != "closed" {
		t.Errorf("breaker %s after one slow statement with failure_allowance 1", st)
	}
	if _, rows, err := m.Query(myBg, "Global", 0, "SELECT 1", nil); err != nil || rows[0][0] != "1" {
		t.Errorf("the next query: %v %v", rows, err)
	}
}
