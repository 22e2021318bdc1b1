package bench

import (
	"context"
	"database/sql"
	"net"
	"strconv"
	"testing"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/testenv"
	"github.com/fae-go/fae/pool"
	"github.com/fae-go/fae/servant"
)

// BenchmarkMyQuery measures my_query of one row by primary key, calls/s at 16
// concurrent sessions over loopback: through faed with the query cache (a hit
// every time), through faed without it (a prepared statement on MariaDB), and,
// as the baseline in the same run, a direct database/sql prepared query of the
// same row by 16 callers.
func BenchmarkMyQuery(b *testing.B) {
	testenv.RequireServer(b, "MariaDB", testenv.MySQLAddr)
	db := mysqlBenchSchema(b)
	addr := serveFaed(b, servant.Config{IdgenWorkerID: 1, Mysql: mysqlBenchConfig()})
	const q = "SELECT uid, name, gold FROM BenchUser WHERE uid = ?"
	ctx := &rpc.Context{Rid: 1, Reason: "bench"}
	viaFaed := func(cacheKey string) func(int) (func() error, func()) {
		return func(int) (func() error, func()) {
			c, done := dialFaed(b, addr)
			return func() error {
				_, err := c.MyQuery(context.Background(), ctx, "Global", "BenchUser", 0, q, []string{"1"}, cacheKey)
				return err
			}, done
		}
	}
	b.Run("path=fae-cached/sessions=16", func(b *testing.B) { runConcurrent(b, viaFaed("bench:user:1")) })
	b.Run("path=fae-uncached/sessions=16", func(b *testing.B) { runConcurrent(b, viaFaed("")) })
	b.Run("path=direct-database-sql/callers=16", func(b *testing.B) {
		stmt, err := db.Prepare(q)
		if err != nil {
			b.Fatal(err)
		}
		defer stmt.Close()
		runConcurrent(b, func(int) (func() error, func()) {
			var uid, gold int
			var name string
			return func() error { return stmt.QueryRow("1").Scan(&uid, &name, &gold) }, func() {}
		})
	})
}

func mysqlBenchConfig() *pool.MySQLConfig {
	var c pool.MySQLConfig
	c.SetDefaults()
	_, p, _ := net.SplitHostPort(testenv.MySQLAddr)
	port, _ := strconv.Atoi(p)
	c.Servers = []pool.MySQLServerConfig{{Pool: "Global", Host: "127.0.0.1", Port: pool.Port(port),
		DB: "faeb_Global", Username: "fae", Password: "fae", Charset: "utf8mb4"}}
	c.GlobalPools = []string{"Global"}
	c.MaxIdleConnsPerServer, c.MaxConnsPerServer = 16, 32
	c.CachePrepareStmtMaxItems = 64
	if err := c.Validate("servants.mysql"); err != nil {
		panic(err)
	}
	return &c
}

// mysqlBenchSchema makes faeb_Global.BenchUser with one row and returns a pool on that database.
func mysqlBenchSchema(b *testing.B) *sql.DB {
	open := func(dbName string) *sql.DB {
		db := testenv.OpenMySQL(b, testenv.MySQLAddr, dbName)
		db.SetMaxIdleConns(32)
		return db
	}
	admin := open("")
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS faeb_Global",
		"CREATE TABLE IF NOT EXISTS faeb_Global.BenchUser (uid BIGINT PRIMARY KEY, name VARCHAR(64), gold INT)",
		"REPLACE INTO faeb_Global.BenchUser VALUES (1, 'bench', 100)",
	} {
		if _, err := admin.Exec(q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	return open("faeb_Global")
}
