package bench

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/testenv"
	"github.com/fae-go/fae/pool"
	"github.com/fae-go/fae/servant"
)

// BenchmarkMongoFindOne measures mg_find_one calls/s of one small document by
// _id: through faed (in-process engine and servant, loopback TCP, binary
// protocol, buffered transport, 16 sessions) and, as the baseline in the same
// run, the driver's FindOne called directly by 16 callers, with the driver's
// default options and with those faed sets (io_timeout 30s deadline, no
// retries). All use at most 16 connections to FerretDB.
func BenchmarkMongoFindOne(b *testing.B) {
	testenv.RequireServer(b, "FerretDB", testenv.MongoAddr)
	const db = "fae_bench"
	coll := "mgbench_" + strconv.FormatInt(time.Now().UnixNano(), 10)
	direct := mongoBenchClient(b, options.Client())
	c := direct.Database(db).Collection(coll)
	if _, err := c.InsertOne(context.Background(), bson.D{{Key: "_id", Value: 1}, {Key: "name", Value: "bench"}, {Key: "n", Value: 42}}); err != nil {
		b.Fatal(err)
	}
	defer c.Drop(context.Background())
	query, _ := bson.Marshal(bson.D{{Key: "_id", Value: 1}})

	b.Run("path=fae/sessions=16", func(b *testing.B) {
		addr := serveFaed(b, servant.Config{IdgenWorkerID: 1, Mongodb: mongoBenchConfig(b, db)})
		ctx := &rpc.Context{Rid: 1, Reason: "bench.findOne"}
		runConcurrent(b, func(int) (func() error, func()) {
			cl, done := dialFaed(b, addr)
			return func() error {
				_, err := cl.MgFindOne(context.Background(), ctx, "default", coll, 0, query, nil)
				return err
			}, done
		})
	})
	b.Run("path=driver/callers=16", func(b *testing.B) { runDriverFindOne(b, c, query, 0) })
	faeLike := mongoBenchClient(b, options.Client().SetTimeout(30*time.Second).SetServerSelectionTimeout(4*time.Second).
		SetConnectTimeout(4*time.Second).SetHeartbeatInterval(120*time.Second).SetRetryReads(false).SetRetryWrites(false))
	b.Run("path=driver-fae-options/callers=16", func(b *testing.B) {
		runDriverFindOne(b, faeLike.Database(db).Collection(coll), query, 30*time.Second)
	})
}

func mongoBenchClient(b *testing.B, opts *options.ClientOptions) *mongo.Client {
	c, err := mongo.Connect(opts.SetHosts([]string{testenv.MongoAddr}).SetDirect(true).SetMaxPoolSize(concurrency))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Disconnect(context.Background()) })
	return c
}

// mongoBenchConfig is servants.mongodb with one server entry, pool "default".
func mongoBenchConfig(b *testing.B, db string) *pool.MongoConfig {
	host, port, _ := net.SplitHostPort(testenv.MongoAddr)
	p, _ := strconv.Atoi(port)
	var c pool.MongoConfig
	c.SetDefaults()
	c.MaxConnsPerServer = concurrency
	c.Servers = []pool.MongoServerConfig{{Pool: "default", Host: host, Port: pool.Port(p), DB: db}}
	if err := c.Validate("servants.mongodb"); err != nil {
		b.Fatal(err)
	}
	return &c
}

// runDriverFindOne calls FindOne from 16 callers, each call bounded by timeout when > 0.
func runDriverFindOne(b *testing.B, c *mongo.Collection, query []byte, timeout time.Duration) {
	runConcurrent(b, func(int) (func() error, func()) {
		return func() error {
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if timeout > 0 {
				ctx, cancel = context.WithTimeout(ctx, timeout)
			}
			defer cancel()
			_, err := c.FindOne(ctx, query).Raw()
			return err
		}, func() {}
	})
}
