package pool

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/bradfitz/gomemcache/memcache"
)

// Memcache is the memcache cluster of servants.memcache: named pools of
// memcached servers. A pool maps a key only over its own servers, in
// hash_strategy (standard = PHP memcache's, consistent = libmemcached's ketama,
// both as PHP computes them, so items are shared with PHP), and writes it to
// replica_num of them. Each server has its own gomemcache client, a cap of
// max_conns_per_server open connections and a breaker that counts only its
// connection failures. Safe for concurrent use.
//
// Every error is a *BackendError naming the operation, key, pool and server,
// with one of the ErrMemcache* kinds (or ErrBreakerOpen) that errors.Is matches.
type Memcache struct {
	pools       map[string]*mcPool // read-only after NewMemcache
	unknownPool atomic.Int64
}

// mcPool is one pool: its servers in config order and their key mapping.
type mcPool struct {
	name     string
	servers  []*mcServer
	ring     *ketamaRing // hash_strategy consistent; nil = standard
	replicas int         // servers written per key, 1..len(servers)
	stats    MemcacheStats
}

// NewMemcache builds the pools of cfg, which must have passed Validate.
// Connections are opened on first use. Close releases them.
func NewMemcache(cfg MemcacheConfig) (*Memcache, error) {
	if cfg.HashStrategy != "standard" && cfg.HashStrategy != "consistent" {
		return nil, fmt.Errorf("memcache: hash_strategy %q: want standard or consistent", cfg.HashStrategy)
	}
	m := &Memcache{pools: map[string]*mcPool{}}
	ring := map[string][]ketamaServer{}
	for _, s := range cfg.Servers {
		p := m.pools[s.Pool]
		if p == nil {
			p = &mcPool{name: s.Pool}
			m.pools[s.Pool] = p
		}
		addr := net.JoinHostPort(s.Host, strconv.Itoa(int(s.Port)))
		p.servers = append(p.servers, newMcServer(addr, cfg))
		ring[s.Pool] = append(ring[s.Pool], ketamaServer{host: s.Host, port: int(s.Port)})
	}
	for name, p := range m.pools {
		p.replicas = max(1, min(cfg.ReplicaNum, len(p.servers)))
		if cfg.HashStrategy == "consistent" {
			p.ring = newKetamaRing(ring[name])
		}
	}
	return m, nil
}

// Close closes the idle connections of every server. Calls after Close still
// work (they open new connections).
func (m *Memcache) Close() error {
	for _, p := range m.pools {
		for _, s := range p.servers {
			s.client.Close()
		}
	}
	return nil
}

// Stats returns the counters of pool, nil if there is no such pool.
func (m *Memcache) Stats(pool string) *MemcacheStats {
	if p := m.pools[pool]; p != nil {
		return &p.stats
	}
	return nil
}

// UnknownPoolCalls is the number of calls that named a pool not configured.
func (m *Memcache) UnknownPoolCalls() int64 { return m.unknownPool.Load() }

// ServerOf returns the address (host:port) of the server key maps to in pool:
// the one written first and read first.
func (m *Memcache) ServerOf(pool, key string) (string, error) {
	p, err := m.pool("locate", pool, key)
	if err != nil {
		return "", err
	}
	return p.servers[p.own(key)].addr, nil
}

// Get returns the value and client flags of key in pool, from the first of the
// key's servers that answers. Errors: ErrMemcacheMiss when absent, and the
// kinds of BackendError (unknown pool, bad key, server failure, open breaker,
// busy connections) when no server answered.
func (m *Memcache) Get(pool, key string) (value []byte, flags uint32, err error) {
	p, err := m.pool("get", pool, key)
	if err != nil {
		return nil, 0, err
	}
	first := p.own(key)
	var firstErr error
	for j := 0; j < p.replicas; j++ {
		i := (first + j) % len(p.servers)
		var it *memcache.Item
		kind, cause := p.servers[i].do(func(c *memcache.Client) (e error) { it, e = c.Get(key); return e })
		p.stats.count(kind)
		if kind == nil {
			p.stats.Hits.Add(1)
			if j > 0 {
				p.stats.ReplicaReads.Add(1)
			}
			return it.Value, it.Flags, nil
		}
		e := p.err("get", key, i, kind, cause)
		if answered(kind) {
			return nil, 0, e
		}
		if firstErr == nil {
			firstErr = e
		}
	}
	return nil, 0, firstErr
}

// Set stores value with memcached client flags under key in pool, on each of
// the key's replica_num servers. expiration is in seconds: 0 = never, up to 30
// days relative, beyond that a Unix time (memcached's rule). It succeeds when
// one server stored it; otherwise it returns the key's own server's error.
func (m *Memcache) Set(pool, key string, value []byte, flags uint32, expiration int32) error {
	p, err := m.pool("set", pool, key)
	if err != nil {
		return err
	}
	it := &memcache.Item{Key: key, Value: value, Flags: flags, Expiration: expiration}
	_, err = p.write("set", key, func(_ int, c *memcache.Client) error { return c.Set(it) })
	return err
}

