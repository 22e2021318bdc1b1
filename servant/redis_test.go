package servant

import (
	"errors"
	"fmt"
	"testing"

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
