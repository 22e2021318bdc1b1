package pool

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

// Memcache is the memcache cluster of servants.memcache: named pools of
// memcached servers. A pool maps a key only over its own servers, in
// hash_strategy (standard = PHP memcache's, consistent = libmemcached's ketama,
// both as PHP computes them, so items are shared with PHP), and writes it to
// replica_num of them. Each server has its own gomemcache client, a cap of
// max_conns_per_server open connections and a Breaker whose health check is
// memcached's "version" on a connection of its own. With coalesce (the
// default), concurrent gets of one server share round trips, one multi-get
// each (memcache_batch.go). Safe for concurrent use.
//
// Every error is a *Error (Backend "memcache", Op "get", "set", "add",
// "delete", "incr" or "decr", with the Key, the Pool and the Server asked)
// of one of these kinds, which errors.Is matches:
//   - KindMiss: get, incr or decr of an absent key (cause "cache miss");
//     Delete answers false instead, Add of an existing key false;
//   - KindBadArgument: the key is empty, over 250 bytes or has a control or
//     space byte (cause "invalid key: …"); no server asked;
//   - KindUnknownPool: the pool is not in servants.memcache.servers;
//   - KindBusy: max_conns_per_server connections stayed busy for timeout (a
//     *WaitTimeoutError), or max_waiting_calls calls were already waiting
//     for one (refused at once, a *WaitLimitError);
//   - KindServerFailure: dialling (cause *DialError), writing or reading failed;
//   - KindTimeout: no answer within timeout (a connect timeout: cause *DialError);
//   - KindBreakerOpen: the server's breaker refused the call ("circuit open");
//   - KindRefused: memcached answered with an error reply (CLIENT_ERROR,
//     SERVER_ERROR such as "object too large for cache"), its text in the
//     cause; for an increment of a non-numeric value the cause wraps ErrNotNumeric;
//   - KindTooLarge: a get of an item over Limits.MaxReplyBytes;
//   - KindClosed: the cluster was closed.
//
// Every operation on a server is reported once to the Observer (a replicated
// write: once per server), with Name the Op above; refusals before any server
// is asked are reported with Server "" (and Pool "" for an unknown pool).
type Memcache struct {
	pools  map[string]*mcPool // read-only after NewMemcache
	obs    Observer
	closed atomic.Bool
}

// mcPool is one pool: its servers in config order and their key mapping.
type mcPool struct {
	name     string
	servers  []*mcServer
	ring     *ketamaRing // hash_strategy consistent; nil = standard
	replicas int         // servers written per key, 1..len(servers)
	obs      Observer
	maxReply int // Limits.MaxReplyBytes, 0 = none
}

