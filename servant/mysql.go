package servant

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"golang.org/x/sync/singleflight"

	"github.com/fae-go/fae/cache"
	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/pool"
)

// mysqlServant serves the my_* methods of one generation over pool.MySQL
// with the query cache.
type mysqlServant struct {
	cluster *pool.MySQL
	store   cache.Store
	keyHash bool
	ttl     time.Duration
	flight  singleflight.Group
	log     *slog.Logger
	stats   *QueryCacheStats // the core's: counts survive reloads
	classes classifyCache    // my_query's statements, classified
}

// QueryCacheStats count the query cache's outcomes.
type QueryCacheStats struct {
	Hits    atomic.Int64 // SELECTs answered from the store
	Misses  atomic.Int64 // SELECTs that ran (one per singleflight group)
	Shared  atomic.Int64 // SELECTs that waited for an identical miss in flight
	Kicks   atomic.Int64 // keys deleted after a write or by my_evict
	Errors  atomic.Int64 // store failures (the call goes on without the cache)
	Refused atomic.Int64 // statements refused (transactions, locks, session state)
	// ClassifyOverflow counts my_query statements classified without being
	// remembered: classifyCacheMax distinct statements were already.
	ClassifyOverflow atomic.Int64
}

var errMysqlOff = &NotConfiguredError{Name: "mysql", Key: "servants.mysql"}

// mysql is the MySQL servant of g, or the "not configured" error.
func (g *generation) mysql() (*mysqlServant, error) {
	if g.my == nil {
		return nil, errMysqlOff
	}
	return g.my, nil
}

// MyQuery runs one statement on the server of (pool, table, hintID); see the
// IDL. With a cacheKey it runs on the owner of the cacheKey, so that one node
// caches it; when that owner is unreachable a read runs here without the
// cache (counted) and a write fails naming the owner.
func (s *FunServant) MyQuery(ctx context.Context, c *rpc.Context, pool, table string, hintID int64, sql string, argv []string, cacheKey string) (*rpc.MysqlResult_, error) {
	_, r, err := s.myQueryEncoded(ctx, false, c, pool, table, hintID, sql, argv, cacheKey)
	return r, err
}

// myQueryEncoded is MyQuery for myQueryProcessor: when encoded is true (the
// caller can write bytes encoded in the binary protocol) a hit in the
// in-process query cache comes back as the cached bytes of the MysqlResult in
// enc, r nil (see myQueryHit); every other call runs as MyQuery, its result in r.
func (s *FunServant) myQueryEncoded(ctx context.Context, encoded bool, c *rpc.Context, pool, table string, hintID int64, sql string, argv []string, cacheKey string) (enc []byte, r *rpc.MysqlResult_, err error) {
	type answer struct {
		enc []byte
		r   *rpc.MysqlResult_
	}
	a, err := run(s, ctx, "my.query", c, true, func() string {
		return targs("pool", pool, "table", table, "hint", hintID, "sql", sql, "args", argv, "cacheKey", cacheKey)
	}, func(g *generation) (answer, error) {
		if encoded && cacheKey != "" {
			if enc := s.myQueryHit(g, c, pool, sql, cacheKey); enc != nil {
				return answer{enc: enc}, nil
			}
		}
		r, err := watched(ctx, "my.query", g, func(ctx context.Context, g *generation) (*rpc.MysqlResult_, error) {
			return s.myQuery(ctx, g, c, pool, table, hintID, sql, argv, cacheKey)
		})
		return answer{r: r}, err
	})
	return a.enc, a.r, err
}

// myQueryHit answers my_query from the in-process query cache when that is
// all the call needs: no pool mode set on pool, the cacheKey owned here (or
// no cluster), sql a statement returning rows, and its result in the store.
// It returns the cached MysqlResult as encodeResult wrote it (binary
// protocol; not to be modified), counted as a hit, or nil for the full path
// (which then decides, and counts, everything again). Nothing here waits, so
// the client is not watched.
func (s *FunServant) myQueryHit(g *generation, c *rpc.Context, pool, sql, cacheKey string) []byte {
	m := g.my
	if m == nil {
		return nil
	}
	store, ok := m.store.(*cache.MemStore)
	if !ok || s.modeSet(g, "mysql", pool) {
		return nil
	}
	if g.picker != nil {
		if _, remote, err := g.picker.PickPeer(cacheKey); err != nil || remote {
			return nil
		}
	}
	var overflow atomic.Int64 // counted by the full path, or below
	if kind, err := m.classes.classify(sql, &overflow); err != nil || kind != kindRows {
		return nil
	}
	b, ok, err := store.Get(context.Background(), m.key(cacheKey))
	if err != nil || !ok {
		return nil
	}
	m.stats.ClassifyOverflow.Add(overflow.Load())
	m.stats.Hits.Add(1)
	return b
}

