package bench

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/go-sql-driver/mysql"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/pool"
	"github.com/fae-go/fae/servant"
)

// mysqlBenchAddr is the shared MariaDB of contrib/test-services.
var mysqlBenchAddr = "127.0.0.1:" + envOr("FAE_MYSQL_PORT", "13306")

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// BenchmarkMyQuery measures my_query of one row by primary key, calls/s at 16
// concurrent sessions over loopback: through faed with the query cache (a hit
// every time), through faed without it (a prepared statement on MariaDB), and,
// as the baseline in the same run, a direct database/sql prepared query of the
// same row from 16 goroutines.
func BenchmarkMyQuery(b *testing.B) {
	db := mysqlBenchSchema(b)
	addr := serveServant(b, servant.Config{IdgenWorkerID: 1, Mysql: mysqlBenchConfig()})
	const q = "SELECT uid, name, gold FROM BenchUser WHERE uid = ?"

	b.Run("path=fae-cached/sessions=16", func(b *testing.B) {
		parallelCalls(b, addr, 16, func(c *rpc.FunServantClient, ctx *rpc.Context) error {
			_, err := c.MyQuery(context.Background(), ctx, "Global", "BenchUser", 0, q, []string{"1"}, "bench:user:1")
			return err
		})
	})
	b.Run("path=fae-uncached/sessions=16", func(b *testing.B) {
		parallelCalls(b, addr, 16, func(c *rpc.FunServantClient, ctx *rpc.Context) error {
			_, err := c.MyQuery(context.Background(), ctx, "Global", "BenchUser", 0, q, []string{"1"}, "")
			return err
		})
	})
	b.Run("path=direct-database-sql/goroutines=16", func(b *testing.B) {
		stmt, err := db.Prepare(q)
		if err != nil {
			b.Fatal(err)
		}
		defer stmt.Close()
		b.SetParallelism(8)
		b.ResetTimer()
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			var uid, gold int
			var name string
			for pb.Next() {
				if err := stmt.QueryRow("1").Scan(&uid, &name, &gold); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
	})
}

func mysqlBenchConfig() *pool.MysqlConfig {
	var c pool.MysqlConfig
	c.SetDefaults()
	c.Servers = []pool.MysqlServerConfig{{Pool: "Global", Host: "127.0.0.1", Port: pool.Port(mustAtoi(envOr("FAE_MYSQL_PORT", "13306"))),
		DB: "faeb_Global", Username: "fae", Password: "fae", Charset: "utf8mb4"}}
	c.GlobalPools = []string{"Global"}
	c.MaxIdleConnsPerServer, c.MaxConnsPerServer = 16, 32
	c.CachePrepareStmtMaxItems = 64
	if err := c.Validate("servants.mysql"); err != nil {
		panic(err)
	}
	return &c
}

func mysqlBenchSchema(b *testing.B) *sql.DB {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = "fae", "fae", "tcp", mysqlBenchAddr
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		b.Fatal(err)
	}
	db := sql.OpenDB(conn)
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS faeb_Global",
		"CREATE TABLE IF NOT EXISTS faeb_Global.BenchUser (uid BIGINT PRIMARY KEY, name VARCHAR(64), gold INT)",
		"REPLACE INTO faeb_Global.BenchUser VALUES (1, 'bench', 100)",
	} {
		if _, err := db.Exec(q); err != nil {
			b.Fatalf("MariaDB at %s (contrib/test-services start): %s: %v", mysqlBenchAddr, q, err)
		}
	}
	db.Close()
	cfg.DBName = "faeb_Global"
	conn, _ = mysql.NewConnector(cfg)
	db = sql.OpenDB(conn)
	db.SetMaxIdleConns(32)
	b.Cleanup(func() { db.Close() })
	return db
}

// serveServant serves a FunServant for cfg on loopback through fae's engine; it returns the address.
func serveServant(b *testing.B, cfg servant.Config) string {
	svt, err := servant.New(cfg, servant.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	var ec engine.Config
	ec.SetDefaults()
	ec.ListenAddr = "127.0.0.1:0"
	ec.SessionTimeout, ec.IOTimeout = 0, 0
	srv := engine.NewServer(ec, rpc.NewFunServantProcessor(svt), slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln, err := net.Listen("tcp", ec.ListenAddr)
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close(); svt.Close() })
	return ln.Addr().String()
}

// parallelCalls runs call from sessions concurrent sessions (one Go Thrift client
// each, binary protocol, buffered transport) and reports calls/s.
func parallelCalls(b *testing.B, addr string, sessions int, call func(*rpc.FunServantClient, *rpc.Context) error) {
	b.SetParallelism((sessions + 1) / 2)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		sock := thrift.NewTSocketConf(addr, &thrift.TConfiguration{ConnectTimeout: 5 * time.Second})
		trans := thrift.NewTBufferedTransport(sock, 4096)
		if err := trans.Open(); err != nil {
			b.Error(err)
			return
		}
		defer trans.Close()
		c := rpc.NewFunServantClientFactory(trans, thrift.NewTBinaryProtocolFactoryConf(nil))
		ctx := &rpc.Context{Rid: time.Now().UnixNano(), Reason: "bench"}
		for pb.Next() {
			if err := call(c, ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
}

func mustAtoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}
