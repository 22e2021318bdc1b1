package pool

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/auth"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"
)

// Errors of the MongoDB cluster. Every error a MongoCluster method returns
// wraps exactly one of them (test with errors.Is) and its text names the pool
// and, once a server is chosen, the server: "mongodb: <op> on <pool> (<host:port>): …".
var (
	// ErrMongoNotFound: a find matched no document (find_one; a caller's miss, not a failure).
	ErrMongoNotFound = errors.New("not found")
	// ErrMongoUnknownPool: no server entry serves the requested pool (and shard).
	ErrMongoUnknownPool = errors.New("unknown pool")
	// ErrMongoBadArgument: a document argument is not valid BSON, or an argument
	// is otherwise unusable (mixed change, empty docs, bad orderBy key).
	ErrMongoBadArgument = errors.New("bad argument")
	// ErrMongoUnreachable: no connection to the server could be made within
	// connect_timeout (the driver's server selection failed). Counts for the breaker.
	ErrMongoUnreachable = errors.New("server unreachable")
	// ErrMongoNetwork: the connection failed during the operation. Counts for the breaker.
	ErrMongoNetwork = errors.New("network error")
	// ErrMongoPoolCleared: the driver dropped the server's connections because
	// another operation's connection failed, and refused this one (the driver
	// does not say why beyond the text). Counts for the breaker.
	ErrMongoPoolCleared = errors.New("connections dropped after another call failed")
	// ErrMongoTimeout: the operation did not finish within io_timeout. Counts for the breaker.
	ErrMongoTimeout = errors.New("timed out")
	// ErrMongoAuth: the server refused the configured user/pass.
	ErrMongoAuth = errors.New("authentication failed")
	// ErrMongoDuplicateKey: a write would duplicate a unique key (e.g. _id).
	ErrMongoDuplicateKey = errors.New("duplicate key")
	// ErrMongoServer: the server refused the command (bad query or update
	// operator, unsupported feature); the text carries the server's message.
	ErrMongoServer = errors.New("refused by the server")
	// ErrMongoCanceled: the caller's context ended before the operation did.
	ErrMongoCanceled = errors.New("canceled")
	// ErrMongoClosed: the cluster was closed.
	ErrMongoClosed = errors.New("closed")
	// ErrMongoOther: any other driver error (e.g. a reply the driver could not decode).
	ErrMongoOther = errors.New("failed")
)

// MongoStats counts a MongoCluster's operations and, one counter each, its
// distinct failures. Read and written atomically.
type MongoStats struct {
	Ops          atomic.Int64 // operations handed to the driver (not refused before)
	NotFound     atomic.Int64 // ErrMongoNotFound
	UnknownPool  atomic.Int64 // ErrMongoUnknownPool
	BadArgument  atomic.Int64 // ErrMongoBadArgument
	BreakerOpen  atomic.Int64 // refused by an open breaker (ErrBreakerOpen)
	Unreachable  atomic.Int64 // ErrMongoUnreachable
	Network      atomic.Int64 // ErrMongoNetwork
	PoolCleared  atomic.Int64 // ErrMongoPoolCleared
	Timeout      atomic.Int64 // ErrMongoTimeout
	Auth         atomic.Int64 // ErrMongoAuth
	DuplicateKey atomic.Int64 // ErrMongoDuplicateKey
	ServerError  atomic.Int64 // ErrMongoServer
	Canceled     atomic.Int64 // ErrMongoCanceled
	Closed       atomic.Int64 // ErrMongoClosed
	Other        atomic.Int64 // ErrMongoOther
}

// MongoCluster is the servants.mongodb section at work: one mongo.Client, one
// database handle and one Breaker per server entry, and the server choice of
// shard_strategy. Clients connect lazily, so a cluster is built while its
// servers are down. Safe for concurrent use.
type MongoCluster struct {
	cfg     MongoConfig
	servers map[string]*mongoServer // by pool name of the entry
	closed  atomic.Bool
	Stats   MongoStats
}

// mongoServer is one server entry.
type mongoServer struct {
	pool    string
	label   string // "<pool> (<host:port>)", for messages
	user    string
	client  *mongo.Client
	db      *mongo.Database
	breaker *legacyBreaker
}