// myQuery is my_query routed by its cacheKey.
func (s *FunServant) myQuery(ctx context.Context, g *generation, c *rpc.Context, pool, table string, hintID int64, sql string, argv []string, cacheKey string) (*rpc.MysqlResult_, error) {
	if err := s.mysqlRefusal(g, pool, sql); err != nil {
		return nil, err
	}
	p, remote, err := s.route(g, c, cacheKey)
	if err != nil {
		return nil, err
	}
	if remote {
		r, err := forward(s, ctx, p, "my_query", c, func(ctx context.Context, cl *rpc.FunServantClient, fc *rpc.Context) (*rpc.MysqlResult_, error) {
			return cl.MyQuery(ctx, fc, pool, table, hintID, sql, argv, cacheKey)
		})
		if err == nil || peerAnswered(err) || errors.Is(err, thrift.ErrAbandonRequest) {
			return r, err
		}
		if kind, cerr := classify(sql); cerr != nil || kind != kindRows {
			return nil, err // a write is never run twice or elsewhere
		}
		s.Cluster.LocalFallback.Add(1)
		cacheKey = "" // the owner's cache is the cache; read around it
	}
	m, err := g.mysql()
	if err != nil {
		return nil, err
	}
	return m.query(ctx, pool, table, hintID, sql, argv, cacheKey)
}

// MyBulkExec runs my_query for each index in order (an element with a
// cacheKey on that key's owner); not atomic. It returns
// the sum of rowsAffected, or the first error naming its index.
func (s *FunServant) MyBulkExec(ctx context.Context, c *rpc.Context, pools, tables []string, hintIDs []int64, sqls []string, argvs [][]string, cacheKeys []string) (int64, error) {
	return runBackend(s, "my.bexec", ctx, c, func() string {
		return targs("pools", pools, "tables", tables, "hints", hintIDs, "sqls", sqls, "args", argvs, "cacheKeys", cacheKeys)
	}, func(ctx context.Context, g *generation) (int64, error) {
		n := len(sqls)
		if len(pools) != n || len(tables) != n || len(hintIDs) != n || len(argvs) != n || len(cacheKeys) != n {
			return 0, fmt.Errorf("my_bulk_exec: lists of unequal length: pool %d, table %d, hintId %d, sql %d, argv %d, cacheKey %d",
				len(pools), len(tables), len(hintIDs), n, len(argvs), len(cacheKeys))
		}
		var sum int64
		for i := range sqls {
			r, err := s.myQuery(ctx, g, c, pools[i], tables[i], hintIDs[i], sqls[i], argvs[i], cacheKeys[i])
			if err != nil {
				return sum, fmt.Errorf("my_bulk_exec[%d] (%d statements before it ran): %w", i, i, err)
			}
			sum += r.RowsAffected
		}
		return sum, nil
	})
}

// MyQueryShards runs a SELECT on every shard server of pool, rows concatenated in shard order.
func (s *FunServant) MyQueryShards(ctx context.Context, c *rpc.Context, pool, table, sql string, argv []string) (*rpc.MysqlResult_, error) {
	return runBackend(s, "my.qshards", ctx, c, func() string { return targs("pool", pool, "table", table, "sql", sql, "args", argv) }, func(ctx context.Context, g *generation) (*rpc.MysqlResult_, error) {
		m, err := g.mysql()
		if err != nil {
			return nil, err
		}
		if err := s.modeRefusal(g, "mysql", pool, "query", false); err != nil {
			return nil, err
		}
		return m.queryShards(ctx, pool, sql, argv)
	})
}

