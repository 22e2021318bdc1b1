package main_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

// TestMyServerFrozen: a MariaDB the test owns is frozen with SIGSTOP (a real
// hung server: the kernel still accepts connections, nothing answers). Calls
// fail after query_timeout naming it; the health check on a fresh connection
// fails too, so the breaker opens after failure_allowance (3) of them and the
// next call fails at once; after SIGCONT calls succeed again within
// retry_interval (1s) and a few seconds.
func TestMyServerFrozen(t *testing.T) {
	srv := testenv.StartMariaDB(t)
	setupMysqlSchema(t, srv.Addr())
	root := testenv.OpenMySQLRoot(t, srv.Addr())
	m := allModes[0]
	dir := t.TempDir()
	f := startFaedIn(t, dir, m.config(dir, "", mysqlSection(srv.Addr(), `timeout: "1s"
            query_timeout: "1s"
            max_idle_conns_per_server: 4`)))
	c := f.dial(t, m)
	q := func() (time.Duration, error) {
		start := time.Now()
		_, err := c.MyQuery(bg, ctx(), "Global", "Setting", 0, "SELECT v FROM Setting WHERE k = 'a'", nil, "")
		return time.Since(start), err
	}
	// Four idle connections to the Global server, so that each call below
	// runs a statement (not a dial) on the frozen server.
	var wg sync.WaitGroup
	for range 4 {
		cl := f.dial(t, m)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := cl.MyQuery(bg, ctx(), "Global", "Setting", 0, "SELECT SLEEP(0.5)", nil, ""); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	var conns int
	root.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'fae' AND DB = ?", faet+"Global").Scan(&conns)
	if conns < 3 {
		t.Fatalf("faed holds %d connections to Global, want at least 3 for the test", conns)
	}

	srv.Freeze()
	at := fmt.Sprintf(`mysql query: pool "Global", server Global (%s): `, srv.Addr())
	for i := range 3 {
		d, err := q()
		wantErrContains(t, fmt.Sprintf("call %d on the frozen server", i), err, at+"timeout: query_timeout 1s passed")
		if d > 3*time.Second {
			t.Errorf("call %d failed after %s, want about query_timeout + the health check (2s)", i, d)
		}
	}
	d, err := q()
	wantErrContains(t, "call with the breaker open", err, at+"circuit open")
	if d > 100*time.Millisecond {
		t.Errorf("refusal took %s, want it at once", d)
	}

	srv.Thaw()
	resumed := time.Now()
	testenv.Eventually(t, 8*time.Second, "calls to succeed after SIGCONT", func() bool { _, err := q(); return err == nil })
	t.Logf("back %s after SIGCONT", time.Since(resumed).Round(time.Millisecond))
}

// TestMyKeepAliveFrozen: the keep-alive ping (max_idle_time) follows the same
// rules: with no client call at all, pings of a frozen server open its breaker,
// so the first call fails at once instead of waiting for query_timeout.
func TestMyKeepAliveFrozen(t *testing.T) {
	srv := testenv.StartMariaDB(t)
	setupMysqlSchema(t, srv.Addr())
	m := allModes[0]
	dir := t.TempDir()
	f := startFaedIn(t, dir, m.config(dir, "", mysqlSection(srv.Addr(), `timeout: "1s"
            query_timeout: "10s"
            max_idle_time: "100ms"`)))
	c := f.dial(t, m)
	if _, err := c.MyQuery(bg, ctx(), "Global", "Setting", 0, "SELECT 1", nil, ""); err != nil {
		t.Fatal(err)
	}
	srv.Freeze()
	// Wait out the pings: each failing one takes its 100ms bound, plus the 1s
	// health check after a timeout; three open the breaker. Time-based on
	// purpose: nothing outside faed shows the breaker's state, and a call made
	// to find out would be one of the calls this test says are not needed.
	time.Sleep(5 * time.Second)
	start := time.Now()
	_, err := c.MyQuery(bg, ctx(), "Global", "Setting", 0, "SELECT 1", nil, "")
	wantErrContains(t, "call after the pings failed", err, fmt.Sprintf("server Global (%s): circuit open", srv.Addr()))
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("the call took %s, want an immediate refusal", d)
	}
	srv.Thaw()
	testenv.Eventually(t, 8*time.Second, "calls to succeed after SIGCONT", func() bool {
		_, err := c.MyQuery(bg, ctx(), "Global", "Setting", 0, "SELECT 1", nil, "")
		return err == nil
	})
}

// TestMySlowStatements: clients' slow statements (SELECT SLEEP(3) with
// query_timeout 1s, three in a row from each of four clients) each fail with a
// timeout and are killed on the server, and never open the breaker
// (failure_allowance 3): the server passes the health check.
func TestMySlowStatements(t *testing.T) {
	f, _, db := startMysqlFaed(t, `query_timeout: "1s"`) // breaker: failure_allowance 3, retry_interval 1s
	marker := fmt.Sprintf("slow-%d", time.Now().UnixNano())
	var wg sync.WaitGroup
	for w := range 4 {
		cl := f.dial(t, allModes[0])
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 3 {
				start := time.Now()
				_, err := cl.MyQuery(bg, ctx(), "Global", "Setting", 0, "SELECT SLEEP(3), '"+marker+"'", nil, "")
				wantErrContains(t, fmt.Sprintf("client %d call %d", w, i), err, "timeout: query_timeout 1s passed")
				if err != nil && strings.Contains(err.Error(), "circuit open") {
					t.Errorf("client %d call %d: %v", w, i, err)
				}
				if d := time.Since(start); d > 2500*time.Millisecond {
					t.Errorf("client %d call %d took %s", w, i, d)
				}
			}
		}()
	}
	wg.Wait()
	c := f.dial(t, allModes[0])
	if r, err := c.MyQuery(bg, ctx(), "Global", "Setting", 0, "SELECT v FROM Setting WHERE k = 'a'", nil, ""); err != nil || r.Rows[0][0] != "1" {
		t.Errorf("a quick statement after the slow ones: %v, %v", r.GetRows(), err)
	}
	testenv.Eventually(t, 2*time.Second, "the slow statements to be killed on the server", func() bool { return testenv.MySQLRunning(t, db, marker) == 0 })
}
