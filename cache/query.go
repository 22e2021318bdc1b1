package cache

import (
	"context"
	"fmt"
	"time"
)

// Store is where the MySQL query cache keeps results, as opaque bytes.
// Implementations are safe for concurrent use.
type Store interface {
	// Get returns the value of key and whether it was there.
	Get(ctx context.Context, key string) ([]byte, bool, error)
	// Set stores value under key for ttl (0 = until evicted).
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Del removes key; removing an absent key is not an error.
	Del(ctx context.Context, key string) error
}

// MemStore is a Store in this process: a sharded LRU of at most maxItems items.
type MemStore struct {
	lru *LRU[memItem]
	now func() time.Time
}

type memItem struct {
	value   []byte
	expires time.Time // zero = never
}

// NewMemStore returns a MemStore of at most maxItems items.
func NewMemStore(maxItems int) *MemStore {
	return &MemStore{lru: New[memItem](maxItems), now: time.Now}
}

// Get implements Store; an expired item is a miss.
func (s *MemStore) Get(_ context.Context, key string) ([]byte, bool, error) {
	it, ok := s.lru.Get(key)
	if !ok {
		return nil, false, nil
	}
	if !it.expires.IsZero() && s.now().After(it.expires) {
		s.lru.Del(key)
		return nil, false, nil
	}
	return it.value, true, nil
}

// Set implements Store.
func (s *MemStore) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	it := memItem{value: value}
	if ttl > 0 {
		it.expires = s.now().Add(ttl)
	}
	s.lru.Set(key, it)
	return nil
}

// Del implements Store.
func (s *MemStore) Del(_ context.Context, key string) error {
	s.lru.Del(key)
	return nil
}

// Len is the number of items held (expired ones included until touched).
func (s *MemStore) Len() int { return s.lru.Len() }

// RedisDoer runs one Redis command on the pool's server for args[0] (the key).
// pool.Redis implements it.
type RedisDoer interface {
	Do(ctx context.Context, pool, cmd string, args ...any) (any, error)
}

// RedisStore is a Store in a Redis pool. Values are stored as the bytes given
// and read back exactly (the original wrote Go's text form of a struct and
// could not read it back). Keys are prefixed with Prefix.
type RedisStore struct {
	Redis  RedisDoer
	Pool   string // the Redis pool (mysql.cache_store_redis_pool)
	Prefix string
}

// Get implements Store.
func (s *RedisStore) Get(ctx context.Context, key string) ([]byte, bool, error) {
	reply, err := s.Redis.Do(ctx, s.Pool, "GET", s.Prefix+key)
	if err != nil {
		return nil, false, fmt.Errorf("query cache redis %s: %w", s.Pool, err)
	}
	switch v := reply.(type) {
	case nil:
		return nil, false, nil
	case []byte:
		return v, true, nil
	case string:
		return []byte(v), true, nil
	}
	return nil, false, fmt.Errorf("query cache redis %s: GET answered %T", s.Pool, reply)
}

// Set implements Store.
func (s *RedisStore) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	var err error
	if ttl > 0 {
		_, err = s.Redis.Do(ctx, s.Pool, "SET", s.Prefix+key, value, "PX", ttl.Milliseconds())
	} else {
		_, err = s.Redis.Do(ctx, s.Pool, "SET", s.Prefix+key, value)
	}
	if err != nil {
		return fmt.Errorf("query cache redis %s: %w", s.Pool, err)
	}
	return nil
}

// Del implements Store.
func (s *RedisStore) Del(ctx context.Context, key string) error {
	if _, err := s.Redis.Do(ctx, s.Pool, "DEL", s.Prefix+key); err != nil {
		return fmt.Errorf("query cache redis %s: %w", s.Pool, err)
	}
	return nil
}