// MyMerge deep-merges a JSON object into one column of one row, atomically;
// see merge. It runs on the owner of key, or when key is empty of the row
// (pool, table, hintId, where), so that merges of one row are serialised on
// one node.
func (s *FunServant) MyMerge(ctx context.Context, c *rpc.Context, pool, table string, hintID int64, where, key, column, jsonValue string) (*rpc.MysqlMergeResult_, error) {
	return runBackend(s, "my.merge", ctx, c, func() string {
		return targs("pool", pool, "table", table, "hint", hintID, "where", where, "key", key, "column", column, "value", jsonValue)
	}, func(ctx context.Context, g *generation) (*rpc.MysqlMergeResult_, error) {
		if err := s.modeRefusal(g, "mysql", pool, "tx", true); err != nil {
			return nil, err
		}
		if p, remote, err := s.route(g, c, mergeKey(pool, table, hintID, where, key)); err != nil || remote {
			if err != nil {
				return nil, err
			}
			return forward(s, ctx, p, "my_merge", c, func(ctx context.Context, cl *rpc.FunServantClient, fc *rpc.Context) (*rpc.MysqlMergeResult_, error) {
				return cl.MyMerge(ctx, fc, pool, table, hintID, where, key, column, jsonValue)
			})
		}
		m, err := g.mysql()
		if err != nil {
			return nil, err
		}
		return m.merge(ctx, pool, table, hintID, where, column, jsonValue)
	})
}

// MyEvict deletes cacheKey from the query cache of the key's owner (hashed
// like every other use when cache_key_hash is on; the original could not
// evict in that mode).
func (s *FunServant) MyEvict(ctx context.Context, c *rpc.Context, cacheKey string) error {
	_, err := runBackend(s, "my.evict", ctx, c, func() string { return targs("cacheKey", cacheKey) }, func(ctx context.Context, g *generation) (struct{}, error) {
		if p, remote, err := s.route(g, c, cacheKey); err != nil || remote {
			if err != nil {
				return struct{}{}, err
			}
			return forward(s, ctx, p, "my_evict", c, func(ctx context.Context, cl *rpc.FunServantClient, fc *rpc.Context) (struct{}, error) {
				return struct{}{}, cl.MyEvict(ctx, fc, cacheKey)
			})
		}
		m, err := g.mysql()
		if err != nil {
			return struct{}{}, err
		}
		m.stats.Kicks.Add(1)
		return struct{}{}, m.store.Del(ctx, m.key(cacheKey))
	})
	return err
}

// key is the store key of a cache key: its SHA-1 in hex when cache_key_hash is on.
func (m *mysqlServant) key(cacheKey string) string {
	if !m.keyHash {
		return cacheKey
	}
	sum := sha1.Sum([]byte(cacheKey))
	return hex.EncodeToString(sum[:])
}

func toArgs(argv []string) []any {
	args := make([]any, len(argv))
	for i, a := range argv {
		args[i] = a
	}
	return args
}

// query is my_query: classify, then exec, cached read, or plain read.
func (m *mysqlServant) query(ctx context.Context, poolName, table string, hintID int64, sql string, argv []string, cacheKey string) (*rpc.MysqlResult_, error) {
	kind, err := m.classes.classify(sql, &m.stats.ClassifyOverflow)
	if err != nil {
		m.stats.Refused.Add(1)
		return nil, err
	}
	if kind == kindExec {
		return m.exec(ctx, poolName, table, hintID, sql, argv, cacheKey)
	}
	if cacheKey == "" {
		return m.read(ctx, poolName, hintID, sql, argv)
	}
	key := m.key(cacheKey)
	if b, ok, err := m.store.Get(ctx, key); err != nil {
		m.stats.Errors.Add(1)
		m.log.Warn("query cache get failed; reading MySQL", "key", cacheKey, "err", err)
	} else if ok {
		if r, err := decodeResult(b); err == nil {
			m.stats.Hits.Add(1)
			return r, nil
		}
		m.stats.Errors.Add(1)
	}
	// Identical concurrent misses run one query; the others share its result.
	v, err, shared := m.flight.Do(key, func() (any, error) {
		m.stats.Misses.Add(1)
		// The lease is taken before the SELECT: a write's invalidation after it
		// makes the fill a no-op, so a stale result is never stored.
		lease, lerr := m.store.Lease(ctx, key)
		r, err := m.read(ctx, poolName, hintID, sql, argv)
		if err != nil {
			return nil, err
		}
		if lerr != nil {
			m.stats.Errors.Add(1)
			m.log.Warn("query cache lease failed; result not cached", "key", cacheKey, "err", lerr)
		} else if b, err := encodeResult(r); err == nil {
			if _, err := m.store.Fill(ctx, key, b, m.ttl, lease); err != nil {
				m.stats.Errors.Add(1)
				m.log.Warn("query cache fill failed", "key", cacheKey, "err", err)
			}
		}
		return r, nil
	})
	if shared {
		m.stats.Shared.Add(1)
	}
	if err != nil {
		return nil, err
	}
	return v.(*rpc.MysqlResult_), nil
}

