package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/fae-go/fae/idl/fun/rpc"
)

// The bits of -x, as the original stress tool numbered them (ORIGINAL-FAE.md §8.3).
const (
	XNoop     = 1   // noop(1)
	XPing     = 2   // ping
	XIDNext   = 4   // id_next
	XLcache   = 8   // lc_set then lc_get of one key
	XMemcache = 16  // mc_set then mc_get of one key
	XMongo    = 32  // mg_upsert then mg_find_one of one document
	XMySQL    = 64  // my_query with the cacheKey, then without
	XRedis    = 128 // rd_call SET then GET of one key
	XAll      = 255
)

// DefaultX is the original's default mix: ping + id_next + lcache + mysql.
const DefaultX = XPing | XIDNext | XLcache | XMySQL

// keySpace is how many distinct keys the key-value calls spread over, so
// that the caches they fill stay bounded (about keySpace × -payload bytes
// per backend).
const keySpace = 10000

// Targets names what the backend calls of the mix address. The defaults
// (DefaultTargets) match faed's sample config (etc/faed.cf.sample: memcache,
// redis and mongodb pools "default") and the original tool's MySQL call.
type Targets struct {
	McPool      string   // memcache pool of mc_set/mc_get
	RdPool      string   // redis pool of rd_call
	MgPool      string   // mongodb pool
	MgTable     string   // mongodb collection
	MyPool      string   // my_query pool
	MyTable     string   // my_query table (picks the shard of a sharded pool)
	MyHint      int64    // my_query hintId (the entity id of a sharded pool; 0 for a global pool)
	MySQL       string   // my_query statement
	MyArgs      []string // its ? arguments
	MyCacheKey  string   // the cacheKey of the first my_query of a round
	Expiration  int32    // mc_set expiration, seconds (0 = never)
	KeyPrefix   string   // prefix of the keys of lc, mc, rd and mg calls
	PayloadSize int      // bytes of the values written (lc_set, mc_set, SET, the mongo document's field)
}

// DefaultTargets are the flags' defaults: the original tool's my_query
// (UserShard/UserInfo, hintId 1, uid 1, cacheKey user:1) and the sample
// config's pool names.
func DefaultTargets() Targets {
	return Targets{McPool: "default", RdPool: "default", MgPool: "default", MgTable: "stress",
		MyPool: "UserShard", MyTable: "UserInfo", MyHint: 1, MySQL: "SELECT * FROM UserInfo WHERE uid=?",
		MyArgs: []string{"1"}, MyCacheKey: "user:1", KeyPrefix: "stress:", PayloadSize: 100}
}

// Mix is the calls of one round, chosen by the -x bitmask, with their
// arguments. It is safe for concurrent use (it is only read).
type Mix struct {
	X       int
	T       Targets
	payload []byte
}

// NewMix is the mix of the bits x (1..255). Errors: bits outside 0..255, none set.
func NewMix(x int, t Targets) (*Mix, error) {
	if x <= 0 || x > XAll {
		return nil, fmt.Errorf("-x must be 1..%d (1 noop, 2 ping, 4 id_next, 8 lcache, 16 memcache, 32 mongo, 64 mysql, 128 redis), got %d", XAll, x)
	}
	p := make([]byte, t.PayloadSize)
	for i := range p {
		p[i] = 'a' + byte(i%26)
	}
	return &Mix{X: x, T: t, payload: p}, nil
}

// CallsPerRound is how many calls one round of the mix makes.
func (m *Mix) CallsPerRound() int {
	n := 0
	for _, b := range []struct{ bit, calls int }{{XNoop, 1}, {XPing, 1}, {XIDNext, 1}, {XLcache, 2},
		{XMemcache, 2}, {XMongo, 2}, {XMySQL, 2}, {XRedis, 2}} {
		if m.X&b.bit != 0 {
			n += b.calls
		}
	}
	return n
}

// Names lists the calls of one round in order, e.g. "ping id_next".
func (m *Mix) Names() string {
	var s []string
	for _, b := range []struct {
		bit   int
		names string
	}{{XNoop, "noop"}, {XPing, "ping"}, {XIDNext, "id_next"}, {XLcache, "lc_set lc_get"},
		{XMemcache, "mc_set mc_get"}, {XMongo, "mg_upsert mg_find_one"}, {XMySQL, "my_query(cacheKey) my_query"},
		{XRedis, "rd_call(SET) rd_call(GET)"}} {
		if m.X&b.bit != 0 {
			s = append(s, b.names)
		}
	}
	return strings.Join(s, " ")
}

