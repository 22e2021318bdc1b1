package pool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// mongoPort is the FerretDB of contrib/test-services.
func mongoPort(t *testing.T) Port {
	t.Helper()
	p := os.Getenv("FAE_MONGO_PORT")
	if p == "" {
		p = "17017"
	}
	n, _ := strconv.Atoi(p)
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+p, 2*time.Second)
	if err != nil {
		t.Fatalf("FerretDB at 127.0.0.1:%s is not running (contrib/test-services start): %v", p, err)
	}
	c.Close()
	return Port(n)
}

func mongoConfig(t *testing.T, strategy string, servers ...MongoServer) MongoConfig {
	t.Helper()
	var cfg MongoConfig
	cfg.SetDefaults()
	cfg.ShardStrategy = strategy
	cfg.Servers = servers
	if err := cfg.Validate("servants.mongodb"); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newCluster(t *testing.T, cfg MongoConfig) *MongoCluster {
	t.Helper()
	c, err := NewMongoCluster(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func server(pool, db string, port Port) MongoServer {
	return MongoServer{Pool: pool, Host: "127.0.0.1", Port: port, DB: db}
}

func TestMongoServerChoice(t *testing.T) {
	legacy := newCluster(t, mongoConfig(t, "legacy", server("default", "a", 1), server("db1", "b", 1)))
	standard := newCluster(t, mongoConfig(t, "standard", server("default", "a", 1), server("db1", "b", 1), server("db2", "c", 1)))
	for _, tc := range []struct {
		c     *MongoCluster
		pool  string
		shard int32
		want  string // server entry, or the error text
	}{
		{legacy, "default", 0, "default"},
		{legacy, "database.default", 7, "default"},
		{legacy, "db1", 999999, "db1"},
		{legacy, "database.nope", 0, `mongodb: unknown pool "database.nope" (no server entry "nope")`},
		{standard, "db", 0, "db1"},
		{standard, "dbUser", 99999, "db1"},
		{standard, "db", 100000, "db2"},
		{standard, "db", 199999, "db2"},
		{standard, "default", 500000, "default"},
		{standard, "db", 200000, `mongodb: unknown pool "db" (no server entry "db3" for shard 200000, shard_strategy standard)`},
		{standard, "other", 0, `mongodb: unknown pool "other"`},
	} {
		got, err := tc.c.ServerOf(tc.pool, tc.shard)
		if err != nil {
			if !errors.Is(err, ErrMongoUnknownPool) {
				t.Errorf("%s: error %v does not wrap ErrMongoUnknownPool", tc.pool, err)
			}
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("%s %s shard %d → %q, want %q", tc.c.cfg.ShardStrategy, tc.pool, tc.shard, got, tc.want)
		}
	}
	if n := legacy.Stats.UnknownPool.Load(); n != 1 {
		t.Errorf("legacy UnknownPool = %d, want 1", n)
	}
}

func TestMongoClientOptions(t *testing.T) {
	cfg := mongoConfig(t, "legacy")
	cfg.ConnectTimeout, cfg.IOTimeout, cfg.MaxConnsPerServer, cfg.HeartbeatInterval = time.Second, 3*time.Second, 7, 15
	o := mongoClientOptions(&cfg, MongoServer{Pool: "p", Host: "h", Port: 27018, DB: "d", User: "u", Pass: "pw"})
	if o.Hosts[0] != "h:27018" || *o.ConnectTimeout != time.Second || *o.ServerSelectionTimeout != time.Second ||
		*o.Timeout != 3*time.Second || *o.MaxPoolSize != 7 || *o.HeartbeatInterval != 15*time.Second || !*o.Direct {
		t.Errorf("options: hosts %v connect %v selection %v timeout %v pool %v heartbeat %v direct %v", o.Hosts,
			*o.ConnectTimeout, *o.ServerSelectionTimeout, *o.Timeout, *o.MaxPoolSize, *o.HeartbeatInterval, *o.Direct)
	}
	if o.Auth == nil || o.Auth.Username != "u" || o.Auth.Password != "pw" || o.Auth.AuthSource != "d" {
		t.Errorf("auth = %+v, want u/pw on d", o.Auth)
	}
	cfg.HeartbeatInterval, cfg.IOTimeout = 0, 0
	o = mongoClientOptions(&cfg, MongoServer{Pool: "p", Host: "h", Port: 1, DB: "d", ReplicaSet: "rs0"})
	if o.Auth != nil || o.HeartbeatInterval != nil || o.Timeout != nil || o.Direct != nil || *o.ReplicaSet != "rs0" {
		t.Errorf("without user, heartbeat, io_timeout, with replicaSet: %+v", o)
	}
}

func TestMongoConfigValidate(t *testing.T) {
	for want, edit := range map[string]func(*MongoConfig){
		`servants.mongodb.servers[1].pool: "a" is listed twice`: func(c *MongoConfig) {
			c.Servers = []MongoServer{server("a", "x", 1), server("a", "y", 1)}
		},
		"servants.mongodb.connect_timeout: must be positive, got 0s": func(c *MongoConfig) { c.ConnectTimeout = 0 },
		"servants.mongodb.io_timeout: must not be negative, got -1s": func(c *MongoConfig) { c.IOTimeout = -time.Second },
	} {
		var c MongoConfig
		c.SetDefaults()
		edit(&c)
		if err := c.Validate("servants.mongodb"); err == nil || err.Error() != want {
			t.Errorf("error %v, want %q", err, want)
		}
	}
}

func mustBSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := bson.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMongoArgs(t *testing.T) {
	c := newCluster(t, mongoConfig(t, "legacy"))
	doc := mustBSON(t, bson.D{{Key: "a", Value: 1}})
	bad := func(err error, want string) {
		t.Helper()
		if !errors.Is(err, ErrMongoBadArgument) || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("error %v, want a bad argument starting %q", err, want)
		}
	}
	if _, err := c.docArg("doc", doc); err != nil {
		t.Error(err)
	}
	_, err := c.docArg("query", []byte("not bson"))
	bad(err, "mongodb: query is not a valid BSON document: ")
	_, err = c.docArg("doc", append(doc, 0))
	bad(err, "mongodb: doc is not a valid BSON document: 1 bytes after its end")
	_, err = c.docArg("docs[2]", nil)
	bad(err, "mongodb: docs[2] is not a valid BSON document: ")
	if q, err := c.queryArg(nil); err != nil || len(q.(bson.D)) != 0 {
		t.Errorf("empty query = %v, %v; want {}", q, err)
	}
	for _, f := range [][]byte{nil, MongoEmptyDocument()} {
		if p, err := c.fieldsArg(f); p != nil || err != nil {
			t.Errorf("fields %v = %v, %v; want no projection", f, p, err)
		}
	}
	if _, replace, err := c.changeArg(mustBSON(t, bson.D{{Key: "$set", Value: bson.D{{Key: "a", Value: 2}}}})); replace || err != nil {
		t.Errorf("operator change: replace %v, %v", replace, err)
	}
	if _, replace, err := c.changeArg(doc); !replace || err != nil {
		t.Errorf("plain change: replace %v, %v", replace, err)
	}
	_, _, err = c.changeArg(mustBSON(t, bson.D{{Key: "$set", Value: bson.D{}}, {Key: "a", Value: 1}}))
	bad(err, "mongodb: change mixes update operators ($…) and plain fields")
	_, _, err = c.changeArg(MongoEmptyDocument())
	bad(err, "mongodb: change is an empty document")
	if n := c.Stats.BadArgument.Load(); n != 5 {
		t.Errorf("BadArgument = %d, want 5", n)
	}
}

func TestMongoIDAndSortArgs(t *testing.T) {
	c := newCluster(t, mongoConfig(t, "legacy"))
	oid := bson.NewObjectID()
	if f, err := c.idArg(oid[:]); err != nil || f.(bson.D)[0].Value != oid {
		t.Errorf("12-byte id = %v, %v", f, err)
	}
	byDoc := mustBSON(t, bson.D{{Key: "_id", Value: "abc"}})
	if f, err := c.idArg(byDoc); err != nil || string(f.(bson.Raw)) != string(byDoc) {
		t.Errorf("document id = %v, %v", f, err)
	}
	for in, want := range map[string]string{
		string(mustBSON(t, bson.D{{Key: "x", Value: "abc"}})): "mongodb: id is a BSON document but not {_id: <value>}",
		// 12 bytes, but a valid document: taken as a document, not as an ObjectId
		string(mustBSON(t, bson.D{{Key: "a", Value: int32(1)}})): "mongodb: id is a BSON document but not {_id: <value>}",
		"short": "mongodb: id is neither a BSON document {_id: <value>} nor a 12-byte ObjectId (got 5 bytes)",
	} {
		if _, err := c.idArg([]byte(in)); err == nil || err.Error() != want || !errors.Is(err, ErrMongoBadArgument) {
			t.Errorf("id %q: %v, want %q", in, err, want)
		}
	}
	sort, err := c.sortArg([]string{"-a", "b", "+c"})
	want := bson.D{{Key: "a", Value: -1}, {Key: "b", Value: 1}, {Key: "c", Value: 1}}
	if err != nil || fmt.Sprintf("%#v", sort) != fmt.Sprintf("%#v", want) {
		t.Errorf("sort = %v, %v", sort, err)
	}
	if _, err := c.sortArg([]string{"a", "-"}); err == nil || err.Error() != `mongodb: orderBy[1] "-" names no field` {
		t.Errorf("empty sort key: %v", err)
	}
}

// TestMongoDeadServerOpensBreaker: a port nobody listens on (a real refused
// connection) fails fast with ErrMongoUnreachable until failure_allowance
// consecutive failures open the breaker, which then refuses at once.
func TestMongoDeadServerOpensBreaker(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := Port(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	cfg := mongoConfig(t, "legacy", server("dead", "x", port))
	cfg.ConnectTimeout = 200 * time.Millisecond
	cfg.Breaker = BreakerConfig{FailureAllowance: 2, RetryInterval: time.Minute}
	c := newCluster(t, cfg)
	target := MongoTarget{Pool: "dead", Table: "t"}
	for i := 0; i < 2; i++ {
		start := time.Now()
		_, err := c.Count(context.Background(), target, nil)
		want := fmt.Sprintf("mongodb: count on dead (127.0.0.1:%d): server unreachable (no connection within connect_timeout 200ms): ", port)
		if !errors.Is(err, ErrMongoUnreachable) || !strings.HasPrefix(err.Error(), want) || time.Since(start) > 2*time.Second {
			t.Fatalf("call %d after %s: %v, want %q…", i, time.Since(start), err, want)
		}
	}
	start := time.Now()
	_, err = c.Count(context.Background(), target, nil)
	want := fmt.Sprintf("mongodb: circuit open for dead (127.0.0.1:%d)", port)
	if !errors.Is(err, ErrBreakerOpen) || err.Error() != want || time.Since(start) > 50*time.Millisecond {
		t.Fatalf("third call after %s: %v, want %q at once", time.Since(start), err, want)
	}
	if u, b, ops := c.Stats.Unreachable.Load(), c.Stats.BreakerOpen.Load(), c.Stats.Ops.Load(); u != 2 || b != 1 || ops != 2 {
		t.Errorf("Unreachable %d BreakerOpen %d Ops %d, want 2 1 2", u, b, ops)
	}
	if s := c.BreakerState("dead"); s != "open" {
		t.Errorf("breaker %s, want open", s)
	}
}

// TestMongoCallerErrorsKeepBreakerClosed: against the real FerretDB, a
// duplicate key, a bad query, a miss and a bad argument, many more times than
// failure_allowance, each get their own error and counter and never open the breaker.
func TestMongoCallerErrorsKeepBreakerClosed(t *testing.T) {
	cfg := mongoConfig(t, "legacy", server("default", "fae_pool_test", mongoPort(t)))
	cfg.Breaker = BreakerConfig{FailureAllowance: 1, RetryInterval: time.Minute}
	c := newCluster(t, cfg)
	ctx := context.Background()
	target := MongoTarget{Pool: "default", Table: fmt.Sprintf("pooltest_%d", time.Now().UnixNano())}
	t.Cleanup(func() { c.servers["default"].db.Collection(target.Table).Drop(ctx) })
	doc := mustBSON(t, bson.D{{Key: "_id", Value: 1}})
	if err := c.Insert(ctx, target, [][]byte{doc}, false); err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("mongodb: %%s on default (127.0.0.1:%d): ", cfg.Servers[0].Port)
	for i := 0; i < 3; i++ {
		err := c.Insert(ctx, target, [][]byte{doc}, false)
		if want := fmt.Sprintf(prefix, "insert") + `duplicate key in collection "` + target.Table + `": `; !errors.Is(err, ErrMongoDuplicateKey) || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("duplicate: %v, want %q…", err, want)
		}
		_, err = c.Count(ctx, target, mustBSON(t, bson.D{{Key: "$bogus", Value: 1}}))
		if want := fmt.Sprintf(prefix, "count") + "refused by the server: "; !errors.Is(err, ErrMongoServer) || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("bad query: %v, want %q…", err, want)
		}
		_, err = c.FindOne(ctx, target, mustBSON(t, bson.D{{Key: "_id", Value: 2}}), nil)
		if want := `mongodb: find_one in pool "default" collection "` + target.Table + `": not found`; !errors.Is(err, ErrMongoNotFound) || err.Error() != want {
			t.Errorf("miss: %v, want %q", err, want)
		}
		if _, err = c.FindOne(ctx, target, []byte{1}, nil); !errors.Is(err, ErrMongoBadArgument) {
			t.Errorf("bad BSON: %v", err)
		}
	}
	if s := c.BreakerState("default"); s != "closed" {
		t.Errorf("breaker %s after caller errors, want closed", s)
	}
	st := &c.Stats
	if st.DuplicateKey.Load() != 3 || st.ServerError.Load() != 3 || st.NotFound.Load() != 3 || st.BadArgument.Load() != 3 {
		t.Errorf("DuplicateKey %d ServerError %d NotFound %d BadArgument %d, want 3 each",
			st.DuplicateKey.Load(), st.ServerError.Load(), st.NotFound.Load(), st.BadArgument.Load())
	}
}
