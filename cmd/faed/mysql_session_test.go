package main_test

import (
	"fmt"
	"sync"
	"testing"
)

// TestMySessionStateRefused: on a pool of one connection, where every call
// shares the same server session, clients that try to change it (SET SESSION
// sql_mode, GET_LOCK, SET @v, SET NAMES) are refused, each with its reason,
// while other clients keep reading the session as the server set it up:
// the default sql_mode, lock 'x' free, @v unset, the configured charset.
func TestMySessionStateRefused(t *testing.T) {
	f, c, _ := startMysqlFaed(t, `max_idle_conns_per_server: 1
            max_conns_per_server: 1`)
	const probe = "SELECT @@SESSION.sql_mode, IS_FREE_LOCK('x'), COALESCE(@v, 'unset'), @@character_set_client"
	r, err := c.MyQuery(bg, ctx(), "Global", "Setting", 0, probe, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint(r.Rows)
	if r.Rows[0][1] != "1" || r.Rows[0][2] != "unset" {
		t.Fatalf("session before: %v", want)
	}
	changes := []struct{ sql, why string }{
		{"SET SESSION sql_mode = 'ANSI_QUOTES'", "SET cannot work over a connection pool: it changes the session"},
		{"SELECT GET_LOCK('x', 1)", "GET_LOCK() cannot work over a connection pool: the lock stays held"},
		{"SET @v = 'leaked'", "SET @variable cannot work over a connection pool"},
		{"SELECT @v := 'leaked'", "assigning a user variable cannot work over a connection pool"},
		{"SET NAMES latin1", "set the charset key of the server entry"},
		{"/*!40101 SET sql_mode = '' */", "SET cannot work over a connection pool"},
	}
	var wg sync.WaitGroup
	for w := range 6 {
		cl := f.dial(t, allModes[0])
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				if w%2 == 0 {
					ch := changes[(w/2+i)%len(changes)]
					_, err := cl.MyQuery(bg, ctx(), "Global", "Setting", 0, ch.sql, nil, "")
					wantErrContains(t, ch.sql, err, "mysql: statement refused: ", ch.why)
					continue
				}
				r, err := cl.MyQuery(bg, ctx(), "Global", "Setting", 0, probe, nil, "")
				if err != nil || fmt.Sprint(r.Rows) != want {
					t.Errorf("client %d read the session as %v, %v; want %s", w, r.GetRows(), err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	// A string or a comment that merely mentions them runs.
	r, err = c.MyQuery(bg, ctx(), "Global", "Setting", 0, "SELECT 'SET @x := 1', \"GET_LOCK('x', 1)\" -- SET NAMES latin1", nil, "")
	if err != nil || fmt.Sprint(r.Rows) != "[[SET @x := 1 GET_LOCK('x', 1)]]" {
		t.Errorf("statement mentioning them: %v, %v", r.GetRows(), err)
	}
}
