package servant

import (
	"context"
	"strings"

	"github.com/fae-go/fae/idl/fun/rpc"
)

// my_query from the request's bytes. A my_query with a cacheKey is mostly a
// query cache hit (a PHP page reads the same rows again and again), and its
// arguments (a Context and six values, some 15 values in all) cost more to
// decode through the generated code than the hit costs to answer: 1.2 µs of
// the 3.6 µs a hit cost faed beyond a noop, and most of its allocations and
// garbage collection (pprof of make bench scenario 4 at c=64). A session
// speaking the binary protocol unframed has the request in its read buffer
// (engine.Unread), so myQueryProcessor reads the arguments from those bytes
// as they are: the strings are views of them, allocated only when the call
// needs them past the buffer's life (a miss, which goes to MySQL and may be
// watched: materialize). Anything the view does not read exactly as the
// generated code would (a field of another type, an unknown field, a length
// past the buffer or max_message_bytes, a negative one) leaves the request
// to the generated code, which reads or refuses it as before.

// myQueryView is my_query's arguments read from the request's bytes. Until
// materialize, its strings are views of the session's read buffer (see
// engine.Unread): valid only during the call and until the session reads
// again, so never kept and never used past a wait.
type myQueryView struct {
	ctxView
	pool, table, sql, cacheKey string
	hintID                     int64
	argvRaw                    []byte // the list's elements, argc strings of the binary protocol
	argc                       int
	hasArgv                    bool
	argv                       []string // set by materialize
	n                          int      // bytes of the arguments, their stop field included
	materialized               bool
}

// parseMyQueryView reads my_query's arguments (the args struct, through its
// stop field) from b; ok is false when it cannot read them exactly as the
// generated FunServantMyQueryArgs.Read would (see above).
func parseMyQueryView(b []byte) (v myQueryView, ok bool) {
	r := viewReader{b: b, ok: true}
	ok = r.args(func(typ byte, id int16) bool {
		switch {
		case id == 1 && typ == tStruct:
			return v.ctxView.parse(&r)
		case id == 2 && typ == tString:
			v.pool = view(r.bytes())
		case id == 3 && typ == tString:
			v.table = view(r.bytes())
		case id == 4 && typ == tI64:
			v.hintID = r.i64()
		case id == 5 && typ == tString:
			v.sql = view(r.bytes())
		case id == 6 && typ == tList:
			raw, n, ok := r.stringList()
			if !ok {
				return false
			}
			v.argvRaw, v.argc, v.hasArgv = raw, n, true
		case id == 7 && typ == tString:
			v.cacheKey = view(r.bytes())
		default:
			return false // the generated code skips it: leave the request to it
		}
		return true
	})
	v.n = r.at
	return v, ok
}

// materialize makes the view's strings its own and reads argv: after it, the
// view no longer uses the request's bytes.
func (v *myQueryView) materialize() {
	if v.materialized {
		return
	}
	v.materialized = true
	v.pool, v.table, v.sql, v.cacheKey = strings.Clone(v.pool), strings.Clone(v.table), strings.Clone(v.sql), strings.Clone(v.cacheKey)
	if v.hasArgv {
		v.argv = make([]string, 0, v.argc)
		eachString(v.argvRaw, v.argc, func(s []byte) { v.argv = append(v.argv, string(s)) })
	}
	v.argvRaw = nil
}

// traceArgs is the call's arguments for the trace stream (targs), as
// myQueryEncoded traces them.
func (v *myQueryView) traceArgs() string {
	argv := v.argv
	if !v.materialized && v.hasArgv {
		argv = make([]string, 0, v.argc)
		eachString(v.argvRaw, v.argc, func(s []byte) { argv = append(argv, view(s)) })
	}
	return targs("pool", v.pool, "table", v.table, "hint", v.hintID, "sql", v.sql, "args", argv, "cacheKey", v.cacheKey)
}

// myQueryFromView is myQueryEncoded for arguments read by parseMyQueryView:
// the same pipeline, counts and answers; the cache hit is looked up with the
// view's strings, and anything else runs on materialized ones.
func (s *FunServant) myQueryFromView(ctx context.Context, v *myQueryView) (enc []byte, r *rpc.MysqlResult_, err error) {
	type answer struct {
		enc []byte
		r   *rpc.MysqlResult_
	}
	c := v.context()
	a, err := run(s, ctx, "my.query", c, true, v.traceArgs, func(g *generation) (answer, error) {
		if v.cacheKey != "" {
			if enc := s.myQueryHit(g, c, v.pool, v.sql, v.cacheKey); enc != nil {
				return answer{enc: enc}, nil
			}
		}
		v.materialize()
		r, err := watched(ctx, "my.query", g, func(ctx context.Context, g *generation) (*rpc.MysqlResult_, error) {
			return s.myQuery(ctx, g, c, v.pool, v.table, v.hintID, v.sql, v.argv, v.cacheKey)
		})
		return answer{r: r}, err
	})
	return a.enc, a.r, err
}
