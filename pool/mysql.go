package pool

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/sync/errgroup"
)

// shardsInFlight bounds the shards QueryShards queries at once.
const shardsInFlight = 8

// MySQL is every configured MySQL server and the choice of one for a call:
// global pools by name, sharded pools through a lookup table (standard) or by
// id range (vbucket). Safe for concurrent use.
//
// Every error it returns is a *Error of Backend "mysql", Op "query", "exec",
// "tx" or "lookup" (the shard lookup that chose the server), Pool the pool the
// caller named and Server "<server name> (<host:port>)" ("" when none was
// chosen), of kind:
//   - KindUnknownPool: no server entry for the pool or the pool+shard
//     (`no such server "UserShard9"`), or a sharded pool without lookup table;
//   - KindBadArgument: a sharded pool asked with hintId ≤ 0;
//   - KindMiss: the lookup table has no row for the entity
//     (`shard lookup: no entity 42 in UserLookup`);
//   - KindRefused: the entity is locked (being moved), the server rejected the
//     statement (syntax 1064, unknown column 1054, duplicate key 1062…), or a
//     NULL came back while allow_nullable_columns is false;
//   - KindServerFailure: connecting failed, the connection broke, or the
//     server reported its own failure (mysqlServerErrors);
//   - KindBusy: max_waiting_calls calls were already waiting for a
//     connection of the server (refused at once, the cause a
//     *WaitLimitError), or every connection (max_conns_per_server) stayed in
//     use for timeout (a *WaitTimeoutError); the breaker counts neither;
//   - KindTimeout: query_timeout or the caller's deadline passed;
//   - KindCanceled: the caller's ctx was canceled;
//   - KindTooLarge: the rows passed Limits.MaxReplyBytes;
//   - KindBreakerOpen: the server's breaker refused the call;
//   - KindClosed: the cluster was closed.
//
// A statement whose ctx ends while it runs is killed on the server (KILL
// QUERY on a connection of its own, reported as op "kill").
type MySQL struct {
	cfg     MySQLConfig
	obs     Observer
	limits  Limits
	servers map[string]*mysqlServer
	global  map[string]bool
	sharded map[string]bool // pools that have <pool><n> servers
	closed  atomic.Bool
	// lookups caches entity → shard id, one LRU with TTL per lookup table, so a
	// write to a lookup table can drop just that table's entries.
	lookups map[string]*expirable.LRU[int64, int]
}

// NewMySQL builds the servers of cfg (which passed Validate); obs is told of
// every operation, limits bound each reply. It does not dial: connections are
// opened on first use, so faed starts with MySQL down. The error is a charset
// or driver configuration error.
func NewMySQL(cfg MySQLConfig, obs Observer, limits Limits) (*MySQL, error) {
	if obs == nil {
		obs = NopObserver{}
	}
	m := &MySQL{cfg: cfg, obs: obs, limits: limits, servers: map[string]*mysqlServer{},
		global: map[string]bool{}, sharded: map[string]bool{}, lookups: map[string]*expirable.LRU[int64, int]{}}
	for _, g := range cfg.GlobalPools {
		m.global[g] = true
	}
	for _, sc := range cfg.Servers {
		s, err := newMysqlServer(sc, &cfg, obs, limits)
		if err != nil {
			m.Close()
			return nil, err
		}
		m.servers[sc.Pool] = s
		if p := strings.TrimRight(sc.Pool, "0123456789"); p != sc.Pool {
			m.sharded[p] = true
		}
	}
	tables := []string{cfg.DefaultLookupTable}
	for _, t := range cfg.LookupTables {
		tables = append(tables, t)
	}
	for _, t := range tables {
		if t != "" && m.lookups[t] == nil {
			m.lookups[t] = expirable.NewLRU[int64, int](cfg.LookupCacheMaxItems, nil, cfg.LookupCacheTTL)
		}
	}
	return m, nil
}

// Close releases every server's connections and waits for the kills of
// statements in flight (each at most KillTimeout). Operations after Close fail
// with KindClosed; call it only when no operation is in flight.
func (m *MySQL) Close() {
	m.closed.Store(true)
	for _, s := range m.servers {
		s.close()
	}
}