func (m *mysqlServant) read(ctx context.Context, poolName string, hintID int64, sql string, argv []string) (*rpc.MysqlResult_, error) {
	cols, rows, err := m.cluster.Query(ctx, poolName, hintID, sql, toArgs(argv))
	if err != nil {
		return nil, err
	}
	return &rpc.MysqlResult_{Cols: cols, Rows: rows}, nil
}

// exec runs a write; on success it drops the cache key and any shard lookups the write may have changed.
func (m *mysqlServant) exec(ctx context.Context, poolName, table string, hintID int64, sql string, argv []string, cacheKey string) (*rpc.MysqlResult_, error) {
	affected, lastID, err := m.cluster.Exec(ctx, poolName, hintID, sql, toArgs(argv))
	if err != nil {
		return nil, err
	}
	if m.cluster.IsLookupPool(poolName) {
		m.cluster.WroteLookupPool(table, sql, hintID)
	}
	if cacheKey != "" {
		m.stats.Kicks.Add(1)
		// The write is done and acknowledged; a failed kick is logged and counted, not
		// turned into an error that would make the caller retry the write.
		if err := m.store.Del(ctx, m.key(cacheKey)); err != nil {
			m.stats.Errors.Add(1)
			m.log.Error("query cache kick failed after a write; the key may be stale until cache_ttl", "key", cacheKey, "err", err)
		}
	}
	return &rpc.MysqlResult_{RowsAffected: affected, LastInsertId: lastID, Cols: []string{}, Rows: [][]string{}}, nil
}

// queryShards runs a SELECT on every shard of poolName (pool.MySQL.QueryShards:
// at most 8 at once, the reply bounded as a whole by max_reply_bytes).
func (m *mysqlServant) queryShards(ctx context.Context, poolName, sql string, argv []string) (*rpc.MysqlResult_, error) {
	if kind, err := classify(sql); err != nil || kind != kindRows {
		m.stats.Refused.Add(1)
		if err == nil {
			err = refused("my_query_shards runs statements that return rows only")
		}
		return nil, err
	}
	cols, rows, err := m.cluster.QueryShards(ctx, poolName, sql, toArgs(argv))
	if err != nil {
		return nil, fmt.Errorf("my_query_shards: %w", err)
	}
	return &rpc.MysqlResult_{Cols: cols, Rows: rows}, nil
}

// encodeResult and decodeResult store a result in the query cache as Thrift
// binary: exact bytes both ways.
func encodeResult(r *rpc.MysqlResult_) ([]byte, error) {
	return thrift.NewTSerializer().Write(context.Background(), r)
}

// resultDecoders reuse their deserializers (a memory transport and a
// protocol each): a query cache hit then allocates only the result.
var resultDecoders = thrift.NewTDeserializerPool(thrift.NewTDeserializer)

func decodeResult(b []byte) (*rpc.MysqlResult_, error) {
	r := rpc.NewMysqlResult_()
	if err := resultDecoders.Read(context.Background(), r, b); err != nil {
		return nil, err
	}
	return r, nil
}

// redisQueryStore is the query cache in the Redis pool poolName of g
// (cache_store: redis): values at "fae:qc:"+key, leases at "fae:ql:"+key,
// entries over maxEntryBytes not stored.
func redisQueryStore(g *generation, poolName string, maxEntryBytes int64) (cache.Store, error) {
	if g.rd == nil {
		return nil, fmt.Errorf("servants.mysql.cache_store is redis but servants.redis is not configured")
	}
	if !g.rd.HasPool(poolName) {
		return nil, fmt.Errorf("servants.mysql.cache_store_redis_pool: no Redis pool %q in servants.redis.pools", poolName)
	}
	return cache.NewRedisStore(g.rd, cache.RedisStoreConfig{Pool: poolName, Prefix: "fae:qc:",
		LeasePrefix: "fae:ql:", MaxEntryBytes: maxEntryBytes})
}
