package pool

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Mongo is the servants.mongodb section at work: per server entry one
// mongo.Client for the operations, one tiny client of its own for the health
// check, a database handle and a Breaker; and the server choice of
// shard_strategy. Clients connect in the background, so a cluster is built
// while its servers are down. Safe for concurrent use.
//
// Every error its operations return is a *Error with Backend "mongodb", Op the
// operation ("find_one", "find_all", "find_id", "count", "insert", "delete",
// "update", "upsert", "find_and_modify"), Pool the pool the caller named and,
// once the operation went to a server (or to its breaker), Server
// "<entry> (<host:port>)". Its Kind:
//   - KindMiss: find_one matched no document;
//   - KindUnknownPool: no server entry serves the pool (and shard);
//   - KindBadArgument: a document argument is not valid BSON at some level
//     (the cause names the argument and the path of the bad element), or an
//     argument is otherwise unusable; no server is asked;
//   - KindServerFailure: the server could not be connected to within
//     connect_timeout (the cause is a *DialError: it counts on the breaker's
//     dial side), the connection failed, or the driver dropped the server's
//     connections after another operation's failed;
//   - KindBusy: the cluster's own operations held every connection
//     (max_conns_per_server) until the wait for one ended, or
//     max_waiting_calls operations were already waiting for one (refused at
//     once, the cause a *WaitLimitError);
//   - KindTimeout: no answer within io_timeout, or, from a server that
//     accepts connections but does not answer, no usable connection within
//     connect_timeout; it counts for the breaker only when the health check
//     fails too;
//   - KindCanceled: the caller's context ended first;
//   - KindBreakerOpen: the server's breaker refused the operation;
//   - KindRefused: the server refused it: a duplicate key (the cause wraps
//     ErrDuplicateKey), a bad query or update operator, failed authentication;
//   - KindTooLarge: the documents of the reply are over max_reply_bytes;
//   - KindClosed: the cluster was closed.
//
// Each operation is reported once to the Observer, with Pool the server
// entry's name (a bounded set: "database.x" and "x" are the same entry, and
// with shard_strategy standard any "db…" pool maps to some "db<n>") or "" for
// an unknown pool, and Server "" when the server was not asked (unknown
// pool, closed, bad argument).
type Mongo struct {
	cfg     MongoConfig
	obs     Observer
	limits  Limits
	servers map[string]*mongoServer // by pool name of the entry
	closed  atomic.Bool
}

// mongoServer is one server entry.
type mongoServer struct {
	pool    string
	label   string // "<pool> (<host:port>)", for messages
	addr    string // "<host:port>", for messages
	user    string
	client  *mongo.Client // the operations'
	check   *mongo.Client // the health check's: one connection of its own
	db      *mongo.Database
	breaker *Breaker

	inFlight atomic.Int32 // operations handed to the driver and not yet ended
	// maxInFlight is max_conns_per_server + max_waiting_calls (0: no bound):
	// each operation holds at most one connection at a time, so the
	// operations in flight beyond max_conns_per_server are waiting for one.
	maxInFlight int32
	open        atomic.Int64 // the operations' connections created and not yet closed (poolEvent)
	inUse       atomic.Int64 // the operations' connections checked out now (poolEvent)
}

// mongoBackend is the Backend of the cluster's errors and operations.
const mongoBackend = "mongodb"

// NewMongo builds the clients of cfg, which must have passed Validate; obs
// (nil: none) is told of every operation and limits bound the replies. No
// operation waits for a server yet. An error names the server entry whose
// client options the driver refused.
func NewMongo(cfg MongoConfig, obs Observer, limits Limits) (*Mongo, error) {
	if obs == nil {
		obs = NopObserver{}
	}
	c := &Mongo{cfg: cfg, obs: obs, limits: limits, servers: make(map[string]*mongoServer, len(cfg.Servers))}
	for i, e := range cfg.Servers {
		s, err := newMongoServer(&cfg, e)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("mongodb: servers[%d] (pool %s, %s:%d): %w", i, e.Pool, e.Host, e.Port, err)
		}
		c.servers[e.Pool] = s
	}
	return c, nil
}

