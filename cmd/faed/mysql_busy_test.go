package main_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

// TestMyWaitingCallsBound: faed with max_conns_per_server 2 and
// max_waiting_calls 3 on the shared MariaDB; 20 clients call my_query
// SELECT SLEEP(1) on pool Global at once. 2 run, 3 wait and then run, and
// the other 15 clients are told at once (well under timeout, 10s) that the
// server is busy, with the limit in the message. Meanwhile lc_get, rd_call
// and my_query on another server entry of the same MariaDB are served
// (the bound is per server). The refusals show as kind "busy" in /svt/stat
// and in fae_backend_operations_total.
func TestMyWaitingCallsBound(t *testing.T) {
	testenv.RequireServer(t, "MariaDB", testenv.MySQLAddr)
	testenv.RequireServer(t, "redis", testenv.RedisAddr)
	setupMysqlSchema(t, testenv.MySQLAddr)
	m := allModes[0]
	dir := t.TempDir()
	servants := mysqlSection(testenv.MySQLAddr, `timeout: "10s"
            max_idle_conns_per_server: 2
            max_conns_per_server: 2
            max_waiting_calls: 3`) + fmt.Sprintf(`
        redis: { pools: [ { name: "default", servers: [ { addr: %q } ] } ] }`, testenv.RedisAddr)
	f := startFaedIn(t, dir, m.config(dir, "", servants))
	other := f.dial(t, m)
	if _, err := other.LcSet(bg, ctx(), "busy-test", []byte("v")); err != nil {
		t.Fatal(err)
	}
	clients := make([]*client, 20)
	for i := range clients {
		clients[i] = f.dial(t, m)
	}
	type result struct {
		err  error
		took time.Duration
	}
	results := make(chan result, len(clients))
	start := make(chan struct{})
	for _, c := range clients {
		go func() {
			<-start
			t0 := time.Now()
			_, err := c.MyQuery(bg, ctx(), "Global", "Setting", 0, "SELECT SLEEP(1)", nil, "")
			results <- result{err, time.Since(t0)}
		}()
	}
	close(start)

	want := fmt.Sprintf(`mysql query: pool "Global", server Global (%s): busy: 3 calls already waiting for a connection to %s (max_waiting_calls 3)`,
		testenv.MySQLAddr, testenv.MySQLAddr)
	for i := range 15 {
		select {
		case r := <-results:
			if r.err == nil || !strings.Contains(r.err.Error(), want) {
				t.Fatalf("call %d of the burst to end: %v; want an error containing %q", i, r.err, want)
			}
			if r.took > time.Second {
				t.Errorf("refusal %d took %s, want well under timeout (10s)", i, r.took)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("no refusal within 30s")
		}
	}
	// The 5 calls of Global still hold or wait for its connections.
	served := time.Now()
	if v, err := other.LcGet(bg, ctx(), "busy-test"); err != nil || string(v) != "v" {
		t.Errorf("lc_get during the burst = %q, %v", v, err)
	}
	k := kvKey(t, "k")
	rdWant(t, other, "default", "SET", []string{k, "v", "EX", "60"}, "OK")
	rdWant(t, other, "default", "GET", []string{k}, "v")
	if r, err := other.MyQuery(bg, ctx(), "ShardLookup", "UserLookup", 0, "SELECT COUNT(*) FROM UserLookup", nil, ""); err != nil || r.Rows[0][0] != "6" {
		t.Errorf("my_query on another server entry during the burst = %v, %v", r, err)
	}
	if d := time.Since(served); d > time.Second {
		t.Errorf("the other calls took %s during the burst", d)
	}
	if len(results) == 5 {
		t.Error("the held calls ended before the other calls ran: the test proved nothing about them")
	}
	for i := range 5 {
		if r := <-results; r.err != nil {
			t.Errorf("held or waiting call %d: %v", i, r.err)
		}
	}
	if _, err := clients[0].MyQuery(bg, ctx(), "Global", "Setting", 0, "SELECT 1", nil, ""); err != nil {
		t.Errorf("my_query after the burst: %v", err)
	}

	server := "Global (" + testenv.MySQLAddr + ")"
	body, _ := httpGet(t, "http://"+f.httpAddr+"/svt/stat")
	var st struct {
		Backends []struct {
			Backend, Pool, Server, Op string
			Kinds                     map[string]int64
		} `json:"backends"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	busy := int64(-1)
	for _, b := range st.Backends {
		if b.Backend == "mysql" && b.Pool == "Global" && b.Server == server && b.Op == "query" {
			busy = b.Kinds["busy"]
		}
	}
	if busy != 15 {
		t.Errorf("/svt/stat: mysql Global query busy = %d, want 15", busy)
	}
	metric := fmt.Sprintf(`fae_backend_operations_total{backend="mysql",kind="busy",op="query",pool="Global",server=%q}`, server)
	if got := scrape(t, f.httpAddr)[metric]; got != 15 {
		t.Errorf("%s = %v, want 15", metric, got)
	}
}