// NewMongoCluster builds the clients of cfg, which must have passed Validate.
// No connection is made yet. An error names the server entry whose client
// options the driver refused.
func NewMongoCluster(cfg MongoConfig) (*MongoCluster, error) {
	c := &MongoCluster{cfg: cfg, servers: make(map[string]*mongoServer, len(cfg.Servers))}
	for i, e := range cfg.Servers {
		addr := fmt.Sprintf("%s:%d", e.Host, e.Port)
		client, err := mongo.Connect(mongoClientOptions(&cfg, e))
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("mongodb: servers[%d] (pool %s, %s): %w", i, e.Pool, addr, err)
		}
		label := fmt.Sprintf("%s (%s)", e.Pool, addr)
		c.servers[e.Pool] = &mongoServer{pool: e.Pool, label: label, user: e.User, client: client,
			db: client.Database(e.DB), breaker: newLegacyBreaker("mongodb", label, cfg.Breaker)}
	}
	return c, nil
}

// mongoClientOptions are the driver options of the server entry e. Server
// selection waits at most connect_timeout, so a dead server fails fast; the
// driver does not retry, so a failure reaches the caller (and the breaker) at once.
func mongoClientOptions(cfg *MongoConfig, e MongoServer) *options.ClientOptions {
	o := options.Client().
		SetHosts([]string{fmt.Sprintf("%s:%d", e.Host, e.Port)}).
		SetAppName("faed").
		SetConnectTimeout(cfg.ConnectTimeout).
		SetServerSelectionTimeout(cfg.ConnectTimeout).
		SetMaxPoolSize(uint64(cfg.MaxConnsPerServer)).
		SetRetryReads(false).
		SetRetryWrites(false)
	if cfg.IOTimeout > 0 {
		o.SetTimeout(cfg.IOTimeout)
	}
	if cfg.HeartbeatInterval > 0 {
		o.SetHeartbeatInterval(time.Duration(cfg.HeartbeatInterval) * time.Second)
	}
	if e.ReplicaSet != "" {
		o.SetReplicaSet(e.ReplicaSet)
	} else {
		o.SetDirect(true)
	}
	if e.User != "" {
		o.SetAuth(options.Credential{Username: e.User, Password: e.Pass, AuthSource: e.DB})
	}
	return o
}

// Close disconnects every client, waiting at most 5 s for operations in
// flight. Calls after Close fail with ErrMongoClosed.
func (c *MongoCluster) Close() {
	c.closed.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range c.servers {
		s.client.Disconnect(ctx)
	}
}

// serverName is the name of the server entry that serves pool and shardID
// under shard_strategy: legacy = pool without a leading "database."; standard
// = "db<shardID/shard_base_num+1>" for a pool starting with "db", else pool.
func (c *MongoCluster) serverName(pool string, shardID int32) string {
	if c.cfg.ShardStrategy == "standard" {
		if strings.HasPrefix(pool, "db") {
			return fmt.Sprintf("db%d", int(shardID)/c.cfg.ShardBaseNum+1)
		}
		return pool
	}
	return strings.TrimPrefix(pool, "database.")
}

// pick returns the server entry of pool and shardID, or an ErrMongoUnknownPool error naming both.
func (c *MongoCluster) pick(pool string, shardID int32) (*mongoServer, error) {
	name := c.serverName(pool, shardID)
	if s := c.servers[name]; s != nil {
		return s, nil
	}
	c.Stats.UnknownPool.Add(1)
	switch {
	case name == pool:
		return nil, fmt.Errorf("mongodb: %w %q", ErrMongoUnknownPool, pool)
	case c.cfg.ShardStrategy == "standard":
		return nil, fmt.Errorf("mongodb: %w %q (no server entry %q for shard %d, shard_strategy standard)",
			ErrMongoUnknownPool, pool, name, shardID)
	}
	return nil, fmt.Errorf("mongodb: %w %q (no server entry %q)", ErrMongoUnknownPool, pool, name)
}

// ServerOf is the pool name of the server entry that serves pool and shardID,
// or an ErrMongoUnknownPool error.
func (c *MongoCluster) ServerOf(pool string, shardID int32) (string, error) {
	s, err := c.pick(pool, shardID)
	if err != nil {
		return "", err
	}
	return s.pool, nil
}

