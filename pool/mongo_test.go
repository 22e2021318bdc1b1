package pool

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/fae-go/fae/internal/testenv"
)

// mongoPort is the port of the FerretDB of contrib/test-services.
func mongoPort(t *testing.T) Port {
	t.Helper()
	testenv.RequireServer(t, "FerretDB", testenv.MongoAddr)
	_, p, _ := strings.Cut(testenv.MongoAddr, ":")
	n, _ := strconv.Atoi(p)
	return Port(n)
}

// deadPort is a port nobody listens on (a real refused connection).
func deadPort(t *testing.T) Port { return Port(testenv.FreePort(t)) }

func mongoConfig(t *testing.T, strategy string, servers ...MongoServerConfig) MongoConfig {
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

// newMongo builds the cluster of cfg with a counting observer.
func newMongo(t *testing.T, cfg MongoConfig, limits Limits) (*Mongo, *Counters) {
	t.Helper()
	obs := NewCounters()
	c, err := NewMongo(cfg, obs, limits)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, obs
}

func server(pool, db string, port Port) MongoServerConfig {
	return MongoServerConfig{Pool: pool, Host: "127.0.0.1", Port: port, DB: db}
}

// wantMongoError fails unless err is a *Error of kind on server with the text want (a prefix when it ends in "…").
func wantMongoError(t *testing.T, what string, err error, kind Kind, server, want string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, kind) || e.Backend != "mongodb" || e.Server != server {
		t.Errorf("%s: %#v, want a mongodb *Error of kind %s on server %q", what, err, kind, server)
		return e
	}
	if p, ok := strings.CutSuffix(want, "…"); ok && !strings.HasPrefix(err.Error(), p) || !ok && err.Error() != want {
		t.Errorf("%s:\n got %q\nwant %q", what, err, want)
	}
	return e
}

func TestMongoServerChoice(t *testing.T) {
	legacy, obs := newMongo(t, mongoConfig(t, "legacy", server("default", "a", 1), server("db1", "b", 1)), Limits{})
	standard, _ := newMongo(t, mongoConfig(t, "standard", server("default", "a", 1), server("db1", "b", 1), server("db2", "c", 1)), Limits{})
	for _, tc := range []struct {
		c     *Mongo
		pool  string
		shard int32
		want  string // server entry, or the error text
	}{
		{legacy, "default", 0, "default"},
		{legacy, "database.default", 7, "default"},
		{legacy, "db1", 999999, "db1"},
		{legacy, "database.nope", 0, `mongodb: pool "database.nope": unknown pool: no server entry "nope"`},
		{standard, "db", 0, "db1"},
		{standard, "dbUser", 99999, "db1"},
		{standard, "db", 100000, "db2"},
		{standard, "db", 199999, "db2"},
		{standard, "default", 500000, "default"},
		{standard, "db", 200000, `mongodb: pool "db": unknown pool: no server entry "db3" for shard 200000, shard_strategy standard`},
		{standard, "other", 0, `mongodb: pool "other": unknown pool`},
	} {
		got, err := tc.c.ServerOf(tc.pool, tc.shard)
		if err != nil {
			if !errors.Is(err, KindUnknownPool) {
				t.Errorf("%s: error %v is not of KindUnknownPool", tc.pool, err)
			}
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("%s %s shard %d → %q, want %q", tc.c.cfg.ShardStrategy, tc.pool, tc.shard, got, tc.want)
		}
	}
	_, err := legacy.Count(context.Background(), MongoTarget{Pool: "database.nope", Table: "t"}, nil)
	wantMongoError(t, "count on an unknown pool", err, KindUnknownPool, "",
		`mongodb count: pool "database.nope": unknown pool: no server entry "nope"`)
	if s := obs.Snapshot(); len(s) != 1 || s[0].Pool != "" || s[0].Server != "" || s[0].Count(KindUnknownPool) != 1 {
		t.Errorf("observed %+v, want one unknown_pool count with pool and server \"\"", s)
	}
}

