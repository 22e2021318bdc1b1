package servant

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unsafe"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/pool"
)

var errRedisOff = &NotConfiguredError{Name: "redis", Key: "servants.redis"}

// ErrKeyNotExists: rd_call GET of a missing key (the original's "key not
// exists"). errors.Is(err, pool.KindMiss) holds for it too.
var ErrKeyNotExists error = keyNotExists{}

type keyNotExists struct{}

func (keyNotExists) Error() string { return "key not exists" }
func (keyNotExists) Unwrap() error { return pool.KindMiss }

// RdCall runs Redis command cmd with keysAndArgs on the server of pool that
// keysAndArgs[0] hashes to (pool.Redis.Do, which lists the commands it
// refuses), and returns the reply as a string: bulk → its bytes, status → its
// text, integer → decimal, nil → "", array → a JSON array of strings (nested
// arrays as nested JSON arrays, integers as decimal strings, nil elements as
// ""). Errors: redis not configured, GET of a missing key ("key not exists",
// errors.Is ErrKeyNotExists and pool.KindMiss), and the *pool.Error of Do, its
// kind matched with errors.Is (unknown pool, bad argument, refused — denied,
// state-changing or blocking too long, or Redis's error reply —, busy, server
// failure, timeout, canceled, circuit open, too large).
//
// Only a blocking command (pool.RedisBlocks) watches its client while it
// waits (runBackend): any other is answered as soon as Redis has run it, so
// a client that leaves is not worth the watch's timer (about 0.9 µs of a
// pipelined GET's CPU, pprof of make bench scenario 5), and an abandoned
// command would have run anyway.
func (s *FunServant) RdCall(ctx context.Context, c *rpc.Context, cmd, poolName string, keysAndArgs []string) (string, error) {
	return s.rdCallIn(ctx, c, cmd, poolName, keysAndArgs, nil)
}

// rdCallIn is RdCall, the arguments boxed for redigo in args when it can
// hold them all (else in a slice of their own).
func (s *FunServant) rdCallIn(ctx context.Context, c *rpc.Context, cmd, poolName string, keysAndArgs []string, args []any) (string, error) {
	trace := func() string { return targs("cmd", cmd, "pool", poolName, "args", keysAndArgs) }
	if !pool.RedisBlocks(cmd) {
		return run(s, ctx, "rd.call", c, true, trace, func(g *generation) (string, error) {
			return s.rdCall(ctx, g, cmd, poolName, keysAndArgs, args)
		})
	}
	return runBackend(s, "rd.call", ctx, c, trace, func(ctx context.Context, g *generation) (string, error) {
		return s.rdCall(ctx, g, cmd, poolName, keysAndArgs, args)
	})
}

// rdCall is RdCall's body, in generation g.
func (s *FunServant) rdCall(ctx context.Context, g *generation, cmd, poolName string, keysAndArgs []string, args []any) (string, error) {
	if g.rd == nil {
		return "", errRedisOff
	}
	if g.modes.Load() != nil {
		if err := s.modeRefusal(g, "redis", poolName, pool.RedisOpName(cmd), pool.RedisWrites(cmd)); err != nil {
			return "", err
		}
	}
	if args = args[:0]; cap(args) < len(keysAndArgs) {
		args = make([]any, 0, len(keysAndArgs))
	}
	args = args[:len(keysAndArgs)]
	for i, a := range keysAndArgs {
		args[i] = a
	}
	reply, err := g.rd.Do(ctx, poolName, cmd, args...)
	if err != nil {
		return "", err
	}
	if reply == nil && strings.EqualFold(cmd, "GET") {
		return "", fmt.Errorf("redis GET %q: pool %q: %w", keysAndArgs[0], poolName, ErrKeyNotExists)
	}
	return redisReplyString(reply)
}

// redisReplyString renders a redigo reply as rd_call returns it.
func redisReplyString(reply any) (string, error) {
	switch v := reply.(type) {
	case nil:
		return "", nil
	case []byte:
		// redigo reads each bulk reply into a slice of its own (make, then
		// io.ReadFull: conn.readReply), which nothing writes to after: the
		// string may share it.
		if len(v) == 0 {
			return "", nil
		}
		return unsafe.String(&v[0], len(v)), nil
	case string:
		return v, nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case []any:
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false) // the values' own bytes, not \u003c for <
		if err := enc.Encode(redisJSON(v)); err != nil {
			return "", fmt.Errorf("redis: rendering an array reply as JSON: %w", err)
		}
		return strings.TrimSuffix(b.String(), "\n"), nil
	}
	return fmt.Sprint(reply), nil
}

// redisJSON turns an array reply into JSON values: strings, and arrays of them.
// Bytes that are not UTF-8 become U+FFFD, as JSON strings must be UTF-8.
func redisJSON(a []any) []any {
	out := make([]any, len(a))
	for i, e := range a {
		switch e := e.(type) {
		case []any:
			out[i] = redisJSON(e)
		case error: // an error reply inside an array (EXEC)
			out[i] = e.Error()
		default:
			out[i], _ = redisReplyString(e)
		}
	}
	return out
}
