package pool

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/golang-lru/v2/expirable"
)

// Errors of MySQL server selection, each with its own counter in MysqlStats.
var (
	// ErrUnknownServer: no server entry for the pool (or the pool+shard) asked for.
	ErrUnknownServer = errors.New("mysql: no such server")
	// ErrNoEntity: the lookup table has no row for the entity.
	ErrNoEntity = errors.New("shard lookup: no entity")
	// ErrEntityLocked: the entity's lookup row has shardLock > 0: it is being moved.
	ErrEntityLocked = errors.New("mysql: entity locked")
	// ErrBadHint: a sharded pool needs hintId > 0.
	ErrBadHint = errors.New("mysql: sharded pool needs hintId > 0")
)

// MySQL is every configured MySQL server and the selection of one for a call:
// global pools by name, sharded pools through a lookup table (standard) or by
// id range (vbucket). Safe for concurrent use.
type MySQL struct {
	cfg     MysqlConfig
	servers map[string]*MysqlServer
	global  map[string]bool
	// lookups caches entity → shard id, one LRU with TTL per lookup table, so a
	// write to a lookup table can drop just that table's entries.
	lookups map[string]*expirable.LRU[int64, int]
	Stats   MysqlStats
}

// NewMySQL builds the servers of cfg (which passed Validate). It does not dial:
// database/sql opens connections on first use, so faed starts with MySQL down.
func NewMySQL(cfg MysqlConfig) (*MySQL, error) {
	m := &MySQL{cfg: cfg, servers: map[string]*MysqlServer{}, global: map[string]bool{},
		lookups: map[string]*expirable.LRU[int64, int]{}}
	for _, g := range cfg.GlobalPools {
		m.global[g] = true
	}
	for _, sc := range cfg.Servers {
		s, err := newMysqlServer(sc, &cfg, &m.Stats)
		if err != nil {
			m.Close()
			return nil, err
		}
		m.servers[sc.Pool] = s
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

// Close closes every server's pool.
func (m *MySQL) Close() {
	for _, s := range m.servers {
		s.close()
	}
}

// Server returns the server entry named name.
func (m *MySQL) Server(name string) (*MysqlServer, error) {
	if s := m.servers[name]; s != nil {
		return s, nil
	}
	m.Stats.UnknownServer.Add(1)
	return nil, fmt.Errorf("%w %q (servants.mysql.servers)", ErrUnknownServer, name)
}

// Pick returns the server for (pool, hintID): a global pool's own server, or
// the shard of entity hintID in a sharded pool. Errors: ErrUnknownServer,
// ErrBadHint, ErrNoEntity, ErrEntityLocked, a lookup failure.
func (m *MySQL) Pick(ctx context.Context, pool string, hintID int64) (*MysqlServer, error) {
	if m.global[pool] {
		return m.Server(pool)
	}
	if hintID <= 0 {
		m.Stats.BadHint.Add(1)
		return nil, fmt.Errorf("%w (pool %s, hintId %d)", ErrBadHint, pool, hintID)
	}
	if m.cfg.ShardStrategy == "vbucket" {
		// The original's vbucket layout: shard = id / bucket size + 1.
		return m.Server(pool + strconv.FormatInt(hintID/int64(m.cfg.VbucketSize)+1, 10))
	}
	shard, err := m.shardOf(ctx, pool, hintID)
	if err != nil {
		return nil, err
	}
	return m.Server(pool + strconv.Itoa(shard))
}

// LookupTable is the lookup table of a sharded pool ("" if none).
func (m *MySQL) LookupTable(pool string) string {
	if t, ok := m.cfg.LookupTables[pool]; ok {
		return t
	}
	return m.cfg.DefaultLookupTable
}

func (m *MySQL) shardOf(ctx context.Context, pool string, entity int64) (int, error) {
	table := m.LookupTable(pool)
	if table == "" {
		m.Stats.UnknownServer.Add(1)
		return 0, fmt.Errorf("%w: pool %q is not global and has no lookup table (lookup_tables, default_lookup_table)",
			ErrUnknownServer, pool)
	}
	cache := m.lookups[table]
	if shard, ok := cache.Get(entity); ok {
		m.Stats.LookupHits.Add(1)
		return shard, nil
	}
	lp, err := m.Server(m.cfg.LookupPool)
	if err != nil {
		return 0, err
	}
	m.Stats.LookupQueries.Add(1)
	_, rows, err := lp.Query(ctx, "SELECT shardId, shardLock FROM `"+table+"` WHERE entityId = ?", []any{entity}, true)
	if err != nil {
		return 0, fmt.Errorf("shard lookup of %d in %s: %w", entity, table, err)
	}
	if len(rows) == 0 {
		m.Stats.LookupNoEntity.Add(1)
		return 0, fmt.Errorf("%w %d in %s", ErrNoEntity, entity, table)
	}
	shard, err1 := strconv.Atoi(rows[0][0])
	lock, err2 := strconv.Atoi(rows[0][1])
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("shard lookup of %d in %s: bad row %q", entity, table, rows[0])
	}
	if lock > 0 {
		m.Stats.LookupLocked.Add(1)
		return 0, fmt.Errorf("entity %d is locked (shardLock %d in %s: it is being moved): %w", entity, lock, table, ErrEntityLocked)
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
		m.Stats.LookupEvicts.Add(1)
		if hintID > 0 {
			cache.Remove(hintID)
		} else {
			cache.Purge()
		}
	}
}

// IsLookupPool reports whether pool is the lookup pool.
func (m *MySQL) IsLookupPool(pool string) bool { return pool == m.cfg.LookupPool }

// Shards returns the servers of sharded pool: the entries named <pool><n>, n a
// number ≥ 1, in shard order (not a bare prefix match, which in the original
// also caught UserShardLookup). None → ErrUnknownServer.
func (m *MySQL) Shards(pool string) ([]*MysqlServer, error) {
	type shard struct {
		n int
		s *MysqlServer
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
	if len(found) == 0 {
		m.Stats.UnknownServer.Add(1)
		return nil, fmt.Errorf("%w: no shard servers %s<n> (servants.mysql.servers)", ErrUnknownServer, pool)
	}
	sort.Slice(found, func(i, j int) bool { return found[i].n < found[j].n })
	out := make([]*MysqlServer, len(found))
	for i, f := range found {
		out[i] = f.s
	}
	return out, nil
}