// Add is Set only when the key is absent: false (and no error) when it exists
// on the first of its servers that answers.
func (m *Memcache) Add(pool, key string, value []byte, flags uint32, expiration int32) (bool, error) {
	p, err := m.pool("add", pool, key)
	if err != nil {
		return false, err
	}
	it := &memcache.Item{Key: key, Value: value, Flags: flags, Expiration: expiration}
	_, err = p.write("add", key, func(_ int, c *memcache.Client) error { return c.Add(it) })
	if errors.Is(err, errMemcacheNotStored) {
		return false, nil
	}
	return err == nil, err
}

// Delete removes key from its servers: false (and no error) when the first of
// them that answers did not have it.
func (m *Memcache) Delete(pool, key string) (bool, error) {
	p, err := m.pool("delete", pool, key)
	if err != nil {
		return false, err
	}
	_, err = p.write("delete", key, func(_ int, c *memcache.Client) error { return c.Delete(key) })
	if errors.Is(err, ErrMemcacheMiss) {
		return false, nil
	}
	return err == nil, err
}

// Increment adds delta to the decimal value of key (memcached incr), or
// subtracts -delta when delta < 0 (decr, which memcached clamps at 0), and
// returns the new value (memcached's unsigned 64-bit counter, as int64). Errors:
// ErrMemcacheMiss for an absent key, ErrMemcacheNotNumeric for a value that is
// not a decimal number, and the other kinds of BackendError.
func (m *Memcache) Increment(pool, key string, delta int64) (int64, error) {
	op, mag := "incr", uint64(delta)
	if delta < 0 {
		op, mag = "decr", uint64(-(delta+1))+1
	}
	p, err := m.pool(op, pool, key)
	if err != nil {
		return 0, err
	}
	vals := make([]uint64, p.replicas)
	j, err := p.write(op, key, func(j int, c *memcache.Client) (e error) {
		if op == "incr" {
			vals[j], e = c.Increment(key, mag)
		} else {
			vals[j], e = c.Decrement(key, mag)
		}
		return e
	})
	if err != nil {
		return 0, err
	}
	return int64(vals[j]), nil
}

// pool returns the pool named pool after checking key; it counts the call.
func (m *Memcache) pool(op, pool, key string) (*mcPool, error) {
	p := m.pools[pool]
	if p == nil {
		m.unknownPool.Add(1)
		return nil, &BackendError{Backend: "memcache", Op: op, Pool: pool, Key: key, Kind: ErrMemcacheUnknownPool,
			Err: errors.New("not in servants.memcache.servers")}
	}
	p.stats.Calls.Add(1)
	if err := mcCheckKey(key); err != nil {
		p.stats.BadKeys.Add(1)
		return nil, &BackendError{Backend: "memcache", Op: op, Pool: pool, Key: key, Kind: ErrMemcacheBadKey, Err: err}
	}
	return p, nil
}

// mcCheckKey applies memcached's text-protocol key rules: 1..250 bytes, no
// control or space byte.
func mcCheckKey(key string) error {
	if key == "" {
		return errors.New("empty")
	}
	if len(key) > 250 {
		return fmt.Errorf("%d bytes, at most 250 allowed", len(key))
	}
	for i := 0; i < len(key); i++ {
		if key[i] <= ' ' || key[i] == 0x7f {
			return fmt.Errorf("control or space byte %#02x at offset %d", key[i], i)
		}
	}
	return nil
}

// own is the index of key's own server.
func (p *mcPool) own(key string) int {
	if p.ring != nil {
		return p.ring.pick(key)
	}
	return mcStandardIndex(key, len(p.servers))
}

// write runs fn on each of key's servers (its own and the next ones, in
// parallel when there are several) and returns the offset j of the first of
// them, in order, that answered, with its outcome as an error (nil = success).
// When none answered, it returns the key's own server's error.
func (p *mcPool) write(op, key string, fn func(j int, c *memcache.Client) error) (int, error) {
	first := p.own(key)
	kinds, causes := make([]error, p.replicas), make([]error, p.replicas)
	run := func(j int) {
		kinds[j], causes[j] = p.servers[(first+j)%len(p.servers)].do(func(c *memcache.Client) error { return fn(j, c) })
	}
	if p.replicas == 1 {
		run(0)
	} else {
		var wg sync.WaitGroup
		for j := range p.replicas {
			wg.Go(func() { run(j) })
		}
		wg.Wait()
	}
	for _, kind := range kinds {
		if !answered(kind) {
			p.stats.count(kind)
		}
	}
	for j, kind := range kinds {
		if answered(kind) {
			p.stats.count(kind)
			return j, p.err(op, key, (first+j)%len(p.servers), kind, causes[j])
		}
	}
	return 0, p.err(op, key, first, kinds[0], causes[0])
}

// err is the error of an outcome of kind on server i; nil when kind is nil.
func (p *mcPool) err(op, key string, i int, kind, cause error) error {
	if kind == nil {
		return nil
	}
	return &BackendError{Backend: "memcache", Op: op, Pool: p.name, Server: p.servers[i].addr, Key: key, Kind: kind, Err: cause}
}