func newMongoServer(cfg *MongoConfig, e MongoServerConfig) (*mongoServer, error) {
	addr := fmt.Sprintf("%s:%d", e.Host, e.Port)
	s := &mongoServer{pool: e.Pool, label: fmt.Sprintf("%s (%s)", e.Pool, addr), addr: addr, user: e.User}
	if cfg.MaxConnsPerServer > 0 {
		s.maxInFlight = int32(cfg.MaxConnsPerServer + waitingBound(cfg.MaxWaitingCalls, cfg.MaxConnsPerServer))
	}
	client, err := mongo.Connect(mongoClientOptions(cfg, e).SetPoolMonitor(&event.PoolMonitor{Event: s.poolEvent}))
	if err != nil {
		return nil, err
	}
	check, err := mongo.Connect(mongoCheckOptions(cfg, e))
	if err != nil {
		client.Disconnect(context.Background())
		return nil, err
	}
	s.client, s.check, s.db = client, check, client.Database(e.DB)
	s.breaker = NewBreaker(mongoBackend, s.label, cfg.Breaker, s.healthCheck)
	return s, nil
}

// poolEvent is the operations' client's pool monitor: it counts the
// connections open and checked out, for Stats. With a monitor set, the
// driver allocates an event and calls it three times per operation
// (check-out started, checked out, checked in): 3 allocations, 336 bytes,
// about 0.4 µs per operation (BenchmarkMongoPoolMonitor, 2 cores in
// parallel), against about 230 µs for a find_one on the test FerretDB
// (0.2 %). The driver keeps no pool figure that can be read otherwise.
func (s *mongoServer) poolEvent(ev *event.PoolEvent) {
	switch ev.Type {
	case event.ConnectionCreated:
		s.open.Add(1)
	case event.ConnectionClosed:
		s.open.Add(-1)
	case event.ConnectionCheckedOut:
		s.inUse.Add(1)
	case event.ConnectionCheckedIn:
		s.inUse.Add(-1)
	}
}

// healthCheck pings the server on the health check's own client, so that a
// pool exhausted by slow operations does not fail it.
func (s *mongoServer) healthCheck(ctx context.Context) error {
	return s.check.Ping(ctx, nil)
}

