package servant

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fae-go/fae/cache"
	"github.com/fae-go/fae/peer"
	"github.com/fae-go/fae/pool"
	"github.com/fae-go/fae/proxy"
)

// ErrClosed is answered to calls that start after Close (faed is stopping).
var ErrClosed = errors.New("faed is shutting down: the servant is closed")

// A generation is what Reload swaps: the backend pools and every setting that
// may change at reload (slow threshold, lock expiry, query-cache settings,
// limits). A call pins one generation in enter and unpins it in leave, so it
// sees one set of pools and settings from start to end. A replaced
// generation is retired: its pools that the next generation does not reuse
// are closed when its last call has ended, never under a running call.
//
// A generation is immutable once built, but for its reference count.
type generation struct {
	cfg    Config // its settings; restart-only keys always hold the boot values
	closed bool   // the generation installed by Close: every call fails with ErrClosed

	my *mysqlServant // nil when servants.mysql is absent, likewise below
	mc *pool.Memcache
	rd *pool.Redis
	mg *pool.Mongo

	modes atomic.Pointer[modeTable] // the switched pools (modes.go); nil = none

	picker *peer.Picker          // the ring of the members known; nil = this node owns every key
	peers  map[string]proxy.Peer // how to reach each member, by address

	plugins []pluginEntry           // the chain of plugin.plugins (plugin_run.go); nil = none
	peerIPs map[netip.Addr]struct{} // the other members' IPs, built when plugins is not nil

	refs    atomic.Int64 // calls that pinned it
	retired atomic.Bool
	next    *generation // set before retired: what it hands on (nil = nothing)
	once    sync.Once
	done    chan struct{} // closed once its pools are closed
}

// closedChan is the done channel of the generation installed by Close.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// pin returns the current generation with a reference taken; unpin releases it.
func (s *FunServant) pin() *generation {
	for {
		g := s.gen.Load()
		g.refs.Add(1)
		// Had it been swapped out (and maybe closed) between the load and the
		// add, the reference is given back and the new one tried.
		if s.gen.Load() == g {
			return g
		}
		g.unpin()
	}
}

func (g *generation) unpin() {
	if g.refs.Add(-1) == 0 && g.retired.Load() {
		g.closePools()
	}
}

// retire marks g as replaced by next (nil: by nothing, at Close); its pools
// close now if no call holds it, else when the last one unpins.
func (g *generation) retire(next *generation) {
	g.next = next
	g.retired.Store(true)
	if g.refs.Load() == 0 {
		g.closePools()
	}
}

// closePools closes the pools of g that its successor does not reuse.
func (g *generation) closePools() {
	g.once.Do(func() {
		n := g.next
		if n == nil {
			n = &generation{}
		}
		if g.my != nil && (n.my == nil || n.my.cluster != g.my.cluster) {
			g.my.cluster.Close()
		}
		if g.mg != nil && n.mg != g.mg {
			g.mg.Close()
		}
		if g.mc != nil && n.mc != g.mc {
			g.mc.Close()
		}
		if g.rd != nil && n.rd != g.rd {
			g.rd.Close()
		}
		close(g.done)
	})
}

// build makes a generation for cfg, reusing the pools of old (nil at start)
// whose config section did not change. On error, whatever it built is closed
// and old is untouched.
func (s *FunServant) build(cfg Config, old *generation) (*generation, error) {
	g := &generation{cfg: cfg, done: make(chan struct{})}
	if old == nil {
		old = &generation{}
	}
	g.storeModes(configModes(cfg, time.Now()))
	s.buildPicker(g)
	if err := s.buildChain(g, old); err != nil {
		return nil, err
	}
	if err := s.buildPools(g, old); err != nil {
		g.next = old // close only what was built here
		g.closePools()
		return nil, err
	}
	return g, nil
}

