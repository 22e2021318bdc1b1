package servant

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/fae-go/fae/pool"
)

// ErrRefusedStatement: a statement that cannot work over a connection pool.
// errors.Is matches it, and pool.KindRefused, on every refusal of classify.
var ErrRefusedStatement = errors.New("mysql: statement refused")

// refusedError is a statement refused by classify, with its reason.
type refusedError struct{ reason string }

func (e *refusedError) Error() string   { return ErrRefusedStatement.Error() + ": " + e.reason }
func (e *refusedError) Unwrap() []error { return []error{ErrRefusedStatement, pool.KindRefused} }

func refused(format string, args ...any) error {
	return &refusedError{reason: fmt.Sprintf(format, args...)}
}

// The reasons of the refusals, after "<what> cannot work over a connection pool".
const (
	whyTx = " (each call may use another connection); use single statements or my_merge"
	// whySession is for every statement that leaves state on the connection.
	whySession   = ": it changes the session of a connection that later calls, of any client, reuse"
	whyCharset   = ": it changes the charset of a connection that later calls reuse; set the charset key of the server entry (servants.mysql.servers[].charset)"
	whyIsolation = ": it sets the isolation level or access mode of the connection's next transaction, which another call would get"
	whyUserVar   = ": a user variable stays on the connection, where a later call of any client reads it, and the next call may run on another connection"
	whyGlobal    = ": it changes the server's settings for every client; do it as an administrator, not through fae"
	whyLock      = ": the lock stays held by the connection until it is closed, and the unlock may run on another connection; use fae's lock and unlock methods or single statements"
	whyTemp      = ": a temporary table exists only on the connection that made it, and the next call may run on another"
	whyPrepare   = ": a server-side prepared statement exists only on its connection; send the statement with ? placeholders and argv (fae prepares and caches it: cache_prepare_stmt_max_items)"
	whyHandler   = ": an open table handler stays on its connection"
	whyKill      = ": it ends a pooled connection or its statement, which another caller may be using, and a killed connection counts as a server failure on the pool's breaker"
	whyUse       = ": it changes the default database of a connection that later calls reuse; name the database (db.table) or give the database a server entry"
)

// stmtKind is what my_query does with a statement.
type stmtKind int

const (
	kindExec stmtKind = iota // returns rowsAffected and lastInsertId
	kindRows                 // returns cols and rows
)

// classifyCacheMax bounds the statements whose classification a generation
// remembers (the SQL text is client input), and classifyCacheMaxBytes the
// length of one remembered: at most 4096 × 1 KiB of text. A statement past
// either is lexed on every call; past the count it is also counted in
// QueryCacheStats.ClassifyOverflow. Lexing a one-row SELECT is about 7% of
// faed's CPU of a query cache hit (make bench scenario 4, pprof).
const (
	classifyCacheMax      = 4096
	classifyCacheMaxBytes = 1024
)

// classifyCache remembers classify's answer per statement text.
type classifyCache struct {
	m sync.Map     // sql → classified
	n atomic.Int64 // entries in m
}

type classified struct {
	kind stmtKind
	err  error
}

// classify is classify(sql), remembered; overflow counts the statements not
// remembered because the cache is full.
func (c *classifyCache) classify(sql string, overflow *atomic.Int64) (stmtKind, error) {
	if v, ok := c.m.Load(sql); ok {
		r := v.(classified)
		return r.kind, r.err
	}
	kind, err := classify(sql)
	switch {
	case len(sql) > classifyCacheMaxBytes:
	case c.n.Load() >= classifyCacheMax:
		overflow.Add(1)
	default:
		// A copy of its own: sql may be a view of a session's buffer (mysql_view.go).
		if _, loaded := c.m.LoadOrStore(strings.Clone(sql), classified{kind, err}); !loaded {
			c.n.Add(1)
		}
	}
	return kind, err
}

// classify reads a statement with lexSQL and says whether it returns rows
// (first keyword SELECT, SHOW, DESCRIBE, DESC, EXPLAIN, WITH) or not. It
// refuses, naming the reason, every statement that would leave state on the
// pooled connection, for over a pool each call may land on another connection
// and another caller inherits what is left: transactions, every SET statement,
// user-variable assignments anywhere (@v := …, INTO @v), named locks
// (GET_LOCK, RELEASE_LOCK, RELEASE_ALL_LOCKS), LOCK/UNLOCK TABLES, FLUSH … READ
// LOCK and BACKUP locks, CREATE/DROP TEMPORARY, PREPARE/EXECUTE/DEALLOCATE,
// HANDLER, USE and KILL (another caller's connection, or the pool's breaker
// tripped by connections killed on purpose); also more than one statement, an empty one, and text
// whose quotes or comments do not end. Words in strings, quoted identifiers
// and comments never count; executable comments (/*! … */, /*!50001 … */,
// /*M! … */) are code, as MySQL runs them. (The original only recognised an
// upper-case SELECT at byte 0 and let BEGIN/COMMIT through.)
//
// Limits: a CALL's procedure is not looked into; backslash escapes are read
// as MySQL's default sql_mode does (not NO_BACKSLASH_ESCAPES).
func classify(sql string) (stmtKind, error) {
	toks, err := lexSQL(sql)
	if err != nil {
		return 0, err
	}
	for i, t := range toks {
		if t.is(";") {
			for _, u := range toks[i+1:] {
				if !u.is(";") {
					return 0, refused("more than one statement (text after ';'): send one statement per call (my_bulk_exec runs several)")
				}
			}
			toks = toks[:i]
			break
		}
	}
	for len(toks) > 0 && toks[0].is("(") {
		toks = toks[1:]
	}
	if len(toks) == 0 {
		return 0, refused("empty statement")
	}
	if err := checkFirstKeyword(toks); err != nil {
		return 0, err
	}
	if err := checkAnywhere(toks); err != nil {
		return 0, err
	}
	switch toks[0].word() {
	case "SELECT", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "WITH":
		return kindRows, nil
	}
	return kindExec, nil
}

