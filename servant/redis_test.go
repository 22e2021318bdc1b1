package servant

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
	"github.com/fae-go/fae/pool"
)

func TestRedisReplyString(t *testing.T) {
	for _, c := range []struct {
		reply any
		want  string
	}{
		{nil, ""},
		{[]byte("a\x00b"), "a\x00b"},
		{"OK", "OK"},
		{int64(-12), "-12"},
		{[]any{}, "[]"},
		{[]any{[]byte("a"), nil, int64(3), "QUEUED", []byte("<&>")}, `["a","","3","QUEUED","<&>"]`},
		{[]any{[]any{[]byte("id"), []any{[]byte("f"), []byte("v")}}, []any{}}, `[["id",["f","v"]],[]]`},
		{[]any{errors.New("ERR in EXEC")}, `["ERR in EXEC"]`},
	} {
		got, err := redisReplyString(c.reply)
		if err != nil || got != c.want {
			t.Errorf("%#v → %q, %v; want %q", c.reply, got, err, c.want)
		}
	}
}

// A missing key is a miss for whoever classifies outcomes by kind, and keeps
// the original's text.
func TestRedisKeyNotExistsIsMiss(t *testing.T) {
	err := fmt.Errorf("redis GET %q: pool %q: %w", "k", "p", ErrKeyNotExists)
	if !errors.Is(err, ErrKeyNotExists) || !errors.Is(err, pool.KindMiss) || pool.KindOf(err) != pool.KindMiss {
		t.Errorf("%v: Is ErrKeyNotExists %v, Is KindMiss %v, KindOf %v", err, errors.Is(err, ErrKeyNotExists),
			errors.Is(err, pool.KindMiss), pool.KindOf(err))
	}
	if err.Error() != `redis GET "k": pool "p": key not exists` {
		t.Errorf("text %q", err)
	}
}

// TestRdCallCancelledCaller: a command that does not block is run and
// answered whatever its caller's ctx does (nothing ends a session's ctx
// during a call that is not watched; a JSON API caller that gave up gets
// its answer by io_timeout at the latest), on the pipelined path (its wait
// on its reply alone) as on the pooled one; a blocking command still ends
// with its caller's ctx.
func TestRdCallCancelledCaller(t *testing.T) {
	rds := testenv.StartRedis(t)
	for _, pipeline := range []bool{true, false} {
		cfg := baseConfig()
		var rd pool.RedisConfig
		rd.SetDefaults()
		rd.Pipeline = pipeline
		var rs pool.RedisServerConfig
		rs.SetDefaults()
		rs.Addr = rds.Addr()
		rd.Pools = []pool.RedisPoolConfig{{Name: "default", Servers: []pool.RedisServerConfig{rs}}}
		cfg.Redis = &rd
		s := newTestServant(t, cfg, Options{})
		c := validCtx()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if r, err := s.RdCall(ctx, c, "SET", "default", []string{"cancelled:k", "v"}); err != nil || r != "OK" {
			t.Fatalf("pipeline %v: SET with a cancelled ctx: %q, %v; want it run", pipeline, r, err)
		}
		if r, err := s.RdCall(ctx, c, "GET", "default", []string{"cancelled:k"}); err != nil || r != "v" {
			t.Fatalf("pipeline %v: GET with a cancelled ctx: %q, %v; want v", pipeline, r, err)
		}
		start := time.Now()
		if _, err := s.RdCall(ctx, c, "BLPOP", "default", []string{"cancelled:list", "2"}); !errors.Is(err, pool.KindCanceled) || time.Since(start) > time.Second {
			t.Fatalf("pipeline %v: BLPOP with a cancelled ctx: %v after %s; want canceled at once", pipeline, err, time.Since(start))
		}
	}
}
