package bench

import (
	"context"
	"database/sql"
	"strconv"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/pool"
	"github.com/fae-go/fae/servant"
)

// mysqlBenchAddr is the shared MariaDB of contrib/test-services.
var mysqlBenchAddr = "127.0.0.1:" + envOr("FAE_MYSQL_PORT", "13306")

// BenchmarkMyQuery measures my_query of one row by primary key, calls/s at 16
// concurrent sessions over loopback: through faed with the query cache (a hit
// every time), through faed without it (a prepared statement on MariaDB), and,
// as the baseline in the same run, a direct database/sql prepared query of the
// same row by 16 callers.
func BenchmarkMyQuery(b *testing.B) {
	requireServers(b, "MariaDB", []string{mysqlBenchAddr})
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
	port, _ := strconv.Atoi(envOr("FAE_MYSQL_PORT", "13306"))
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
		cfg := mysql.NewConfig()
		cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = "fae", "fae", "tcp", mysqlBenchAddr, dbName
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			b.Fatal(err)
		}
		db := sql.OpenDB(conn)
		db.SetMaxIdleConns(32)
		b.Cleanup(func() { db.Close() })
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
