package bench

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/pool"
	"github.com/fae-go/fae/servant"
)

// BenchmarkMongoFindOne measures mg_find_one calls/s of one small document by
// _id on the FerretDB of contrib/test-services (127.0.0.1:$FAE_MONGO_PORT,
// default 17017): through fae (in-process engine and servant, loopback TCP,
// binary protocol, buffered transport, 16 sessions) and, as the baseline in
// the same run, the driver's FindOne called directly by 16 goroutines, with
// the driver's default options and with those faed sets. All use at most 16
// connections to FerretDB. Fails when FerretDB is not running.
func BenchmarkMongoFindOne(b *testing.B) {
	addr := requireFerretDB(b)
	const db, sessions = "fae_bench", 16
	coll := "mgbench_" + strconv.FormatInt(time.Now().UnixNano(), 10)
	direct, err := mongo.Connect(options.Client().SetHosts([]string{addr}).SetDirect(true).SetMaxPoolSize(sessions))
	if err != nil {
		b.Fatal(err)
	}
	defer direct.Disconnect(context.Background())
	c := direct.Database(db).Collection(coll)
	if _, err := c.InsertOne(context.Background(), bson.D{{Key: "_id", Value: 1}, {Key: "name", Value: "bench"}, {Key: "n", Value: 42}}); err != nil {
		b.Fatal(err)
	}
	defer c.Drop(context.Background())
	query, _ := bson.Marshal(bson.D{{Key: "_id", Value: 1}})

	b.Run("path=fae/sessions=16", func(b *testing.B) {
		srvAddr, stop := startMongoFae(b, addr, db, sessions)
		defer stop()
		runFindOne(b, srvAddr, sessions, coll, query)
	})
	b.Run("path=driver/goroutines=16", func(b *testing.B) {
		runDriverFindOne(b, c, sessions, query, 0)
	})
	// The driver with the options and per-call deadline faed gives it
	// (io_timeout 30s, no retries), to tell their cost from fae's own.
	faeLike, err := mongo.Connect(options.Client().SetHosts([]string{addr}).SetDirect(true).SetMaxPoolSize(sessions).
		SetTimeout(30 * time.Second).SetServerSelectionTimeout(4 * time.Second).SetConnectTimeout(4 * time.Second).
		SetHeartbeatInterval(120 * time.Second).SetRetryReads(false).SetRetryWrites(false))
	if err != nil {
		b.Fatal(err)
	}
	defer faeLike.Disconnect(context.Background())
	b.Run("path=driver-fae-options/goroutines=16", func(b *testing.B) {
		runDriverFindOne(b, faeLike.Database(db).Collection(coll), sessions, query, 30*time.Second)
	})
}

// runDriverFindOne calls FindOne from sessions goroutines, each call bounded by timeout when > 0.
func runDriverFindOne(b *testing.B, c *mongo.Collection, sessions int, query []byte, timeout time.Duration) {
	b.SetParallelism((sessions + 1) / 2)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if timeout > 0 {
				ctx, cancel = context.WithTimeout(ctx, timeout)
			}
			_, err := c.FindOne(ctx, query).Raw()
			cancel()
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
}

// requireFerretDB returns the address of the FerretDB of contrib/test-services
// and fails the benchmark when it does not accept connections.
func requireFerretDB(b *testing.B) string {
	port := os.Getenv("FAE_MONGO_PORT")
	if port == "" {
		port = "17017"
	}
	addr := "127.0.0.1:" + port
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		b.Fatalf("FerretDB at %s is not running (contrib/test-services start): %v", addr, err)
	}
	c.Close()
	return addr
}

// startMongoFae serves a servant with servants.mongodb (one server entry,
// pool "default") on a loopback engine.Server; it returns its address.
func startMongoFae(b *testing.B, mongoAddr, db string, conns int) (string, func()) {
	host, port, _ := net.SplitHostPort(mongoAddr)
	p, _ := strconv.Atoi(port)
	var mcfg pool.MongoConfig
	mcfg.SetDefaults()
	mcfg.MaxConnsPerServer = conns
	mcfg.Servers = []pool.MongoServer{{Pool: "default", Host: host, Port: pool.Port(p), DB: db}}
	if err := mcfg.Validate("servants.mongodb"); err != nil {
		b.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	svt, err := servant.New(servant.Config{IdgenWorkerID: 1, Mongodb: &mcfg}, servant.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	var cfg engine.Config
	cfg.SetDefaults()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.SessionTimeout, cfg.IOTimeout = 0, 0
	srv := engine.NewServer(cfg, rpc.NewFunServantProcessor(svt), quiet)
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	return ln.Addr().String(), func() { srv.Close(); svt.Close() }
}

func runFindOne(b *testing.B, addr string, sessions int, coll string, query []byte) {
	b.SetParallelism((sessions + 1) / 2) // × GOMAXPROCS goroutines; one session each
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
		rctx := &rpc.Context{Rid: 1, Reason: "bench.findOne"}
		for pb.Next() {
			if _, err := c.MgFindOne(context.Background(), rctx, "default", coll, 0, query, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
}