// checkFirstKeyword refuses by the statement's leading keywords.
func checkFirstKeyword(toks []token) error {
	kw, next := toks[0].word(), ""
	if len(toks) > 1 {
		next = toks[1].word()
	}
	cannot := func(what, why string) error { return refused("%s cannot work over a connection pool%s", what, why) }
	switch {
	case kw == "BEGIN", kw == "COMMIT", kw == "ROLLBACK", kw == "SAVEPOINT", kw == "XA",
		kw == "START" && next == "TRANSACTION", kw == "RELEASE" && next == "SAVEPOINT":
		return cannot(kw, whyTx)
	case kw == "SET":
		return setRefusal(toks[1:])
	case kw == "LOCK", kw == "UNLOCK", kw == "BACKUP":
		return cannot(kw+" "+next, whyLock)
	case kw == "FLUSH" && (hasWords(toks, "READ", "LOCK") || hasWords(toks, "FOR", "EXPORT")):
		return cannot("FLUSH … READ LOCK", whyLock)
	case kw == "USE":
		return cannot(kw, whyUse)
	case kw == "PREPARE", kw == "EXECUTE", kw == "DEALLOCATE", kw == "DROP" && next == "PREPARE":
		return cannot(kw, whyPrepare)
	case kw == "HANDLER":
		return cannot(kw, whyHandler)
	case kw == "KILL":
		return refused("KILL cannot work through fae%s", whyKill)
	case (kw == "CREATE" || kw == "DROP") && isTemporary(toks[1:]):
		return cannot(kw+" TEMPORARY", whyTemp)
	}
	return nil
}

// isTemporary reports whether the words after CREATE or DROP are
// [OR REPLACE] TEMPORARY.
func isTemporary(toks []token) bool {
	if len(toks) >= 2 && toks[0].word() == "OR" && toks[1].word() == "REPLACE" {
		toks = toks[2:]
	}
	return len(toks) > 0 && toks[0].word() == "TEMPORARY"
}

// setRefusal is the refusal of a SET statement whose tokens after SET are
// toks, with the most specific reason.
func setRefusal(toks []token) error {
	has := func(pred func(token) bool) bool {
		for _, t := range toks {
			if pred(t) {
				return true
			}
		}
		return false
	}
	word := func(w string) func(token) bool { return func(t token) bool { return t.word() == w } }
	sysvar := func(part string) func(token) bool {
		return func(t token) bool { return t.kind == tokSysVar && strings.Contains(t.text, part) }
	}
	cannot := func(what, why string) error { return refused("%s cannot work over a connection pool%s", what, why) }
	switch {
	case has(word("NAMES")), has(word("CHARSET")), hasWords(toks, "CHARACTER", "SET"):
		return cannot("SET NAMES / SET CHARACTER SET", whyCharset)
	case has(word("AUTOCOMMIT")), has(sysvar("AUTOCOMMIT")):
		return cannot("SET autocommit", whyTx)
	case has(word("TRANSACTION")):
		return cannot("SET TRANSACTION", whyIsolation)
	case has(func(t token) bool { return t.kind == tokUserVar }):
		return cannot("SET @variable", whyUserVar)
	case has(word("GLOBAL")), has(sysvar("@@GLOBAL.")):
		return refused("SET GLOBAL cannot work through fae%s", whyGlobal)
	}
	return cannot("SET", whySession)
}

// checkAnywhere refuses what may appear anywhere in a statement: named-lock
// functions and user-variable assignments.
func checkAnywhere(toks []token) error {
	for i, t := range toks {
		next := func(s string) bool { return i+1 < len(toks) && toks[i+1].is(s) }
		switch {
		case (t.kind == tokWord || t.kind == tokQuotedIdent) && (i == 0 || !toks[i-1].is(".")) && next("("):
			switch t.text {
			case "GET_LOCK", "RELEASE_LOCK", "RELEASE_ALL_LOCKS":
				return refused("%s() cannot work over a connection pool%s", t.text, whyLock)
			}
		case t.kind == tokUserVar && next(":="),
			t.word() == "INTO" && i+1 < len(toks) && toks[i+1].kind == tokUserVar:
			return refused("assigning a user variable cannot work over a connection pool%s", whyUserVar)
		}
	}
	return nil
}

// hasWords reports whether the words a then b follow each other in toks.
func hasWords(toks []token, a, b string) bool {
	for i := 0; i+1 < len(toks); i++ {
		if toks[i].word() == a && toks[i+1].word() == b {
			return true
		}
	}
	return false
}