// NewMemcache builds the pools of cfg, which must have passed Validate, and
// reports every operation to obs (nil = NopObserver). limits.MaxReplyBytes
// bounds the value a get returns. No connection is opened here: faed starts
// while memcached is down. Close releases the connections.
func NewMemcache(cfg MemcacheConfig, obs Observer, limits Limits) (*Memcache, error) {
	if cfg.HashStrategy != "standard" && cfg.HashStrategy != "consistent" {
		return nil, fmt.Errorf("memcache: hash_strategy %q: want standard or consistent", cfg.HashStrategy)
	}
	if obs == nil {
		obs = NopObserver{}
	}
	m := &Memcache{pools: map[string]*mcPool{}, obs: obs}
	ring := map[string][]ketamaServer{}
	for _, s := range cfg.Servers {
		p := m.pools[s.Pool]
		if p == nil {
			p = &mcPool{name: s.Pool, obs: obs, maxReply: limits.MaxReplyBytes}
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

// Close releases every connection of every server; operations after Close
// fail with KindClosed. Call it only when no operation is in flight. It
// always returns nil; calling it again does nothing.
func (m *Memcache) Close() error {
	if m.closed.Swap(true) {
		return nil
	}
	for _, p := range m.pools {
		for _, s := range p.servers {
			s.close()
		}
	}
	return nil
}

// Stats returns the figures of every server of every pool, sorted, and its
// breaker. gomemcache keeps no figure that can be read (its idle lists are
// private), so: Open counts the operations' connections dialled and not yet
// closed (a counting DialContext); InUse is the operations holding one of
// max_conns_per_server slots (one connection each, a dial in progress
// included; a round trip of coalesced gets holds one for all its gets); Idle
// is Open - InUse, at least 0; Waiting counts the calls waiting for a slot
// and the gets queued for the next round trip. The health check's own
// connection is not counted.
func (m *Memcache) Stats() []ServerStats {
	var out []ServerStats
	for _, p := range m.pools {
		for _, s := range p.servers {
			open, inUse := int(s.open.Load()), s.gate.inUse()
			st := serverStats("memcache", p.name, s.addr, open, max(open-inUse, 0), inUse, s.breaker)
			st.Waiting = s.gate.Waiting()
			if s.batch != nil {
				st.Waiting += s.batch.queued()
			}
			out = append(out, st)
		}
	}
	return sortStats(out)
}

// ServerOf returns the address (host:port) of the server key maps to in pool:
// the one written first and read first. Errors (*Error, Op "locate"):
// KindClosed, KindUnknownPool, KindBadArgument. No server is asked, so
// nothing is reported to the Observer.
func (m *Memcache) ServerOf(pool, key string) (string, error) {
	p, err := m.lookup("locate", pool, key)
	if err != nil {
		return "", err
	}
	return p.servers[p.own(key)].addr, nil
}

// Get returns the value and client flags of key in pool, from the first of the
// key's servers that answers. Errors: a *Error of KindMiss when the key is
// absent, KindTooLarge when its value is over Limits.MaxReplyBytes (memcached
// bounds an item by its own item size limit, -I, default 1 MiB, and the value
// is read in full before this check), and the other kinds of Memcache when no
// server answered (the key's own server's error).
func (m *Memcache) Get(pool, key string) (value []byte, flags uint32, err error) {
	p, err := m.pool("get", pool, key)
	if err != nil {
		return nil, 0, err
	}
	first := p.own(key)
	var firstErr error
	for j := 0; j < p.replicas; j++ {
		i := (first + j) % len(p.servers)
		it, kind, cause := p.get(i, key)
		if kind == KindOK {
			return it.Value, it.Flags, nil
		}
		e := p.err("get", key, i, kind, cause)
		if kind.Answered() {
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
// the first of the key's servers that answered stored it; when none answered
// it returns the key's own server's error (kinds as Memcache).
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
// on the first of its servers that answers. memcached's NOT_STORED answer is
// reported to the Observer as KindOK: the server answered.
func (m *Memcache) Add(pool, key string, value []byte, flags uint32, expiration int32) (bool, error) {
	p, err := m.pool("add", pool, key)
	if err != nil {
		return false, err
	}
	it := &memcache.Item{Key: key, Value: value, Flags: flags, Expiration: expiration}
	notStored := make([]bool, p.replicas)
	j, err := p.write("add", key, func(j int, c *memcache.Client) error {
		err := c.Add(it)
		if errors.Is(err, memcache.ErrNotStored) {
			notStored[j] = true
			return nil
		}
		return err
	})
	if err != nil {
		return false, err
	}
	return !notStored[j], nil
}

// Delete removes key from its servers: false (and no error) when the first of
// them that answers did not have it (reported to the Observer as KindMiss).
func (m *Memcache) Delete(pool, key string) (bool, error) {
	p, err := m.pool("delete", pool, key)
	if err != nil {
		return false, err
	}
	_, err = p.write("delete", key, func(_ int, c *memcache.Client) error { return c.Delete(key) })
	if errors.Is(err, KindMiss) {
		return false, nil
	}
	return err == nil, err
}

// Increment adds delta to the decimal value of key (memcached incr, Op
// "incr"), or subtracts -delta when delta < 0 (decr, Op "decr", which
// memcached clamps at 0), and returns the new value (memcached's unsigned
// 64-bit counter, as int64). Errors: KindMiss for an absent key, KindRefused
// wrapping ErrNotNumeric for a value that is not a decimal number, and the
// other kinds of Memcache.
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

// pool is lookup for operation op; a refusal is reported to the Observer,
// with a Duration of 0: it is refused before any I/O, by a map lookup
// (timing it cost every memcache call a clock read, some 70 ns on the bench
// machine, for the few that are refused).
func (m *Memcache) pool(op, pool, key string) (*mcPool, error) {
	p, err := m.lookup(op, pool, key)
	if err != nil {
		if p == nil {
			pool = "" // unknown pools are reported as ""
		}
		m.obs.Observe(Op{Backend: "memcache", Pool: pool, Name: op, Kind: err.Kind})
		return nil, err
	}
	return p, nil
}

// lookup returns the pool named pool after checking that m is open and key
// valid. On a refusal it returns the pool found (nil if none) and the *Error.
func (m *Memcache) lookup(op, pool, key string) (*mcPool, *Error) {
	p := m.pools[pool]
	fail := func(kind Kind, cause error) (*mcPool, *Error) {
		return p, &Error{Backend: "memcache", Op: op, Key: key, Pool: pool, Kind: kind, Err: cause}
	}
	switch {
	case m.closed.Load():
		return fail(KindClosed, nil)
	case p == nil:
		return fail(KindUnknownPool, errors.New("not in servants.memcache.servers"))
	}
	if err := mcCheckKey(key); err != nil {
		return fail(KindBadArgument, fmt.Errorf("invalid key: %w", err))
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
	kinds, causes := make([]Kind, p.replicas), make([]error, p.replicas)
	run := func(j int) {
		kinds[j], causes[j] = p.on((first+j)%len(p.servers), op, func(c *memcache.Client) error { return fn(j, c) })
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
	for j, kind := range kinds {
		if kind.Answered() {
			return j, p.err(op, key, (first+j)%len(p.servers), kind, causes[j])
		}
	}
	return 0, p.err(op, key, first, kinds[0], causes[0])
}

// on runs op on server i and reports it to the Observer as operation name.
func (p *mcPool) on(i int, name string, op func(*memcache.Client) error) (Kind, error) {
	start := time.Now()
	s := p.servers[i]
	kind, cause := s.do(op)
	p.obs.Observe(Op{Backend: "memcache", Pool: p.name, Server: s.addr, Name: name, Kind: kind, Duration: time.Since(start)})
	return kind, cause
}

// get runs a get of key on server i, batched with the concurrent ones
// (mcBatch) when coalesce is on, and reports it to the Observer as its own
// operation "get" with its own outcome.
func (p *mcPool) get(i int, key string) (*memcache.Item, Kind, error) {
	s := p.servers[i]
	if s.batch == nil {
		var it *memcache.Item
		kind, cause := p.on(i, "get", func(c *memcache.Client) (e error) {
			if it, e = c.Get(key); e == nil {
				e = p.checkSize(it)
			}
			return e
		})
		return it, kind, cause
	}
	start := time.Now()
	it, kind, cause := s.batch.get(key, start, p.maxReply)
	p.obs.Observe(Op{Backend: "memcache", Pool: p.name, Server: s.addr, Name: "get", Kind: kind, Duration: time.Since(start)})
	return it, kind, cause
}

// checkSize refuses an item whose value is over maxReply bytes.
func (p *mcPool) checkSize(it *memcache.Item) error {
	if p.maxReply > 0 && len(it.Value) > p.maxReply {
		return &mcTooLargeError{size: len(it.Value), limit: p.maxReply}
	}
	return nil
}

// mcTooLargeError is a value over rpc.max_reply_bytes (KindTooLarge).
type mcTooLargeError struct{ size, limit int }

func (e *mcTooLargeError) Error() string {
	return fmt.Sprintf("value of %d bytes, over max_reply_bytes %d", e.size, e.limit)
}

// err is the *Error of an outcome of kind on server i; nil for KindOK.
func (p *mcPool) err(op, key string, i int, kind Kind, cause error) error {
	if kind == KindOK {
		return nil
	}
	return &Error{Backend: "memcache", Op: op, Pool: p.name, Server: p.servers[i].addr, Key: key, Kind: kind, Err: cause}
}
