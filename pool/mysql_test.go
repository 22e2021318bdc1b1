package pool

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/fae-go/fae/internal/testenv"
)

var myBg = context.Background()

// myDBPrefix names the databases of this test process on the shared MariaDB,
// so that test runs of other checkouts never drop each other's.
var myDBPrefix = fmt.Sprintf("faep%d_", os.Getpid())

// myAdmin is a plain database/sql pool on the shared MariaDB (database db, "" = none).
func myAdmin(t testing.TB, db string) *sql.DB {
	t.Helper()
	testenv.RequireServer(t, "MariaDB", testenv.MySQLAddr)
	return testenv.OpenMySQL(t, testenv.MySQLAddr, db)
}

// myCreateDB creates the database myDBPrefix+name, runs stmts in it and drops
// it at the end of the test; it returns its name.
func myCreateDB(t testing.TB, name string, stmts ...string) string {
	t.Helper()
	db := myDBPrefix + name
	admin := myAdmin(t, "")
	myExec(t, admin, "DROP DATABASE IF EXISTS "+db)
	myExec(t, admin, "CREATE DATABASE "+db)
	t.Cleanup(func() { admin.Exec("DROP DATABASE IF EXISTS " + db) })
	in := myAdmin(t, db)
	for _, q := range stmts {
		myExec(t, in, q)
	}
	return db
}