// mongoClientOptions are the driver options of the server entry e. Server
// selection waits at most connect_timeout, so a dead server fails fast; the
// driver does not retry, so a failure reaches the caller (and the breaker) at once.
func mongoClientOptions(cfg *MongoConfig, e MongoServerConfig) *options.ClientOptions {
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

// mongoCheckOptions are those of the health check's client of e: the same
// server and user, one connection, every wait bounded by HealthCheckTimeout.
func mongoCheckOptions(cfg *MongoConfig, e MongoServerConfig) *options.ClientOptions {
	return mongoClientOptions(cfg, e).
		SetAppName("faed-health").
		SetMaxPoolSize(1).
		SetConnectTimeout(HealthCheckTimeout).
		SetServerSelectionTimeout(HealthCheckTimeout).
		SetTimeout(HealthCheckTimeout)
}

// Close disconnects every client, waiting at most 5 s for connections to
// close. Operations after Close fail with KindClosed.
func (c *Mongo) Close() {
	c.closed.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range c.servers {
		s.client.Disconnect(ctx)
		s.check.Disconnect(ctx)
	}
}

// serverName is the name of the server entry that serves pool and shardID
// under shard_strategy: legacy = pool without a leading "database."; standard
// = "db<shardID/shard_base_num+1>" for a pool starting with "db", else pool.
func (c *Mongo) serverName(pool string, shardID int32) string {
	if c.cfg.ShardStrategy == "standard" {
		if strings.HasPrefix(pool, "db") {
			return fmt.Sprintf("db%d", int(shardID)/c.cfg.ShardBaseNum+1)
		}
		return pool
	}
	return strings.TrimPrefix(pool, "database.")
}

// ServerName is the name of the server entry (servants.mongodb.servers[].pool)
// that serves pool and shardID, whether or not it is configured.
func (c *Mongo) ServerName(pool string, shardID int32) string { return c.serverName(pool, shardID) }

// pick returns the server entry of pool and shardID, or the cause of a
// KindUnknownPool error (nil when the pool is the entry's name).
func (c *Mongo) pick(pool string, shardID int32) (*mongoServer, error) {
	name := c.serverName(pool, shardID)
	if s := c.servers[name]; s != nil {
		return s, nil
	}
	switch {
	case name == pool:
		return nil, nil
	case c.cfg.ShardStrategy == "standard":
		return nil, fmt.Errorf("no server entry %q for shard %d, shard_strategy standard", name, shardID)
	}
	return nil, fmt.Errorf("no server entry %q", name)
}

// ServerOf is the pool name of the server entry that serves pool and shardID,
// or a *Error of KindUnknownPool.
func (c *Mongo) ServerOf(pool string, shardID int32) (string, error) {
	s, cause := c.pick(pool, shardID)
	if s == nil {
		return "", &Error{Backend: mongoBackend, Pool: pool, Kind: KindUnknownPool, Err: cause}
	}
	return s.pool, nil
}

// BreakerState is the state of the breaker of the server entry named pool
// ("closed", "half-open", "open"), "" if there is none.
func (c *Mongo) BreakerState(pool string) string {
	if s := c.servers[pool]; s != nil {
		return s.breaker.State()
	}
	return ""
}

// Stats returns the figures of every server entry, sorted by pool: its
// connections as the driver's pool monitor events counted them (created
// minus closed; checked out minus checked in; idle the difference, at least
// 0), the health check's own connection and the driver's monitoring
// connection not included, its breaker, and Waiting: the operations in
// flight beyond max_conns_per_server.
func (c *Mongo) Stats() []ServerStats {
	out := make([]ServerStats, 0, len(c.servers))
	for _, s := range c.servers {
		open, inUse := int(s.open.Load()), int(s.inUse.Load())
		st := serverStats(mongoBackend, s.pool, s.label, open, max(open-inUse, 0), inUse, s.breaker)
		if c.cfg.MaxConnsPerServer > 0 {
			st.Waiting = max(int(s.inFlight.Load())-c.cfg.MaxConnsPerServer, 0)
		}
		out = append(out, st)
	}
	return sortStats(out)
}

// MongoTarget says where an operation goes: the pool and shard choose the
// server entry, Table is the collection in its database.
type MongoTarget struct {
	Pool    string
	Table   string
	ShardID int32
}

// mongoRun is one operation on a collection, given a ctx bounded by io_timeout.
type mongoRun func(ctx context.Context, coll *mongo.Collection) error

// do is the one path of every operation: it chooses the server, refuses the
// operation when closed or when args (nil: none) fails, runs fn through the
// server's breaker with the caller's ctx bounded by io_timeout, reports the
// operation to the observer and returns nil or a *Error.
func (c *Mongo) do(ctx context.Context, t MongoTarget, op string, args func() error, fn mongoRun) error {
	start := time.Now()
	s, asked, kind, cause := c.run(ctx, t, args, fn)
	o := Op{Backend: mongoBackend, Name: op, Kind: kind}
	if s != nil {
		o.Pool = s.pool
		if asked {
			o.Server = s.label
		}
	}
	o.Duration = time.Since(start)
	c.obs.Observe(o)
	if kind == KindOK {
		return nil
	}
	return &Error{Backend: mongoBackend, Op: op, Pool: t.Pool, Server: o.Server, Kind: kind, Err: cause}
}

// run is do without the reporting: the server chosen (nil: none), whether
// the operation went to its breaker, and the outcome.
func (c *Mongo) run(ctx context.Context, t MongoTarget, args func() error, fn mongoRun) (s *mongoServer, asked bool, kind Kind, cause error) {
	if s, cause = c.pick(t.Pool, t.ShardID); s == nil {
		return nil, false, KindUnknownPool, cause
	}
	if c.closed.Load() {
		return s, false, KindClosed, nil
	}
	if args != nil {
		if err := args(); err != nil {
			return s, false, KindBadArgument, err
		}
	}
	opCtx := ctx
	if c.cfg.IOTimeout > 0 {
		var cancel context.CancelFunc
		opCtx, cancel = context.WithTimeout(ctx, c.cfg.IOTimeout)
		defer cancel()
	}
	coll := s.db.Collection(t.Table)
	kind, _ = s.breaker.Do(func() (Kind, error) {
		n := s.inFlight.Add(1)
		defer s.inFlight.Add(-1)
		if s.maxInFlight > 0 && n > s.maxInFlight {
			limit := int(s.maxInFlight) - c.cfg.MaxConnsPerServer
			kind, cause = KindBusy, newWaitLimitError(int(n-1)-c.cfg.MaxConnsPerServer, limit, s.addr)
			return kind, cause // the breaker counts it neither way
		}
		kind, cause = c.classify(ctx, s, t.Table, fn(opCtx, coll))
		return kind, cause
	})
	return s, true, kind, cause
}
