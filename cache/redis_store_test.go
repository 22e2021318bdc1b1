package cache

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/fae-go/fae/internal/testenv"
)

// The real Redis servers of contrib/test-services; a missing one fails the test.
var redisAddrs = []string{testenv.RedisAddr, testenv.Redis2Addr}

// redigoDoer is a RedisDoer over redigo for these tests: it routes a command by
// crc32(key) over two real servers, as pool.Redis routes over its ring, so a
// store that routed one entry's commands by different keys would split them
// over two servers and fail.
type redigoDoer struct {
	pools []*redis.Pool
	used  []atomic.Int64 // commands per server
	pool  string         // the pool name every call must carry
}

func newRedigoDoer(t *testing.T) *redigoDoer {
	d := &redigoDoer{used: make([]atomic.Int64, len(redisAddrs)), pool: "qc"}
	for _, addr := range redisAddrs {
		p := &redis.Pool{MaxIdle: 4, Dial: func() (redis.Conn, error) {
			return redis.Dial("tcp", addr, redis.DialConnectTimeout(time.Second), redis.DialReadTimeout(5*time.Second))
		}}
		if _, err := redis.DoContext(p.Get(), context.Background(), "PING"); err != nil {
			t.Fatalf("Redis at %s (bash contrib/test-services start): %v", addr, err)
		}
		d.pools = append(d.pools, p)
		t.Cleanup(func() { p.Close() })
	}
	return d
}

var errUnknownPool = errors.New("unknown pool")

func (d *redigoDoer) server(key string) int {
	return int(crc32.ChecksumIEEE([]byte(key)) % uint32(len(d.pools)))
}

func (d *redigoDoer) DoKey(ctx context.Context, pool, key, cmd string, args ...any) (any, error) {
	if pool != d.pool {
		return nil, errUnknownPool
	}
	i := d.server(key)
	d.used[i].Add(1)
	return d.on(ctx, i, cmd, args...)
}

// on runs a command on server i directly.
func (d *redigoDoer) on(ctx context.Context, i int, cmd string, args ...any) (any, error) {
	c, err := d.pools[i].GetContext(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return redis.DoContext(c, ctx, cmd, args...)
}

// newTestRedisStore returns a RedisStore over d with prefixes of this test
// only; its keys are removed when the test ends.
func newTestRedisStore(t *testing.T, d *redigoDoer, cfg RedisStoreConfig) *RedisStore {
	run := fmt.Sprintf("faetest:%d:%s", time.Now().UnixNano(), strings.ReplaceAll(t.Name(), " ", "_"))
	cfg.Pool, cfg.Prefix, cfg.LeasePrefix = d.pool, run+":qc:", run+":ql:"
	s, err := NewRedisStore(d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := range d.pools {
			keys, _ := redis.Strings(d.on(context.Background(), i, "KEYS", run+":*"))
			for _, k := range keys {
				d.on(context.Background(), i, "DEL", k)
			}
		}
	})
	return s
}

func TestRedisStoreFillProtocol(t *testing.T) {
	d := newRedigoDoer(t)
	testFillProtocol(t, func(t *testing.T) Store { return newTestRedisStore(t, d, RedisStoreConfig{}) })
	for i := range d.used {
		if d.used[i].Load() == 0 {
			t.Errorf("no command went to %s: the routing was not exercised", redisAddrs[i])
		}
	}
}

