package main_test

import (
	"database/sql"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

// comSelect reads MariaDB's own count of SELECT statements run.
func comSelect(t *testing.T, db *sql.DB) int64 {
	t.Helper()
	var name string
	var n int64
	if err := db.QueryRow("SHOW GLOBAL STATUS LIKE 'Com_select'").Scan(&name, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestMySingleflight: N concurrent identical misses of one cacheKey run one
// query, counted by MariaDB itself (a MariaDB of the test's own, so no other
// test's SELECTs are counted).
func TestMySingleflight(t *testing.T) {
	srv := testenv.StartMariaDB(t)
	db := setupMysqlSchema(t, srv.Addr())
	m := allModes[0]
	dir := t.TempDir()
	f := startFaedIn(t, dir, m.config(dir, "", mysqlSection(srv.Addr(), "")))
	const callers = 20
	clients := make([]*client, callers)
	for i := range clients {
		clients[i] = f.dial(t, m)
	}
	// Warm the pool: a new connection also runs SELECT CONNECTION_ID() (for KILL QUERY).
	if _, err := clients[0].MyQuery(bg, ctx(), "Global", "Setting", 0, "SELECT 1", nil, ""); err != nil {
		t.Fatal(err)
	}
	before := comSelect(t, db)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, err := c.MyQuery(bg, ctx(), "Global", "Setting", 0, "SELECT SLEEP(0.5) AS s, v FROM Setting WHERE k = ?", []string{"a"}, "flight:a")
			if err != nil || len(r.Rows) != 1 || r.Rows[0][1] != "1" {
				t.Errorf("caller: %v %v", r.GetRows(), err)
			}
		}()
	}
	close(start)
	wg.Wait()
	// comSelect's own SHOW is not a SELECT; the delta is what faed ran.
	if delta := comSelect(t, db) - before; delta != 1 {
		t.Errorf("%d concurrent identical misses ran %d SELECTs, want 1", callers, delta)
	}
}

// TestMyBreaker: a dead MariaDB makes calls fail fast, the breaker opens after
// failure_allowance (3) failures, and calls succeed again within retry_interval
// (1s) after the server is back.
func TestMyBreaker(t *testing.T) {
	srv := testenv.StartMariaDB(t)
	setupMysqlSchema(t, srv.Addr())
	m := allModes[0]
	dir := t.TempDir()
	f := startFaedIn(t, dir, m.config(dir, "", mysqlSection(srv.Addr(), `timeout: "1s"`)))
	c := f.dial(t, m)
	q := func() error {
		_, err := c.MyQuery(bg, ctx(), "Global", "Setting", 0, "SELECT v FROM Setting WHERE k = 'a'", nil, "")
		return err
	}
	if err := q(); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	var open error
	for i := 0; i < 10 && open == nil; i++ {
		start := time.Now()
		err := q()
		if err == nil {
			t.Fatal("query succeeded with MariaDB stopped")
		}
		if el := time.Since(start); el > 3*time.Second {
			t.Errorf("a call took %s with MariaDB down; want it to fail fast", el)
		}
		if strings.Contains(err.Error(), "server Global ("+srv.Addr()+"): circuit open") {
			open = err
		}
	}
	if open == nil {
		t.Fatal("breaker never opened")
	}
	start := time.Now()
	if err := q(); err == nil || !strings.Contains(err.Error(), "circuit open") || time.Since(start) > 100*time.Millisecond {
		t.Errorf("open breaker: %v after %s, want an immediate circuit open", err, time.Since(start))
	}

	srv.Start()
	back := time.Now()
	testenv.Eventually(t, 10*time.Second, "queries to succeed after MariaDB is back", func() bool { return q() == nil })
	if el := time.Since(back); el > 5*time.Second {
		t.Errorf("recovered %s after the restart; want within about retry_interval (1s)", el)
	}
	// Many concurrent callers all succeed again.
	var wg sync.WaitGroup
	var errs atomic.Int64
	for i := 0; i < 16; i++ {
		cl := f.dial(t, m)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				if _, err := cl.MyQuery(bg, ctx(), "Global", "Setting", 0, "SELECT 1", nil, ""); err != nil {
					errs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if errs.Load() != 0 {
		t.Errorf("%d calls failed after recovery", errs.Load())
	}
}