// Query runs a statement that returns rows on the server of (pool, hintID),
// args bound to its ? placeholders. Every value comes back as a string; SQL
// NULL is "NULL" when allow_nullable_columns is on (else KindRefused naming
// the column). Errors: see MySQL.
func (m *MySQL) Query(ctx context.Context, pool string, hintID int64, query string, args []any) (cols []string, rows [][]string, err error) {
	start := time.Now()
	s, err := m.pick(ctx, start, pool, hintID, "query")
	if err != nil {
		return nil, nil, err
	}
	return s.query(ctx, pool, query, args, m.budget(1))
}

// Exec runs a statement that returns no rows on the server of (pool, hintID);
// it returns the rows affected and the last insert id. Errors: see MySQL.
func (m *MySQL) Exec(ctx context.Context, pool string, hintID int64, query string, args []any) (affected, lastID int64, err error) {
	start := time.Now()
	s, err := m.pick(ctx, start, pool, hintID, "exec")
	if err != nil {
		return 0, 0, err
	}
	return s.exec(ctx, pool, query, args)
}

// Tx runs fn in one transaction on the server of (pool, hintID): committed
// when fn returns nil, else rolled back. An error of fn is returned as the
// cause of a *Error (KindRefused unless it is a driver or server error).
func (m *MySQL) Tx(ctx context.Context, pool string, hintID int64, fn func(ctx context.Context, tx *sql.Tx) error) error {
	start := time.Now()
	s, err := m.pick(ctx, start, pool, hintID, "tx")
	if err != nil {
		return err
	}
	return s.tx(ctx, pool, fn)
}