func TestMongoClientOptions(t *testing.T) {
	cfg := mongoConfig(t, "legacy")
	cfg.ConnectTimeout, cfg.IOTimeout, cfg.MaxConnsPerServer, cfg.HeartbeatInterval = time.Second, 3*time.Second, 7, 15
	e := MongoServerConfig{Pool: "p", Host: "h", Port: 27018, DB: "d", User: "u", Pass: "pw"}
	o := mongoClientOptions(&cfg, e)
	if o.Hosts[0] != "h:27018" || *o.ConnectTimeout != time.Second || *o.ServerSelectionTimeout != time.Second ||
		*o.Timeout != 3*time.Second || *o.MaxPoolSize != 7 || *o.HeartbeatInterval != 15*time.Second || !*o.Direct {
		t.Errorf("options: hosts %v connect %v selection %v timeout %v pool %v heartbeat %v direct %v", o.Hosts,
			*o.ConnectTimeout, *o.ServerSelectionTimeout, *o.Timeout, *o.MaxPoolSize, *o.HeartbeatInterval, *o.Direct)
	}
	if o.Auth == nil || o.Auth.Username != "u" || o.Auth.Password != "pw" || o.Auth.AuthSource != "d" {
		t.Errorf("auth = %+v, want u/pw on d", o.Auth)
	}
	// the health check: the same server and user, one connection of its own, HealthCheckTimeout everywhere
	o = mongoCheckOptions(&cfg, e)
	if o.Hosts[0] != "h:27018" || *o.MaxPoolSize != 1 || *o.ConnectTimeout != HealthCheckTimeout ||
		*o.ServerSelectionTimeout != HealthCheckTimeout || *o.Timeout != HealthCheckTimeout || o.Auth.Username != "u" {
		t.Errorf("health check options: hosts %v pool %v connect %v selection %v timeout %v auth %+v",
			o.Hosts, *o.MaxPoolSize, *o.ConnectTimeout, *o.ServerSelectionTimeout, *o.Timeout, o.Auth)
	}
	cfg.HeartbeatInterval, cfg.IOTimeout = 0, 0
	o = mongoClientOptions(&cfg, MongoServerConfig{Pool: "p", Host: "h", Port: 1, DB: "d", ReplicaSet: "rs0"})
	if o.Auth != nil || o.HeartbeatInterval != nil || o.Timeout != nil || o.Direct != nil || *o.ReplicaSet != "rs0" {
		t.Errorf("without user, heartbeat, io_timeout, with replicaSet: %+v", o)
	}
}