// TestRedisStoreKeysOnOneServer: both Redis keys of an entry are on the server
// its value key routes to.
func TestRedisStoreKeysOnOneServer(t *testing.T) {
	d := newRedigoDoer(t)
	s := newTestRedisStore(t, d, RedisStoreConfig{})
	ctx := context.Background()
	for i := range 20 {
		k := fmt.Sprint("key", i)
		l, err := s.Lease(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		home := d.server(s.cfg.Prefix + k)
		if n, _ := redis.Int(d.on(ctx, home, "EXISTS", s.cfg.LeasePrefix+k)); n != 1 {
			t.Fatalf("%s: lease not on %s", k, redisAddrs[home])
		}
		if ok, err := s.Fill(ctx, k, []byte(k), 0, l); !ok || err != nil {
			t.Fatalf("Fill %s: %v %v", k, ok, err)
		}
		if v, _ := redis.String(d.on(ctx, home, "GET", s.cfg.Prefix+k)); v != k {
			t.Fatalf("%s: value on %s is %q", k, redisAddrs[home], v)
		}
		if n, _ := redis.Int(d.on(ctx, home, "EXISTS", s.cfg.LeasePrefix+k)); n != 0 {
			t.Fatalf("%s: lease left after its Fill", k)
		}
	}
}

func TestRedisStoreTTL(t *testing.T) {
	d := newRedigoDoer(t)
	s := newTestRedisStore(t, d, RedisStoreConfig{LeaseTTL: 300 * time.Millisecond})
	ctx := context.Background()
	pttl := func(key string) int64 {
		n, err := redis.Int64(d.on(ctx, d.server(s.cfg.Prefix+"k"), "PTTL", key))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	l, _ := s.Lease(ctx, "k")
	if n := pttl(s.cfg.LeasePrefix + "k"); n <= 0 || n > 300 {
		t.Fatalf("lease PTTL %d ms, want (0, 300]", n)
	}
	testenv.Eventually(t, time.Second, "the lease's TTL to pass", func() bool { return pttl(s.cfg.LeasePrefix+"k") == -2 })
	if ok, err := s.Fill(ctx, "k", []byte("late"), 0, l); ok || err != nil {
		t.Fatalf("Fill after the lease expired = %v, %v; want false", ok, err)
	}
	l, _ = s.Lease(ctx, "k")
	if ok, _ := s.Fill(ctx, "k", []byte("v"), 200*time.Millisecond, l); !ok {
		t.Fatal("Fill refused")
	}
	if n := pttl(s.cfg.Prefix + "k"); n <= 0 || n > 200 {
		t.Fatalf("value PTTL %d ms, want (0, 200]", n)
	}
	testenv.Eventually(t, time.Second, "the value's TTL to pass", func() bool { _, ok, _ := s.Get(ctx, "k"); return !ok })
	l, _ = s.Lease(ctx, "k")
	s.Fill(ctx, "k", []byte("v"), 0, l)
	if n := pttl(s.cfg.Prefix + "k"); n != -1 {
		t.Fatalf("value PTTL %d ms with ttl 0, want -1 (none)", n)
	}
}

func TestRedisStoreItemCap(t *testing.T) {
	d := newRedigoDoer(t)
	const maxBytes = 32 * 4096
	limit := MaxEntryBytes(1000, maxBytes)
	s := newTestRedisStore(t, d, RedisStoreConfig{MaxEntryBytes: limit})
	mem := NewMemStore(1000, maxBytes)
	ctx := context.Background()
	over := make([]byte, limit-1-overheadOf[memItem]()+1) // one byte over with key "k"
	for _, st := range []Store{s, mem} {
		l, _ := st.Lease(ctx, "k")
		if ok, err := st.Fill(ctx, "k", over, 0, l); ok || err != nil {
			t.Fatalf("%T: Fill over the cap = %v, %v", st, ok, err)
		}
		if _, ok, _ := st.Get(ctx, "k"); ok || st.Stats().TooLarge != 1 {
			t.Fatalf("%T: after a fill over the cap: found %v, stats %+v", st, ok, st.Stats())
		}
		if ok, _ := st.Fill(ctx, "k", over[1:], 0, l); !ok {
			t.Fatalf("%T: Fill at exactly the cap refused", st)
		}
	}
}

func TestRedisStoreConfig(t *testing.T) {
	d := newRedigoDoer(t)
	for _, c := range []RedisStoreConfig{{Prefix: "fae:qc:", LeasePrefix: "fae:qc:l:"}, {Prefix: "a", LeasePrefix: "a"},
		{Prefix: "x", LeasePrefix: "y", MaxEntryBytes: -1}} {
		if _, err := NewRedisStore(d, c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// TestRedisStoreErrors: the doer's errors come back wrapped, naming the pool,
// from every method.
func TestRedisStoreErrors(t *testing.T) {
	d := newRedigoDoer(t)
	s := newTestRedisStore(t, d, RedisStoreConfig{})
	s.cfg.Pool = "nosuch"
	ctx := context.Background()
	_, _, errGet := s.Get(ctx, "k")
	_, errLease := s.Lease(ctx, "k")
	_, errFill := s.Fill(ctx, "k", []byte("v"), 0, Lease{id: 1})
	errDel := s.Del(ctx, "k")
	for _, err := range []error{errGet, errLease, errFill, errDel} {
		if !errors.Is(err, errUnknownPool) || !strings.HasPrefix(err.Error(), "query cache redis nosuch: ") {
			t.Errorf("error %v: want errUnknownPool, prefixed with the pool", err)
		}
	}
}