// call is one call of a round: its name (the IDL method's) and a function
// that makes it on c with the round's key and returns faed's error, if any.
type call struct {
	name string
	do   func(ctx context.Context, c *rpc.FunServantClient, key string) error
}

// calls are the calls of one round in order.
func (m *Mix) calls() []call {
	t := m.T
	var out []call
	add := func(bit int, cs ...call) {
		if m.X&bit != 0 {
			out = append(out, cs...)
		}
	}
	add(XNoop, call{"noop", func(ctx context.Context, c *rpc.FunServantClient, _ string) error {
		_, err := c.Noop(ctx, 1)
		return err
	}})
	add(XPing, call{"ping", func(ctx context.Context, c *rpc.FunServantClient, _ string) error {
		_, err := c.Ping(ctx, newContext())
		return err
	}})
	add(XIDNext, call{"id_next", func(ctx context.Context, c *rpc.FunServantClient, _ string) error {
		_, err := c.IDNext(ctx, newContext())
		return err
	}})
	add(XLcache, call{"lc_set", func(ctx context.Context, c *rpc.FunServantClient, key string) error {
		_, err := c.LcSet(ctx, newContext(), key, m.payload)
		return err
	}}, call{"lc_get", func(ctx context.Context, c *rpc.FunServantClient, key string) error {
		_, err := c.LcGet(ctx, newContext(), key)
		return err
	}})
	add(XMemcache, call{"mc_set", func(ctx context.Context, c *rpc.FunServantClient, key string) error {
		_, err := c.McSet(ctx, newContext(), t.McPool, key, &rpc.TMemcacheData{Data: m.payload}, t.Expiration)
		return err
	}}, call{"mc_get", func(ctx context.Context, c *rpc.FunServantClient, key string) error {
		_, err := c.McGet(ctx, newContext(), t.McPool, key)
		return err
	}})
	add(XMongo, m.mongoCalls()...)
	add(XMySQL, call{"my_query with cacheKey", func(ctx context.Context, c *rpc.FunServantClient, _ string) error {
		_, err := c.MyQuery(ctx, newContext(), t.MyPool, t.MyTable, t.MyHint, t.MySQL, t.MyArgs, t.MyCacheKey)
		return err
	}}, call{"my_query", func(ctx context.Context, c *rpc.FunServantClient, _ string) error {
		_, err := c.MyQuery(ctx, newContext(), t.MyPool, t.MyTable, t.MyHint, t.MySQL, t.MyArgs, "")
		return err
	}})
	add(XRedis, call{"rd_call SET", func(ctx context.Context, c *rpc.FunServantClient, key string) error {
		_, err := c.RdCall(ctx, newContext(), "SET", t.RdPool, []string{key, string(m.payload)})
		return err
	}}, call{"rd_call GET", func(ctx context.Context, c *rpc.FunServantClient, key string) error {
		_, err := c.RdCall(ctx, newContext(), "GET", t.RdPool, []string{key})
		return err
	}})
	return out
}

// mongoCalls upsert the document {_id: key, v: payload} and read it back.
func (m *Mix) mongoCalls() []call {
	t := m.T
	change, _ := bson.Marshal(bson.D{{Key: "$set", Value: bson.D{{Key: "v", Value: m.payload}}}})
	fields, _ := bson.Marshal(bson.D{})
	query := func(key string) []byte {
		q, _ := bson.Marshal(bson.D{{Key: "_id", Value: key}})
		return q
	}
	return []call{{"mg_upsert", func(ctx context.Context, c *rpc.FunServantClient, key string) error {
		_, err := c.MgUpsert(ctx, newContext(), t.MgPool, t.MgTable, 0, query(key), change)
		return err
	}}, {"mg_find_one", func(ctx context.Context, c *rpc.FunServantClient, key string) error {
		_, err := c.MgFindOne(ctx, newContext(), t.MgPool, t.MgTable, 0, query(key), fields)
		return err
	}}}
}

// randomKey is the key of one round: -key-prefix and one of keySpace numbers.
func (m *Mix) randomKey() string {
	return m.T.KeyPrefix + strconv.Itoa(rand.IntN(keySpace))
}

var ridSeq atomic.Int64

func init() { ridSeq.Store(time.Now().UnixNano()) }

// newContext is the Context of one call: a fresh rid, reason "stress", as
// the original tool's.
func newContext() *rpc.Context {
	return &rpc.Context{Rid: ridSeq.Add(1), Reason: "stress"}
}