func TestMongoConfigValidate(t *testing.T) {
	for want, edit := range map[string]func(*MongoConfig){
		`servants.mongodb.servers[1].pool: "a" is listed twice`: func(c *MongoConfig) {
			c.Servers = []MongoServerConfig{server("a", "x", 1), server("a", "y", 1)}
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

// TestMongoDeadServerOpensBreaker: a port nobody listens on fails fast with
// KindServerFailure, "server unreachable", counted on the breaker's dial side,
// until failure_allowance consecutive failures open the breaker, which then
// refuses at once; the observer saw each operation once.
func TestMongoDeadServerOpensBreaker(t *testing.T) {
	port := deadPort(t)
	cfg := mongoConfig(t, "legacy", server("dead", "x", port))
	cfg.ConnectTimeout = 200 * time.Millisecond
	cfg.Breaker = BreakerConfig{FailureAllowance: 2, RetryInterval: time.Minute}
	c, obs := newMongo(t, cfg, Limits{})
	target := MongoTarget{Pool: "dead", Table: "t"}
	label := fmt.Sprintf("dead (127.0.0.1:%d)", port)
	for i := 0; i < 2; i++ {
		start := time.Now()
		_, err := c.Count(context.Background(), target, nil)
		wantMongoError(t, fmt.Sprintf("call %d", i), err, KindServerFailure, label, `mongodb count: pool "dead", server `+label+
			": server failure: server unreachable (no connection within connect_timeout 200ms): dial: …")
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("call %d failed after %s, want about connect_timeout", i, d)
		}
		if !isDialError(err) {
			t.Errorf("call %d: %v is not a *DialError", i, err)
		}
	}
	start := time.Now()
	_, err := c.Count(context.Background(), target, nil)
	wantMongoError(t, "third call", err, KindBreakerOpen, label, `mongodb count: pool "dead", server `+label+": circuit open")
	if d := time.Since(start); d >= cfg.ConnectTimeout {
		t.Errorf("refusal took %s, want it at once, not after trying the server (connect_timeout %s)", d, cfg.ConnectTimeout)
	}
	if s := c.BreakerState("dead"); s != "open" {
		t.Errorf("breaker %s, want open", s)
	}
	s := obs.Snapshot()
	if len(s) != 1 || s[0].Pool != "dead" || s[0].Server != label || s[0].Name != "count" ||
		s[0].Count(KindServerFailure) != 2 || s[0].Count(KindBreakerOpen) != 1 || s[0].Total() != 3 {
		t.Errorf("observed %+v, want count on %s: 2 server_failure, 1 breaker_open", s, label)
	}
}

// mongoTable is a collection of its own on the shared FerretDB, dropped at the end.
func mongoTable(t *testing.T, c *Mongo, pool string) MongoTarget {
	target := MongoTarget{Pool: pool, Table: fmt.Sprintf("pooltest_%d", time.Now().UnixNano())}
	t.Cleanup(func() { c.servers[pool].db.Collection(target.Table).Drop(context.Background()) })
	return target
}

// TestMongoCallerErrorsKeepBreakerClosed: against the real FerretDB, a
// duplicate key, a bad query, a miss and a bad argument, many more times than
// failure_allowance, each get their own kind and never open the breaker.
func TestMongoCallerErrorsKeepBreakerClosed(t *testing.T) {
	cfg := mongoConfig(t, "legacy", server("default", "fae_pool_test", mongoPort(t)))
	cfg.Breaker = BreakerConfig{FailureAllowance: 1, RetryInterval: time.Minute}
	c, obs := newMongo(t, cfg, Limits{})
	ctx := context.Background()
	target := mongoTable(t, c, "default")
	doc := mustBSON(t, bson.D{{Key: "_id", Value: 1}})
	if err := c.Insert(ctx, target, [][]byte{doc}, false); err != nil {
		t.Fatal(err)
	}
	label := fmt.Sprintf("default (127.0.0.1:%d)", cfg.Servers[0].Port)
	at := func(op string) string { return `mongodb ` + op + `: pool "default", server ` + label + ": " }
	for i := 0; i < 3; i++ {
		err := c.Insert(ctx, target, [][]byte{doc}, false)
		wantMongoError(t, "duplicate", err, KindRefused, label, at("insert")+`refused: duplicate key in collection "`+target.Table+`": …`)
		if !errors.Is(err, ErrDuplicateKey) {
			t.Errorf("duplicate: %v does not wrap ErrDuplicateKey", err)
		}
		_, err = c.Count(ctx, target, mustBSON(t, bson.D{{Key: "$bogus", Value: 1}}))
		wantMongoError(t, "bad query", err, KindRefused, label, at("count")+"refused: refused by the server: …")
		_, err = c.FindOne(ctx, target, mustBSON(t, bson.D{{Key: "_id", Value: 2}}), nil)
		wantMongoError(t, "miss", err, KindMiss, label, at("find_one")+`miss: not found in collection "`+target.Table+`"`)
		_, err = c.FindOne(ctx, target, []byte{1}, nil)
		wantMongoError(t, "bad BSON", err, KindBadArgument, "",
			`mongodb find_one: pool "default": bad argument: query is not a valid BSON document: 1 bytes, fewer than the 5 of the empty document`)
	}
	if s := c.BreakerState("default"); s != "closed" {
		t.Errorf("breaker %s after caller errors, want closed", s)
	}
	for _, want := range []struct {
		name, server string
		kind         Kind
		n            int64
	}{{"insert", label, KindOK, 1}, {"insert", label, KindRefused, 3}, {"count", label, KindRefused, 3},
		{"find_one", label, KindMiss, 3}, {"find_one", "", KindBadArgument, 3}} {
		if n := opCount(obs, want.name, want.server, want.kind); n != want.n {
			t.Errorf("%s on %q, %s: observed %d, want %d", want.name, want.server, want.kind, n, want.n)
		}
	}
	if n := obs.Sum("mongodb", KindOK) + obs.Sum("mongodb", KindRefused) + obs.Sum("mongodb", KindMiss) +
		obs.Sum("mongodb", KindBadArgument); n != 13 {
		t.Errorf("observed %d operations, want 13 (one each)", n)
	}
}

// opCount is the number of operations name on server of kind k that obs saw.
func opCount(obs *Counters, name, server string, k Kind) int64 {
	for _, oc := range obs.Snapshot() {
		if oc.Name == name && oc.Server == server {
			return oc.Count(k)
		}
	}
	return 0
}

// TestMongoCanceledAndClosed: a caller that gave up gets KindCanceled, which
// does not count for the breaker; after Close every operation fails with
// KindClosed without asking the server.
func TestMongoCanceledAndClosed(t *testing.T) {
	cfg := mongoConfig(t, "legacy", server("default", "fae_pool_test", mongoPort(t)))
	cfg.Breaker = BreakerConfig{FailureAllowance: 1, RetryInterval: time.Minute}
	c, obs := newMongo(t, cfg, Limits{})
	target := mongoTable(t, c, "default")
	label := fmt.Sprintf("default (127.0.0.1:%d)", cfg.Servers[0].Port)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for i := 0; i < 3; i++ {
		_, err := c.Count(ctx, target, nil)
		wantMongoError(t, "canceled count", err, KindCanceled, label, `mongodb count: pool "default", server `+label+": canceled: canceled by the caller: …")
	}
	if s := c.BreakerState("default"); s != "closed" {
		t.Errorf("breaker %s after canceled calls, want closed", s)
	}
	if n, err := c.Count(context.Background(), target, nil); n != 0 || err != nil {
		t.Fatalf("count after the canceled ones = %d, %v", n, err)
	}
	c.Close()
	err := c.Insert(context.Background(), target, [][]byte{mustBSON(t, bson.D{{Key: "a", Value: 1}})}, false)
	wantMongoError(t, "insert after Close", err, KindClosed, "", `mongodb insert: pool "default": closed`)
	if opCount(obs, "count", label, KindCanceled) != 3 || opCount(obs, "count", label, KindOK) != 1 ||
		opCount(obs, "insert", "", KindClosed) != 1 {
		t.Errorf("observed %+v", obs.Snapshot())
	}
}
