package pool

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
)

var mysqlTestAddr = "127.0.0.1:" + envOr("FAE_MYSQL_PORT", "13306")

// testMySQL is a MySQL of one global server "Global" on the shared MariaDB
// (database faep_stmt), with a statement cache of stmtItems.
func testMySQL(t *testing.T, stmtItems int) *MySQL {
	t.Helper()
	requireTCP(t, "MariaDB", mysqlTestAddr)
	host, port, _ := strings.Cut(mysqlTestAddr, ":")
	p, _ := strconv.Atoi(port)
	var c MysqlConfig
	c.SetDefaults()
	c.Servers = []MysqlServerConfig{{Pool: "Global", Host: host, Port: Port(p), DB: "mysql", Username: "fae", Password: "fae", Charset: "utf8mb4"}}
	c.GlobalPools = []string{"Global"}
	c.CachePrepareStmtMaxItems = stmtItems
	c.MaxIdleConnsPerServer = 8
	if err := c.Validate("servants.mysql"); err != nil {
		t.Fatal(err)
	}
	m, err := NewMySQL(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// TestStmtCachePreparesOnce: concurrent first uses of one statement prepare it once.
func TestStmtCachePreparesOnce(t *testing.T) {
	m := testMySQL(t, 16)
	srv, _ := m.Server("Global")
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, rows, err := srv.Query(context.Background(), "SELECT ? + 1", []any{"41"}, true); err != nil || rows[0][0] != "42" {
				t.Errorf("query: %v %v", rows, err)
			}
		}()
	}
	wg.Wait()
	if n := srv.stmts.prepares.Load(); n != 1 {
		t.Errorf("16 concurrent first uses prepared %d times, want 1", n)
	}
}

// TestStmtCacheEvictionInUse: with room for one statement, calls alternating
// three statements concurrently never use a statement closed under them; evicted
// statements are closed once unused.
func TestStmtCacheEvictionInUse(t *testing.T) {
	m := testMySQL(t, 1)
	srv, _ := m.Server("Global")
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				n := (g + i) % 3
				q := fmt.Sprintf("SELECT SLEEP(0.001), %d + ?", n)
				_, rows, err := srv.Query(context.Background(), q, []any{"1"}, true)
				if err != nil || rows[0][1] != strconv.Itoa(n+1) {
					t.Errorf("%s: %v %v", q, rows, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if l := srv.stmts.Len(); l != 1 {
		t.Errorf("cache holds %d statements, want 1", l)
	}
	if p, c := srv.stmts.prepares.Load(), srv.stmts.closes.Load(); p < 3 || c != p-1 {
		t.Errorf("prepared %d, closed %d: every evicted statement should be closed once unused", p, c)
	}
}