// QueryShards runs a statement that returns rows on every shard server of the
// sharded pool (the entries <pool><n>, n a number ≥ 1; not a bare prefix
// match, which in the original also caught UserShardLookup), shardsInFlight at
// a time, and returns the rows concatenated in shard order with the first
// shard's columns. Limits.MaxReplyBytes bounds the sum over the shards. The
// first failure cancels the other shards' statements and is returned.
func (m *MySQL) QueryShards(ctx context.Context, pool, query string, args []any) (cols []string, rows [][]string, err error) {
	start := time.Now()
	if m.closed.Load() {
		return nil, nil, m.refuse(start, pool, "query", KindClosed, nil)
	}
	shards := m.shards(pool)
	if len(shards) == 0 {
		return nil, nil, m.refuse(start, pool, "query", KindUnknownPool,
			fmt.Errorf("no shard servers %s<n> (servants.mysql.servers)", pool))
	}
	type result struct {
		cols []string
		rows [][]string
	}
	results := make([]result, len(shards))
	budget := m.budget(len(shards))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(shardsInFlight)
	for i, s := range shards {
		g.Go(func() (err error) {
			results[i].cols, results[i].rows, err = s.query(gctx, pool, query, args, budget)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	rows = [][]string{}
	for _, r := range results {
		rows = append(rows, r.rows...)
	}
	return results[0].cols, rows, nil
}

// budget is the reply allowance of one call over n servers.
func (m *MySQL) budget(n int) *replyBudget {
	return &replyBudget{limit: int64(m.limits.MaxReplyBytes), servers: n}
}

// pick returns the server for (pool, hintID): a global pool's own server, or
// the shard of entity hintID in a sharded pool. A refusal is observed as op.
func (m *MySQL) pick(ctx context.Context, start time.Time, pool string, hintID int64, op string) (*mysqlServer, error) {
	switch {
	case m.closed.Load():
		return nil, m.refuse(start, pool, op, KindClosed, nil)
	case m.global[pool]:
		return m.server(start, pool, pool, op)
	case hintID <= 0:
		return nil, m.refuse(start, pool, op, KindBadArgument,
			fmt.Errorf("sharded pool needs hintId > 0 (pool %s, hintId %d)", pool, hintID))
	case m.cfg.ShardStrategy == "vbucket":
		// The original's vbucket layout: shard = id / bucket size + 1.
		return m.server(start, pool, pool+strconv.FormatInt(hintID/int64(m.cfg.VbucketSize)+1, 10), op)
	}
	shard, err := m.shardOf(ctx, start, pool, hintID, op)
	if err != nil {
		return nil, err
	}
	return m.server(start, pool, pool+strconv.Itoa(shard), op)
}

// server returns the server entry named name, asked for pool.
func (m *MySQL) server(start time.Time, pool, name, op string) (*mysqlServer, error) {
	if s := m.servers[name]; s != nil {
		return s, nil
	}
	return nil, m.refuse(start, pool, op, KindUnknownPool, fmt.Errorf("no such server %q (servants.mysql.servers)", name))
}

// refuse is the error of op on pool refused before a server was chosen,
// observed with Server "" (and Pool "" when the pool is not configured, so
// that a client's made-up names never become metric labels).
func (m *MySQL) refuse(start time.Time, pool, op string, kind Kind, cause error) error {
	label := pool
	if !m.global[pool] && !m.sharded[pool] {
		label = ""
	}
	m.obs.Observe(Op{Backend: "mysql", Pool: label, Name: op, Kind: kind, Duration: time.Since(start)})
	return &Error{Backend: "mysql", Op: op, Pool: pool, Kind: kind, Err: cause}
}

// LookupTable is the lookup table of a sharded pool ("" if none).
func (m *MySQL) LookupTable(pool string) string {
	if t, ok := m.cfg.LookupTables[pool]; ok {
		return t
	}
	return m.cfg.DefaultLookupTable
}

// shardOf is the shard of entity in pool: from the lookup cache, or from the
// lookup table on the lookup_pool server (observed as op "lookup").
func (m *MySQL) shardOf(ctx context.Context, start time.Time, pool string, entity int64, op string) (int, error) {
	table := m.LookupTable(pool)
	if table == "" {
		return 0, m.refuse(start, pool, op, KindUnknownPool,
			fmt.Errorf("pool %q is not global and has no lookup table (lookup_tables, default_lookup_table)", pool))
	}
	cache := m.lookups[table]
	if shard, ok := cache.Get(entity); ok {
		return shard, nil
	}
	lp, err := m.server(start, pool, m.cfg.LookupPool, op)
	if err != nil {
		return 0, err
	}
	shard, err := lp.lookup(ctx, pool, table, entity)
	if err != nil {
		return 0, err
	}
	cache.Add(entity, shard)
	return shard, nil
}

// WroteLookupPool is told of every successful write on the lookup pool. Cached
// lookups it may have changed are dropped: for each lookup table named by table
// or appearing in the statement, the entry of entity hintID when hintID > 0,
// else the whole table's cache. (The original never invalidated: a moved entity
// kept hitting its old shard.) Writes that bypass fae are bounded by lookup_cache_ttl.
func (m *MySQL) WroteLookupPool(table, statement string, hintID int64) {
	lower := strings.ToLower(statement)
	for name, cache := range m.lookups {
		if !strings.EqualFold(name, table) && !strings.Contains(lower, strings.ToLower(name)) {
			continue
		}
		if hintID > 0 {
			cache.Remove(hintID)
		} else {
			cache.Purge()
		}
	}
}

// IsLookupPool reports whether pool is the lookup pool.
func (m *MySQL) IsLookupPool(pool string) bool { return pool == m.cfg.LookupPool }

// BreakerState is the breaker state of the server entry named server
// ("closed", "half-open", "open"), "" when there is no such entry.
func (m *MySQL) BreakerState(server string) string {
	if s := m.servers[server]; s != nil {
		return s.breaker.State()
	}
	return ""
}

// Stats returns the figures of every server, sorted by pool: its connections
// from database/sql's DB.Stats (exact: the pool keeps them) and its breaker.
// Pool is the server entry's pool name ("UserShard3"), Server as in Op.Server.
func (m *MySQL) Stats() []ServerStats {
	out := make([]ServerStats, 0, len(m.servers))
	for _, s := range m.servers {
		st := s.db.Stats()
		row := serverStats("mysql", s.name, s.label, st.OpenConnections, st.Idle, st.InUse, s.breaker)
		if s.gate != nil {
			row.Waiting = s.gate.Waiting()
		}
		out = append(out, row)
	}
	return sortStats(out)
}

// shards returns the servers <pool><n> of a sharded pool, in shard order.
func (m *MySQL) shards(pool string) []*mysqlServer {
	type shard struct {
		n int
		s *mysqlServer
	}
	var found []shard
	for name, s := range m.servers {
		rest, ok := strings.CutPrefix(name, pool)
		if !ok || rest == "" {
			continue
		}
		if n, err := strconv.Atoi(rest); err == nil && n >= 1 && strconv.Itoa(n) == rest {
			found = append(found, shard{n, s})
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].n < found[j].n })
	out := make([]*mysqlServer, len(found))
	for i, f := range found {
		out[i] = f.s
	}
	return out
}