func (s *FunServant) buildPools(g, old *generation) (err error) {
	cfg := g.cfg
	if cfg.Redis != nil {
		if old.rd != nil && reflect.DeepEqual(redisPoolKeys(*old.cfg.Redis), redisPoolKeys(*cfg.Redis)) && old.cfg.MaxReplyBytes == cfg.MaxReplyBytes {
			g.rd = old.rd
		} else if g.rd, err = pool.NewRedis(*cfg.Redis, s.Backends, s.limits(cfg)); err != nil {
			return fmt.Errorf("servants.redis: %w", err)
		}
	}
	if cfg.Memcache != nil {
		if old.mc != nil && reflect.DeepEqual(memcachePoolKeys(*old.cfg.Memcache), memcachePoolKeys(*cfg.Memcache)) && old.cfg.MaxReplyBytes == cfg.MaxReplyBytes {
			g.mc = old.mc
		} else if g.mc, err = pool.NewMemcache(*cfg.Memcache, s.Backends, s.limits(cfg)); err != nil {
			return fmt.Errorf("servants.memcache: %w", err)
		}
	}
	if cfg.Mongodb != nil {
		if old.mg != nil && reflect.DeepEqual(mongoPoolKeys(*old.cfg.Mongodb), mongoPoolKeys(*cfg.Mongodb)) && old.cfg.MaxReplyBytes == cfg.MaxReplyBytes {
			g.mg = old.mg
		} else if g.mg, err = pool.NewMongo(*cfg.Mongodb, s.Backends, s.limits(cfg)); err != nil {
			return fmt.Errorf("servants.mongodb: %w", err)
		}
	}
	if cfg.Mysql != nil {
		g.my, err = s.buildMysql(g, old)
	}
	return err
}

// limits are the pool.Limits of cfg.
func (s *FunServant) limits(cfg Config) pool.Limits {
	return pool.Limits{MaxReplyBytes: cfg.MaxReplyBytes}
}

// buildMysql makes the MySQL servant of g, reusing old's pools when
// servants.mysql is unchanged but for the query-cache settings, and old's
// query-cache store when its own settings (and, for the redis store, the Redis
// pools) are unchanged.
func (s *FunServant) buildMysql(g, old *generation) (*mysqlServant, error) {
	cfg := g.cfg.Mysql
	m := &mysqlServant{keyHash: cfg.CacheKeyHash, ttl: cfg.CacheTTL, log: s.log, stats: &s.QueryCache}
	var oldCfg *pool.MySQLConfig
	if old.my != nil {
		oldCfg = old.cfg.Mysql
	}
	if oldCfg != nil && reflect.DeepEqual(mysqlPoolKeys(*oldCfg), mysqlPoolKeys(*cfg)) && old.cfg.MaxReplyBytes == g.cfg.MaxReplyBytes {
		m.cluster = old.my.cluster
	} else {
		cl, err := pool.NewMySQL(*cfg, s.Backends, s.limits(g.cfg))
		if err != nil {
			return nil, err
		}
		m.cluster = cl
	}
	sameStore := oldCfg != nil && oldCfg.CacheStore == cfg.CacheStore &&
		oldCfg.CacheStoreMemMaxItems == cfg.CacheStoreMemMaxItems && oldCfg.CacheStoreMemMaxBytes == cfg.CacheStoreMemMaxBytes &&
		(cfg.CacheStore != "redis" || oldCfg.CacheStoreRedisPool == cfg.CacheStoreRedisPool && old.rd == g.rd)
	switch {
	case sameStore:
		m.store = old.my.store
	case cfg.CacheStore == "redis":
		store, err := redisQueryStore(g, cfg.CacheStoreRedisPool, cache.MaxEntryBytes(cfg.CacheStoreMemMaxItems, cfg.CacheStoreMemMaxBytes))
		if err != nil {
			if m.cluster != old.myCluster() {
				m.cluster.Close()
			}
			return nil, err
		}
		m.store = store
	default:
		m.store = cache.NewMemStore(cfg.CacheStoreMemMaxItems, cfg.CacheStoreMemMaxBytes)
	}
	return m, nil
}

func (g *generation) myCluster() *pool.MySQL {
	if g.my == nil {
		return nil
	}
	return g.my.cluster
}