func myExec(t testing.TB, db *sql.DB, q string) {
	t.Helper()
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// myConfig is a validated MySQL section: servers maps each server entry to
// its database on addr; globals are its global pools.
func myConfig(t testing.TB, addr string, servers map[string]string, globals ...string) MySQLConfig {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	p, _ := strconv.Atoi(port)
	var c MySQLConfig
	c.SetDefaults()
	for name, db := range servers {
		c.Servers = append(c.Servers, MySQLServerConfig{Pool: name, Host: host, Port: Port(p), DB: db,
			Username: "fae", Password: "fae", Charset: "utf8mb4"})
	}
	c.GlobalPools = globals
	c.MaxIdleConnsPerServer = 8
	c.Timeout = 2 * time.Second
	c.Breaker = BreakerConfig{FailureAllowance: 3, RetryInterval: time.Hour}
	return c
}

func newMyTest(t testing.TB, c MySQLConfig, obs Observer, limits Limits) *MySQL {
	t.Helper()
	if err := c.Validate("servants.mysql"); err != nil {
		t.Fatal(err)
	}
	m, err := NewMySQL(c, obs, limits)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// testMySQL is a MySQL of one global server "Global" on the shared MariaDB
// (database mysql), with a statement cache of stmtItems.
func testMySQL(t *testing.T, stmtItems int) *MySQL {
	t.Helper()
	testenv.RequireServer(t, "MariaDB", testenv.MySQLAddr)
	c := myConfig(t, testenv.MySQLAddr, map[string]string{"Global": "mysql"}, "Global")
	c.CachePrepareStmtMaxItems = stmtItems
	return newMyTest(t, c, nil, Limits{})
}

// wantMyError checks that err is a *Error of kind, op, pool and server whose text contains parts.
func wantMyError(t testing.TB, err error, kind Kind, op, pool, server string, parts ...string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Errorf("error %v (%T), want a *pool.Error of kind %v", err, err, kind)
		return
	}
	if !errors.Is(err, kind) || e.Backend != "mysql" || e.Op != op || e.Pool != pool || e.Server != server {
		t.Errorf("error %q: kind %v backend %q op %q pool %q server %q; want kind %v op %q pool %q server %q",
			err, e.Kind, e.Backend, e.Op, e.Pool, e.Server, kind, op, pool, server)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

// TestMysqlErrorKinds: every outcome of server choice and of a statement is a
// *pool.Error of its kind, naming the op, the pool and the server, with the
// distinguishing text in its cause; each server operation (lookups included)
// is observed once.
func TestMysqlErrorKinds(t *testing.T) {
	lookupDB := myCreateDB(t, "kinds_lookup",
		"CREATE TABLE UserLookup (entityId BIGINT PRIMARY KEY, shardId INT NOT NULL, shardLock INT NOT NULL DEFAULT 0)",
		"INSERT INTO UserLookup VALUES (1,1,0),(4,1,1),(9,9,0)")
	globalDB := myCreateDB(t, "kinds_global", "CREATE TABLE Setting (k VARCHAR(8) PRIMARY KEY, v VARCHAR(8) NULL)",
		"INSERT INTO Setting VALUES ('a','1'),('b',NULL)")
	shardDB := myCreateDB(t, "kinds_shard1", "CREATE TABLE UserInfo (uid BIGINT PRIMARY KEY)", "INSERT INTO UserInfo VALUES (1)")
	c := myConfig(t, testenv.MySQLAddr, map[string]string{"ShardLookup": lookupDB, "Global": globalDB, "UserShard1": shardDB},
		"ShardLookup", "Global")
	c.LookupTables = map[string]string{"UserShard": "UserLookup"}
	obs := NewCounters()
	m := newMyTest(t, c, obs, Limits{})
	at := func(name string) string { return name + " (" + testenv.MySQLAddr + ")" }

	_, _, err := m.Query(myBg, "Nope", 1, "SELECT 1", nil)
	wantMyError(t, err, KindUnknownPool, "query", "Nope", "", `pool "Nope" is not global and has no lookup table`)
	_, _, err = m.Exec(myBg, "UserShard", 0, "DELETE FROM UserInfo", nil)
	wantMyError(t, err, KindBadArgument, "exec", "UserShard", "", "sharded pool needs hintId > 0")
	_, _, err = m.Query(myBg, "UserShard", 42, "SELECT 1", nil)
	wantMyError(t, err, KindMiss, "lookup", "UserShard", at("ShardLookup"), "shard lookup: no entity 42 in UserLookup")
	_, _, err = m.Query(myBg, "UserShard", 4, "SELECT 1", nil)
	wantMyError(t, err, KindRefused, "lookup", "UserShard", at("ShardLookup"), "entity 4 is locked (shardLock 1 in UserLookup)", "being moved")
	_, _, err = m.Query(myBg, "UserShard", 9, "SELECT 1", nil)
	wantMyError(t, err, KindUnknownPool, "query", "UserShard", "", `no such server "UserShard9"`)
	for range 2 { // the second is answered by the lookup cache: no lookup
		if _, rows, err := m.Query(myBg, "UserShard", 1, "SELECT DATABASE()", nil); err != nil || rows[0][0] != shardDB {
			t.Errorf("entity 1: %v %v", rows, err)
		}
	}
	for range 5 { // statements the server rejects never trip the breaker (allowance 3)
		_, _, err = m.Query(myBg, "Global", 0, "SELEC broken", nil)
		wantMyError(t, err, KindRefused, "query", "Global", at("Global"), "Error 1064")
		_, _, err = m.Exec(myBg, "Global", 0, "INSERT INTO Setting VALUES ('a', 'dup')", nil)
		wantMyError(t, err, KindRefused, "exec", "Global", at("Global"), "Error 1062")
	}
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1062 {
		t.Errorf("the driver's error is not kept as the cause: %v", err)
	}
	if st := m.BreakerState("Global"); st != "closed" {
		t.Errorf("breaker %s after refused statements", st)
	}
	errTx := errors.New("the caller's own reason")
	err = m.Tx(myBg, "Global", 0, func(ctx context.Context, tx *sql.Tx) error { return errTx })
	wantMyError(t, err, KindRefused, "tx", "Global", at("Global"), "the caller's own reason")
	if !errors.Is(err, errTx) {
		t.Errorf("tx error %v does not wrap fn's error", err)
	}
	if _, rows, err := m.Query(myBg, "Global", 0, "SELECT k, v FROM Setting ORDER BY k", nil); err != nil || fmt.Sprint(rows) != "[[a 1] [b NULL]]" {
		t.Errorf("rows with NULL: %v, %v", rows, err)
	}

	for _, w := range []struct {
		pool, server, name string
		kind               Kind
		n                  int64
	}{
		{"", "", "query", KindUnknownPool, 1},
		{"UserShard", "", "exec", KindBadArgument, 1},
		{"UserShard", "", "query", KindUnknownPool, 1},
		{"UserShard", at("ShardLookup"), "lookup", KindMiss, 1},
		{"UserShard", at("ShardLookup"), "lookup", KindRefused, 1},
		{"UserShard", at("ShardLookup"), "lookup", KindOK, 2}, // entities 9 and 1
		{"UserShard", at("UserShard1"), "query", KindOK, 2},
		{"Global", at("Global"), "query", KindRefused, 5},
		{"Global", at("Global"), "exec", KindRefused, 5},
		{"Global", at("Global"), "tx", KindRefused, 1},
		{"Global", at("Global"), "query", KindOK, 1},
	} {
		if n := myCount(obs, w.pool, w.server, w.name, w.kind); n != w.n {
			t.Errorf("observed %d %s %s on pool %q server %q, want %d", n, w.name, w.kind, w.pool, w.server, w.n)
		}
	}
	if n := obs.Sum("mysql", KindOK) + obs.Sum("mysql", KindRefused) + obs.Sum("mysql", KindMiss) +
		obs.Sum("mysql", KindUnknownPool) + obs.Sum("mysql", KindBadArgument); n != 21 {
		t.Errorf("%d operations observed, want 21 (one per operation)", n)
	}

	m.Close()
	_, _, err = m.Query(myBg, "Global", 0, "SELECT 1", nil)
	wantMyError(t, err, KindClosed, "query", "Global", "")
}

func myCount(obs *Counters, pool, server, name string, k Kind) int64 {
	for _, oc := range obs.Snapshot() {
		if oc.Backend == "mysql" && oc.Pool == pool && oc.Server == server && oc.Name == name {
			return oc.Count(k)
		}
	}
	return 0
}

func TestMysqlNotNullable(t *testing.T) {
	db := myCreateDB(t, "nulls", "CREATE TABLE Setting (k VARCHAR(8), v VARCHAR(8) NULL)", "INSERT INTO Setting VALUES ('a','1'),('b',NULL)")
	c := myConfig(t, testenv.MySQLAddr, map[string]string{"Global": db}, "Global")
	c.AllowNullableColumns = false
	m := newMyTest(t, c, nil, Limits{})
	_, _, err := m.Query(myBg, "Global", 0, "SELECT k, v FROM Setting ORDER BY k", nil)
	wantMyError(t, err, KindRefused, "query", "Global", "Global ("+testenv.MySQLAddr+")", `NULL value in column "v" (allow_nullable_columns is false)`)
	if _, rows, err := m.Query(myBg, "Global", 0, "SELECT k FROM Setting ORDER BY k", nil); err != nil || len(rows) != 2 {
		t.Errorf("the next query: %v %v", rows, err)
	}
}

// TestMysqlServerDown: a server that refuses connections fails with
// KindServerFailure naming the dial, and after failure_allowance of them the
// breaker refuses at once (KindBreakerOpen).
func TestMysqlServerDown(t *testing.T) {
	addr := testenv.FreeAddr(t) // nothing listens there
	obs := NewCounters()
	m := newMyTest(t, myConfig(t, addr, map[string]string{"Global": "x"}, "Global"), obs, Limits{})
	for range 3 {
		_, _, err := m.Query(myBg, "Global", 0, "SELECT 1", nil)
		wantMyError(t, err, KindServerFailure, "query", "Global", "Global ("+addr+")", "dial", "connection refused")
	}
	start := time.Now()
	_, _, err := m.Query(myBg, "Global", 0, "SELECT 1", nil)
	wantMyError(t, err, KindBreakerOpen, "query", "Global", "Global ("+addr+")", ": circuit open")
	if strings.Count(err.Error(), "circuit open") != 1 || time.Since(start) > 100*time.Millisecond {
		t.Errorf("open breaker: %q after %s", err, time.Since(start))
	}
	if n := obs.Sum("mysql", KindServerFailure); n != 3 {
		t.Errorf("%d server failures observed, want 3", n)
	}
}

// TestStmtCachePreparesOnce: concurrent first uses of one statement prepare it once.
func TestMysqlStmtCachePreparesOnce(t *testing.T) {
	m := testMySQL(t, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, rows, err := m.Query(myBg, "Global", 0, "SELECT ? + 1", []any{"41"}); err != nil || rows[0][0] != "42" {
				t.Errorf("query: %v %v", rows, err)
			}
		}()
	}
	wg.Wait()
	if n := m.servers["Global"].stmts.prepares.Load(); n != 1 {
		t.Errorf("16 concurrent first uses prepared %d times, want 1", n)
	}
}

// TestStmtCacheEvictionInUse: with room for one statement, calls alternating
// three statements concurrently never use a statement closed under them; evicted
// statements are closed once unused.
func TestMysqlStmtCacheEvictionInUse(t *testing.T) {
	m := testMySQL(t, 1)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				n := (g + i) % 3
				q := fmt.Sprintf("SELECT SLEEP(0.001), %d + ?", n)
				_, rows, err := m.Query(myBg, "Global", 0, q, []any{"1"})
				if err != nil || rows[0][1] != strconv.Itoa(n+1) {
					t.Errorf("%s: %v %v", q, rows, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	stmts := m.servers["Global"].stmts
	if l := stmts.Len(); l != 1 {
		t.Errorf("cache holds %d statements, want 1", l)
	}
	if p, c := stmts.prepares.Load(), stmts.closes.Load(); p < 3 || c != p-1 {
		t.Errorf("prepared %d, closed %d: every evicted statement should be closed once unused", p, c)
	}
}

// TestMysqlPrepareOwnCtx (REVIEW §2.B5): the caller whose first use starts a
// prepare gives up while another caller waits for the same statement; the
// prepare goes on under its own ctx and the other caller gets the statement.
func TestMysqlPrepareOwnCtx(t *testing.T) {
	db := myAdmin(t, "")
	started, release := make(chan struct{}), make(chan struct{})
	var prepareCtxErr error
	c := newStmtCache(4, func(ctx context.Context, q string) (*sql.Stmt, error) {
		close(started)
		<-release
		prepareCtxErr = ctx.Err()
		return db.PrepareContext(ctx, q)
	}, time.Minute)
	const q = "SELECT 6 * 7"
	ctxA, cancelA := context.WithCancel(myBg)
	errA := make(chan error, 1)
	go func() {
		e, err := c.acquire(ctxA, q)
		if err == nil {
			c.release(e)
		}
		errA <- err
	}()
	<-started
	resultB := make(chan string, 1)
	go func() {
		e, err := c.acquire(myBg, q)
		if err != nil {
			resultB <- err.Error()
			return
		}
		defer c.release(e)
		var v string
		if err := e.stmt.QueryRow().Scan(&v); err != nil {
			v = err.Error()
		}
		resultB <- v
	}()
	testenv.Eventually(t, 5*time.Second, "the second caller to wait for the prepare", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		e, ok := c.lru.Peek(q)
		return ok && e.refs == 2
	})
	cancelA()
	select {
	case err := <-errA:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the caller who gave up got %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the caller who gave up still waits for the prepare")
	}
	close(release)
	if v := <-resultB; v != "42" {
		t.Errorf("the waiting caller got %q, want 42 (the prepare must not run under the first caller's ctx)", v)
	}
	if prepareCtxErr != nil || c.prepares.Load() != 1 {
		t.Errorf("prepare ctx %v, prepares %d; want a live ctx and one prepare", prepareCtxErr, c.prepares.Load())
	}
}

// TestMysqlAbandonedDialsNotCounted: callers that give up while their
// connection is being dialled (a timeout of 300 µs, shorter than a MariaDB
// connect and handshake) do not count against the server: after 30 of them
// the breaker (allowance 3) is still closed and a patient caller's query
// runs. Before (found by review), each abandoned dial counted, and impatient
// clients opened a healthy server's breaker for everyone.
func TestMysqlAbandonedDialsNotCounted(t *testing.T) {
	testenv.RequireServer(t, "MariaDB", testenv.MySQLAddr)
	c := myConfig(t, testenv.MySQLAddr, map[string]string{"Global": "mysql"}, "Global")
	c.MaxIdleConnsPerServer = 0 // every query dials
	m := newMyTest(t, c, nil, Limits{})
	failed := 0
	for range 30 {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Microsecond)
		if _, _, err := m.Query(ctx, "Global", 0, "SELECT 1", nil); err != nil {
			failed++
			if errors.Is(err, KindBreakerOpen) {
				cancel()
				t.Fatalf("after %d abandoned calls: %v", failed, err)
			}
		}
		cancel()
	}
	if failed < 4 {
		t.Skipf("only %d of 30 calls gave up before their connection was up: the machine connects faster than 300 µs", failed)
	}
	if _, rows, err := m.Query(myBg, "Global", 0, "SELECT 1", nil); err != nil || len(rows) != 1 {
		t.Fatalf("a patient caller after %d abandoned ones: %v, %v", failed, rows, err)
	}
}

// TestMysqlFrozenServerImpatientCallers: a server that accepts connections
// and never answers (a frozen mysqld, or a black hole behind a proxy), whose
// callers all give up (30 ms) before the connect timeout (500 ms): the dials
// run on to their timeout, which counts, and the breaker opens. Found by the
// review of 2ee664d, which stopped counting a dial whose caller had left:
// then nothing counted, and the breaker of a frozen server stayed closed.
func TestMysqlFrozenServerImpatientCallers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 100)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c // held open, never answered
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for len(accepted) > 0 {
			(<-accepted).Close()
		}
	})
	c := myConfig(t, ln.Addr().String(), map[string]string{"Global": "mysql"}, "Global")
	c.MaxIdleConnsPerServer = 0
	c.Timeout = 500 * time.Millisecond
	m := newMyTest(t, c, nil, Limits{})
	testenv.Eventually(t, 10*time.Second, "the breaker to open with every caller gone before the connect timeout", func() bool {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		time.AfterFunc(30*time.Millisecond, cancel) // the client hangs up (a deadline of its own would count as a timeout)
		start := time.Now()
		_, _, err := m.Query(ctx, "Global", 0, "SELECT 1", nil)
		if took := time.Since(start); took > 300*time.Millisecond {
			t.Fatalf("a caller of 30 ms waited %s for a connection", took)
		}
		return errors.Is(err, KindBreakerOpen)
	})
}
