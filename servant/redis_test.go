package servant

import (
	"errors"
	"testing"
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