// mysqlPoolKeys is cfg without the keys that only the servant reads (the
// query cache's), so that changing those reuses the pools. (The pool reads
// allow_nullable_columns.) Nor do the pools read the mode keys (the
// generation's switches do): changing a mode reuses the pools, below likewise.
func mysqlPoolKeys(cfg pool.MySQLConfig) pool.MySQLConfig {
	cfg.CacheStore, cfg.CacheStoreMemMaxItems, cfg.CacheStoreMemMaxBytes, cfg.CacheStoreRedisPool = "", 0, 0, ""
	cfg.CacheKeyHash, cfg.CacheTTL = false, 0
	cfg.Servers = slices.Clone(cfg.Servers)
	for i := range cfg.Servers {
		cfg.Servers[i].Mode = ""
	}
	return cfg
}

func redisPoolKeys(cfg pool.RedisConfig) pool.RedisConfig {
	cfg.Pools = slices.Clone(cfg.Pools)
	for i := range cfg.Pools {
		cfg.Pools[i].Mode = ""
	}
	return cfg
}

func memcachePoolKeys(cfg pool.MemcacheConfig) pool.MemcacheConfig {
	cfg.Servers = slices.Clone(cfg.Servers)
	for i := range cfg.Servers {
		cfg.Servers[i].Mode = ""
	}
	return cfg
}

func mongoPoolKeys(cfg pool.MongoConfig) pool.MongoConfig {
	cfg.Servers = slices.Clone(cfg.Servers)
	for i := range cfg.Servers {
		cfg.Servers[i].Mode = ""
	}
	return cfg
}

// Reload builds a generation for cfg (which must have passed Validate) beside
// the current one, reusing its unchanged pools, and swaps it in: calls that
// start after Reload returns see cfg; calls in flight finish on the old
// generation, whose replaced pools close after the last of them. Reloads are
// serialised, each built from the latest generation. Keys that only a restart
// can change keep their running values and are returned (e.g.
// "servants.idgen_worker_id"); an error leaves the running generation as it was.
func (s *FunServant) Reload(cfg Config) (restart []string, err error) {
	s.reload.Lock()
	defer s.reload.Unlock()
	old := s.gen.Load()
	if old.closed {
		return nil, ErrClosed
	}
	restart = s.keepRestartKeys(&cfg)
	g, err := s.build(cfg, old)
	if err != nil {
		return restart, err
	}
	s.gen.Store(g)
	old.retire(g)
	s.lastDone = old.done
	return restart, nil
}

// keepRestartKeys puts the boot values of the restart-only keys into cfg and
// returns the keys whose value differed.
func (s *FunServant) keepRestartKeys(cfg *Config) []string {
	var keys []string
	b := &s.boot
	if cfg.IdgenWorkerID != b.IdgenWorkerID {
		keys = append(keys, "servants.idgen_worker_id")
		cfg.IdgenWorkerID = b.IdgenWorkerID
	}
	if cfg.SessionMaxItems != b.SessionMaxItems {
		keys = append(keys, "servants.session_max_items")
		cfg.SessionMaxItems = b.SessionMaxItems
	}
	if !reflect.DeepEqual(cfg.Lcache, b.Lcache) {
		keys = append(keys, "servants.lcache")
		cfg.Lcache = b.Lcache
	}
	if !reflect.DeepEqual(cfg.Proxy, b.Proxy) {
		keys = append(keys, "servants.proxy")
		cfg.Proxy = b.Proxy
	}
	switch {
	case (cfg.Lock == nil) != (b.Lock == nil):
		keys = append(keys, "servants.lock")
		cfg.Lock = b.Lock
	case cfg.Lock != nil && (cfg.Lock.MaxItems != b.Lock.MaxItems || cfg.Lock.MaxBytes != b.Lock.MaxBytes):
		if cfg.Lock.MaxItems != b.Lock.MaxItems {
			keys = append(keys, "servants.lock.max_items")
		}
		if cfg.Lock.MaxBytes != b.Lock.MaxBytes {
			keys = append(keys, "servants.lock.max_bytes")
		}
		l := *cfg.Lock
		l.MaxItems, l.MaxBytes = b.Lock.MaxItems, b.Lock.MaxBytes
		cfg.Lock = &l
	}
	return keys
}
