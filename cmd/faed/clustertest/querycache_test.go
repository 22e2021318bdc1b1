package clustertest

import (
	"database/sql"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

// Issue 8: a cacheKey'd my_query sent to each node is answered from one
// owner's query cache: the row changed behind fae's back is not seen through
// any node until the key is evicted (through any node) or a write with the
// same cacheKey invalidates it.
func TestQueryCacheOnOwner(t *testing.T) {
	db, table, mysql := mysqlTable(t, "qc", "id INT PRIMARY KEY, v VARCHAR(16) NOT NULL", "1, 'a'")
	_, nodes := startCluster(t, 3, mysql)
	cs := []*client{nodes[0].dial(t), nodes[1].dial(t), nodes[2].dial(t)}
	key := "qc:" + table
	read := func(c *client) string {
		t.Helper()
		r, err := c.MyQuery(bg, ctx(), "Global", table, 0, "SELECT v FROM "+table+" WHERE id = ?", []string{"1"}, key)
		if err != nil || len(r.Rows) != 1 {
			t.Fatalf("my_query: %v %v", r, err)
		}
		return r.Rows[0][0]
	}
	if v := read(cs[0]); v != "a" {
		t.Fatalf("first read %q", v)
	}
	if _, err := db.Exec("UPDATE " + table + " SET v = 'b' WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	for i, c := range cs {
		if v := read(c); v != "a" {
			t.Fatalf("read through node%d = %q, want the owner's cached \"a\"", i, v)
		}
	}
	if err := cs[2].MyEvict(bg, ctx(), key); err != nil {
		t.Fatal(err)
	}
	if v := read(cs[1]); v != "b" {
		t.Fatalf("read after my_evict through another node = %q, want \"b\"", v)
	}
	// A write with the cacheKey, through any node, invalidates the owner's entry.
	if _, err := cs[1].MyQuery(bg, ctx(), "Global", table, 0, "UPDATE "+table+" SET v = 'c' WHERE id = 1", nil, key); err != nil {
		t.Fatal(err)
	}
	for i, c := range cs {
		if v := read(c); v != "c" {
			t.Fatalf("read through node%d after a cacheKey'd write = %q, want \"c\"", i, v)
		}
	}
}

// mysqlTable creates a table of the test's own in fae_test on the shared
// MariaDB with columns cols and one row, drops it at the end, and returns the
// database handle, the table's name and a servants.mysql section whose global
// pool "Global" reaches it.
func mysqlTable(t *testing.T, prefix, cols, row string) (*sql.DB, string, string) {
	t.Helper()
	testenv.RequireServer(t, "MariaDB", testenv.MySQLAddr)
	db := testenv.OpenMySQL(t, testenv.MySQLAddr, "fae_test")
	table := fmt.Sprintf("%s_%d_%d", prefix, os.Getpid(), time.Now().UnixNano())
	if _, err := db.Exec("CREATE TABLE " + table + " (" + cols + ")"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Exec("DROP TABLE " + table) })
	if _, err := db.Exec("INSERT INTO " + table + " VALUES (" + row + ")"); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(testenv.MySQLAddr, ":")
	return db, table, fmt.Sprintf(`mysql: {
            servers: [{ pool: "Global", host: %q, port: %s, db: "fae_test", username: "fae", password: "fae" }]
            global_pools: ["Global"]
        }`, host, port)
}