// BreakerState is the state of the breaker of the server entry named pool
// ("closed", "half-open", "open"), "" if there is none.
func (c *MongoCluster) BreakerState(pool string) string {
	if s := c.servers[pool]; s != nil {
		return s.breaker.State()
	}
	return ""
}

// MongoTarget says where an operation goes: the pool and shard choose the
// server entry, Table is the collection in its database.
type MongoTarget struct {
	Pool    string
	Table   string
	ShardID int32
}

// do runs fn on the collection of t through the server's breaker, with the
// caller's ctx bounded by io_timeout. It counts the operation and turns a
// driver error into one of the cluster's errors.
func (c *MongoCluster) do(ctx context.Context, t MongoTarget, op string, fn func(context.Context, *mongo.Collection) error) error {
	if c.closed.Load() {
		c.Stats.Closed.Add(1)
		return fmt.Errorf("mongodb: %s on pool %q: cluster %w", op, t.Pool, ErrMongoClosed)
	}
	s, err := c.pick(t.Pool, t.ShardID)
	if err != nil {
		return err
	}
	if c.cfg.IOTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.IOTimeout)
		defer cancel()
	}
	coll := s.db.Collection(t.Table)
	err = s.breaker.Do(func() error {
		c.Stats.Ops.Add(1)
		return c.classify(s, op, t.Table, fn(ctx, coll))
	}, isMongoServerFailure)
	if errors.Is(err, ErrBreakerOpen) {
		c.Stats.BreakerOpen.Add(1)
	}
	return err
}

// isMongoServerFailure tells the breaker which errors mean the server is in trouble.
func isMongoServerFailure(err error) bool {
	for _, e := range []error{ErrMongoUnreachable, ErrMongoNetwork, ErrMongoPoolCleared, ErrMongoTimeout} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// classify turns a driver error of op on s into a cluster error and counts it.
// mongo.ErrNoDocuments is passed through for the operation to interpret.
func (c *MongoCluster) classify(s *mongoServer, op, table string, err error) error {
	if err == nil || errors.Is(err, mongo.ErrNoDocuments) {
		return err
	}
	at := fmt.Sprintf("mongodb: %s on %s", op, s.label)
	switch {
	case errors.Is(err, mongo.ErrClientDisconnected):
		c.Stats.Closed.Add(1)
		return fmt.Errorf("%s: client %w", at, ErrMongoClosed)
	case errors.As(err, new(*auth.Error)):
		c.Stats.Auth.Add(1)
		return fmt.Errorf("%s: %w as user %q: %w", at, ErrMongoAuth, s.user, err)
	case errors.As(err, new(topology.ServerSelectionError)):
		c.Stats.Unreachable.Add(1)
		return fmt.Errorf("%s: %w (no connection within connect_timeout %s): %w", at, ErrMongoUnreachable, c.cfg.ConnectTimeout, err)
	case errors.As(err, new(driver.RetryablePoolError)): // only the pool-cleared error implements it
		c.Stats.PoolCleared.Add(1)
		return fmt.Errorf("%s: %w: %w", at, ErrMongoPoolCleared, err)
	case errors.Is(err, context.Canceled):
		c.Stats.Canceled.Add(1)
		return fmt.Errorf("%s: %w by the caller: %w", at, ErrMongoCanceled, err)
	case mongo.IsTimeout(err):
		c.Stats.Timeout.Add(1)
		return fmt.Errorf("%s: %w (io_timeout %s): %w", at, ErrMongoTimeout, c.cfg.IOTimeout, err)
	case mongo.IsNetworkError(err):
		c.Stats.Network.Add(1)
		return fmt.Errorf("%s: %w: %w", at, ErrMongoNetwork, err)
	case mongo.IsDuplicateKeyError(err):
		c.Stats.DuplicateKey.Add(1)
		return fmt.Errorf("%s: %w in collection %q: %w", at, ErrMongoDuplicateKey, table, err)
	case errors.As(err, new(mongo.ServerError)):
		c.Stats.ServerError.Add(1)
		return fmt.Errorf("%s: %w: %w", at, ErrMongoServer, err)
	}
	c.Stats.Other.Add(1)
	return fmt.Errorf("%s: %w: %w", at, ErrMongoOther, err)
}
