package servant

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/pool"
)

// Pool modes: an operator's switch on one backend pool (pool.Mode), set by the
// mode key of the pool's config entries or by SetPoolMode (POST
// /svt/pool/mode). A pool in read_only refuses the calls that write; a pool
// in degraded refuses every call, and no server is asked. What writes:
//
//   - mysql: a statement that returns no rows (classify: not SELECT, SHOW,
//     DESCRIBE, DESC, EXPLAIN, WITH; and a WITH that holds INSERT, UPDATE,
//     DELETE or REPLACE), and my_merge;
//   - memcache: mc_set, mc_add, mc_delete, mc_increment;
//   - redis: pool.RedisWrites (the commands Redis flags "write", scripts and
//     functions, and commands Redis 7 does not know);
//   - mongodb: mg_insert(s), mg_update(_id), mg_upsert(_id), mg_delete,
//     mg_find_and_modify.
//
// A refusal is a *pool.Error of kind pool.KindModeRefused, observed in
// Backends (so /metrics counts it as kind "mode_refused"), whose text names
// the pool, the mode and how it was set, e.g.
//
//	redis SET: pool "default": refused by the pool's mode: degraded, set by POST /svt/pool/mode at 2026-11-30T19:40:00Z (until the next reload): every call is refused, no server is asked
//
// MongoDB answers it as the declared TMongoReadOnly or TMongoDegrade with that
// text as message. The switches live in the generation: a reload builds a new
// one from the config, so a mode set by POST holds until the next reload or
// restart, where the config's value wins. Switches are per node.

// Where a pool's mode was set (PoolMode.Source).
const (
	ModeFromConfig = "config"
	ModeFromAPI    = "api"
)

// PoolMode is one switched pool, as PoolModes and /svt/stat show it.
type PoolMode struct {
	Backend string    `json:"backend"` // "mysql", "mongodb", "memcache", "redis"
	Pool    string    `json:"pool"`    // as calls name it (mongodb: the server entry)
	Mode    pool.Mode `json:"mode"`    // "read_only" or "degraded"
	Source  string    `json:"source"`  // ModeFromConfig or ModeFromAPI
	Since   time.Time `json:"since"`   // when this generation or the POST set it
}

type modeKey struct{ backend, pool string }

// modeTable is a generation's switched pools; immutable, replaced whole.
type modeTable map[modeKey]PoolMode

// configModes are the switched pools of cfg's backend sections, since now.
func configModes(cfg Config, now time.Time) modeTable {
	t := modeTable{}
	add := func(backend string, modes map[string]pool.Mode) {
		for p, m := range modes {
			t[modeKey{backend, p}] = PoolMode{Backend: backend, Pool: p, Mode: m, Source: ModeFromConfig, Since: now}
		}
	}
	if cfg.Mysql != nil {
		add("mysql", cfg.Mysql.Modes())
	}
	if cfg.Mongodb != nil {
		add("mongodb", cfg.Mongodb.Modes())
	}
	if cfg.Memcache != nil {
		add("memcache", cfg.Memcache.Modes())
	}
	if cfg.Redis != nil {
		add("redis", cfg.Redis.Modes())
	}
	return t
}

// modeRefusal is the refusal of op (a pool.Op name) on poolName of backend
// when the pool's mode forbids it (write: the call writes), else nil. With no
// pool switched it costs one atomic load.
func (s *FunServant) modeRefusal(g *generation, backend, poolName, op string, write bool) error {
	if e := s.modeError(g, backend, poolName, op, write); e != nil {
		return e
	}
	return nil
}

// modeError is modeRefusal as a *pool.Error (nil when allowed), the
// refusal observed.
func (s *FunServant) modeError(g *generation, backend, poolName, op string, write bool) *pool.Error {
	t := g.modes.Load()
	if t == nil {
		return nil
	}
	pm, ok := (*t)[modeKey{backend, poolName}]
	if !ok || pm.Mode == pool.ModeReadOnly && !write {
		return nil
	}
	s.Backends.Observe(pool.Op{Backend: backend, Pool: poolName, Name: op, Kind: pool.KindModeRefused})
	return &pool.Error{Backend: backend, Op: op, Pool: poolName, Kind: pool.KindModeRefused, Err: modeCause(pm)}
}

// modeCause says what the mode refuses and who set it.
type modeCause PoolMode

func (c modeCause) Error() string {
	how := "set by " + configKey(c.Backend)
	if c.Source == ModeFromAPI {
		how = "set by POST /svt/pool/mode at " + c.Since.UTC().Format(time.RFC3339) + " (until the next reload)"
	}
	what := "every call is refused, no server is asked"
	if c.Mode == pool.ModeReadOnly {
		what = "writes are refused"
	}
	return fmt.Sprintf("%s, %s: %s", c.Mode, how, what)
}

// configKey is the config key of a backend's modes.
func configKey(backend string) string {
	if backend == "redis" {
		return "servants.redis.pools[].mode"
	}
	return "servants." + backend + ".servers[].mode"
}

// mongoRefusal is modeRefusal for MongoDB, answered as the declared
// TMongoDegrade or TMongoReadOnly; target's entry is the pool switched.
func (s *FunServant) mongoRefusal(g *generation, m *pool.Mongo, t pool.MongoTarget, op string, write bool) error {
	if g.modes.Load() == nil {
		return nil
	}
	e := s.modeError(g, "mongodb", m.ServerName(t.Pool, t.ShardID), op, write)
	if e == nil {
		return nil
	}
	msg := e.Error()
	if e.Err.(modeCause).Mode == pool.ModeReadOnly {
		return &rpc.TMongoReadOnly{Message: &msg}
	}
	return &rpc.TMongoDegrade{Message: &msg}
}

