package cache

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// DefaultLeaseTTL is how long a RedisStore lease lives when RedisStoreConfig
// leaves it zero: twice mysql.query_timeout's default of 60 s, so a lease
// outlives the SELECT it covers.
const DefaultLeaseTTL = 2 * time.Minute

// RedisDoer runs one command on the server of pool that key hashes to,
// exempt from the client deny list. pool.Redis implements it.
type RedisDoer interface {
	DoKey(ctx context.Context, pool, key, cmd string, args ...any) (any, error)
}

// RedisStoreConfig configures a RedisStore.
type RedisStoreConfig struct {
	// Pool is the Redis pool (mysql.cache_store_redis_pool).
	Pool string
	// Prefix is put before a key to make the Redis key of its value, e.g. "fae:qc:".
	Prefix string
	// LeasePrefix is put before a key to make the Redis key of its lease, e.g.
	// "fae:qcl:". Neither prefix may begin with the other, so that no value key
	// is ever some other key's lease key.
	LeasePrefix string
	// MaxEntryBytes is the item cap: a key and value whose length plus a
	// MemStore's per-entry overhead exceed it are not stored, as in a MemStore
	// whose MaxEntryBytes it is (use MaxEntryBytes(maxItems, maxBytes) of the
	// mem store's keys). 0 = no cap.
	MaxEntryBytes int64
	// LeaseTTL bounds the life of a lease not yet filled, in Redis; a Fill after
	// it does not store. Zero means DefaultLeaseTTL.
	LeaseTTL time.Duration
}

// RedisStore is a Store in a Redis pool, shared by every faed using that pool.
// Values are stored as the bytes given and read back exactly (the original wrote
// Go's text form of a struct and could not read it back), at Prefix+key.
//
// A lease is a random 64-bit token at LeasePrefix+key, set by Lease unless one is
// already there (then shared), with a TTL of LeaseTTL. Fill is one script that
// stores the value only if the token is still the lease's, and removes it; Del
// removes the value and the token in one DEL. Every command of a key is routed
// by its value key, so both of its Redis keys live on one server. A token that
// expires or is evicted by Redis only makes its Fill refuse: losing state never
// lets a stale result in (a version counter would start again at zero).
// The scripts need Redis ≥ 2.6.12 and no Redis Cluster (the keys of an entry may
// be in different slots). Safe for concurrent use.
type RedisStore struct {
	cfg   RedisStoreConfig
	redis RedisDoer
	// overhead is the MemStore's per-entry overhead, charged for the item cap.
	overhead int64
	stats    storeStats
}

// NewRedisStore returns a RedisStore over r with cfg; it fails if the prefixes
// overlap (one begins with the other) or MaxEntryBytes or LeaseTTL is negative.
func NewRedisStore(r RedisDoer, cfg RedisStoreConfig) (*RedisStore, error) {
	switch {
	case strings.HasPrefix(cfg.Prefix, cfg.LeasePrefix) || strings.HasPrefix(cfg.LeasePrefix, cfg.Prefix):
		return nil, fmt.Errorf("query cache redis: prefixes %q and %q overlap: a value key could be a lease key", cfg.Prefix, cfg.LeasePrefix)
	case cfg.MaxEntryBytes < 0 || cfg.LeaseTTL < 0:
		return nil, fmt.Errorf("query cache redis: MaxEntryBytes %d and LeaseTTL %s must not be negative", cfg.MaxEntryBytes, cfg.LeaseTTL)
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	return &RedisStore{cfg: cfg, redis: r, overhead: overheadOf[memItem]()}, nil
}

func (s *RedisStore) do(ctx context.Context, key, cmd string, args ...any) (any, error) {
	reply, err := s.redis.DoKey(ctx, s.cfg.Pool, s.cfg.Prefix+key, cmd, args...)
	if err != nil {
		return nil, fmt.Errorf("query cache redis %s: %w", s.cfg.Pool, err)
	}
	return reply, nil
}

// Get implements Store.
func (s *RedisStore) Get(ctx context.Context, key string) ([]byte, bool, error) {
	reply, err := s.do(ctx, key, "GET", s.cfg.Prefix+key)
	if err != nil {
		return nil, false, err
	}
	switch v := reply.(type) {
	case nil:
		return nil, false, nil
	case []byte:
		return v, true, nil
	case string:
		return []byte(v), true, nil
	}
	return nil, false, fmt.Errorf("query cache redis %s: GET answered %T", s.cfg.Pool, reply)
}

// leaseScript returns the token at KEYS[1], or sets it to ARGV[1] for ARGV[2] ms.
const leaseScript = `local t = redis.call('GET', KEYS[1])
if t then return t end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]`

// Lease implements Store.
func (s *RedisStore) Lease(ctx context.Context, key string) (Lease, error) {
	token := rand.Uint64() | 1 // never 0, the zero Lease
	reply, err := s.do(ctx, key, "EVAL", leaseScript, 1, s.cfg.LeasePrefix+key,
		strconv.FormatUint(token, 10), s.cfg.LeaseTTL.Milliseconds())
	if err != nil {
		return Lease{}, err
	}
	b, _ := reply.([]byte)
	id, perr := strconv.ParseUint(string(b), 10, 64)
	if perr != nil || id == 0 {
		return Lease{}, fmt.Errorf("query cache redis %s: lease of %q is %q, not a token", s.cfg.Pool, key, b)
	}
	return Lease{id: id}, nil
}

// fillScript stores ARGV[2] at KEYS[1] (for ARGV[3] ms unless "0") and removes
// the lease KEYS[2] if the lease is ARGV[1]; it returns 1 if it stored, else 0.
const fillScript = `if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
if ARGV[3] == '0' then redis.call('SET', KEYS[1], ARGV[2])
else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1`

// Fill implements Store. A ttl under a millisecond counts as one.
func (s *RedisStore) Fill(ctx context.Context, key string, value []byte, ttl time.Duration, l Lease) (bool, error) {
	if overCap(key, value, s.overhead, s.cfg.MaxEntryBytes) {
		s.stats.tooLarge.Add(1)
		return false, nil
	}
	if l.id == 0 {
		s.stats.count(false)
		return false, nil
	}
	var ms int64
	if ttl > 0 {
		ms = max(ttl.Milliseconds(), 1)
	}
	reply, err := s.do(ctx, key, "EVAL", fillScript, 2, s.cfg.Prefix+key, s.cfg.LeasePrefix+key,
		strconv.FormatUint(l.id, 10), value, ms)
	if err != nil {
		return false, err
	}
	n, ok := reply.(int64)
	if !ok {
		return false, fmt.Errorf("query cache redis %s: fill answered %T", s.cfg.Pool, reply)
	}
	s.stats.count(n == 1)
	return n == 1, nil
}

// Del implements Store: one DEL of the value and the lease.
func (s *RedisStore) Del(ctx context.Context, key string) error {
	_, err := s.do(ctx, key, "DEL", s.cfg.Prefix+key, s.cfg.LeasePrefix+key)
	return err
}

// Stats implements Store.
func (s *RedisStore) Stats() StoreStats { return s.stats.get() }