// PoolModes returns the switched pools of the current generation, sorted by
// backend and pool; empty when none.
func (s *FunServant) PoolModes() []PoolMode {
	out := []PoolMode{}
	if t := s.gen.Load().modes.Load(); t != nil {
		for _, pm := range *t {
			out = append(out, pm)
		}
	}
	slices.SortFunc(out, func(a, b PoolMode) int {
		return strings.Compare(a.Backend+"\x00"+a.Pool, b.Backend+"\x00"+b.Pool)
	})
	return out
}

// SetPoolMode switches pool poolName of backend ("mysql", "mongodb",
// "memcache", "redis") to mode ("", "normal", "read_only", "degraded") in the
// current generation, until the next Reload (whose config's modes win) or
// restart. poolName is a name calls give: a Redis or memcache pool, a MySQL
// global or sharded pool, a MongoDB server entry. It returns the switch as
// set (Mode "" when back to normal); errors: an unknown backend, mode or
// pool (naming them), ErrClosed.
func (s *FunServant) SetPoolMode(backend, poolName, mode string) (PoolMode, error) {
	m, err := pool.ParseMode("mode", mode)
	if err != nil {
		return PoolMode{}, err
	}
	s.reload.Lock() // a reload in progress would drop the switch
	defer s.reload.Unlock()
	g := s.gen.Load()
	if g.closed {
		return PoolMode{}, ErrClosed
	}
	if err := g.cfg.checkPool(backend, poolName); err != nil {
		return PoolMode{}, err
	}
	pm := PoolMode{Backend: backend, Pool: poolName, Mode: m, Source: ModeFromAPI, Since: time.Now()}
	t := modeTable{}
	if old := g.modes.Load(); old != nil {
		for k, v := range *old {
			t[k] = v
		}
	}
	if m == pool.ModeNormal {
		delete(t, modeKey{backend, poolName})
	} else {
		t[modeKey{backend, poolName}] = pm
	}
	g.storeModes(t)
	s.log.Warn("pool mode set by POST /svt/pool/mode (until the next reload)", "backend", backend, "pool", poolName, "mode", cmp.Or(string(m), "normal"))
	return pm, nil
}

// storeModes installs t; an empty table is stored as nil (nothing switched).
func (g *generation) storeModes(t modeTable) {
	if len(t) == 0 {
		g.modes.Store(nil)
		return
	}
	g.modes.Store(&t)
}

// checkPool returns an error unless poolName is a pool of backend that calls
// can name in c.
func (c *Config) checkPool(backend, poolName string) error {
	var names []string
	switch backend {
	case "mysql":
		if c.Mysql != nil {
			for _, sv := range c.Mysql.Servers {
				names = append(names, c.Mysql.CallPool(sv.Pool))
			}
		}
	case "mongodb":
		if c.Mongodb != nil {
			for _, sv := range c.Mongodb.Servers {
				names = append(names, sv.Pool)
			}
		}
	case "memcache":
		if c.Memcache != nil {
			for _, sv := range c.Memcache.Servers {
				names = append(names, sv.Pool)
			}
		}
	case "redis":
		if c.Redis != nil {
			for _, p := range c.Redis.Pools {
				names = append(names, p.Name)
			}
		}
	default:
		return fmt.Errorf(`backend: must be one of "mysql", "mongodb", "memcache", "redis", got %q`, backend)
	}
	if !slices.Contains(names, poolName) {
		return fmt.Errorf("pool: %s has no pool %q (%s)", backend, poolName, poolKeyHint(backend))
	}
	return nil
}

func poolKeyHint(backend string) string {
	switch backend {
	case "redis":
		return "servants.redis.pools[].name"
	case "mysql":
		return "a global pool or a sharded pool of servants.mysql.servers[].pool"
	}
	return "servants." + backend + ".servers[].pool"
}

// modeSet reports whether a pool mode is set on (backend, poolName) in g,
// without observing anything.
func (s *FunServant) modeSet(g *generation, backend, poolName string) bool {
	t := g.modes.Load()
	if t == nil {
		return false
	}
	_, ok := (*t)[modeKey{backend, poolName}]
	return ok
}

// mysqlRefusal is the refusal of statement sql on poolName by the pool's
// mode, nil when allowed; sql is read only when poolName is switched.
func (s *FunServant) mysqlRefusal(g *generation, poolName, sql string) error {
	t := g.modes.Load()
	if t == nil {
		return nil
	}
	if _, ok := (*t)[modeKey{"mysql", poolName}]; !ok {
		return nil
	}
	if mysqlWrites(sql) {
		return s.modeRefusal(g, "mysql", poolName, "exec", true)
	}
	return s.modeRefusal(g, "mysql", poolName, "query", false)
}

// mysqlWrites reports whether a read_only pool refuses sql: a statement that
// returns no rows (or that classify refuses), or a WITH statement holding
// INSERT, UPDATE, DELETE or REPLACE (a data-modifying CTE statement).
func mysqlWrites(sql string) bool {
	kind, err := classify(sql)
	if err != nil || kind == kindExec {
		return true
	}
	toks, _ := lexSQL(sql)
	for len(toks) > 0 && toks[0].is("(") {
		toks = toks[1:]
	}
	if len(toks) == 0 || toks[0].word() != "WITH" {
		return false
	}
	for _, t := range toks {
		switch t.word() {
		case "INSERT", "UPDATE", "DELETE", "REPLACE":
			return true
		}
	}
	return false
}
