package servant

import (
	"errors"
	"fmt"
	"strings"
)

// ErrRefusedStatement: a statement that cannot work over a connection pool.
var ErrRefusedStatement = errors.New("mysql: statement refused")

// stmtKind is what my_query does with a statement.
type stmtKind int

const (
	kindExec stmtKind = iota // returns rowsAffected and lastInsertId
	kindRows                 // returns cols and rows
)

// classify finds a statement's first keyword, case-insensitively, after
// whitespace and comments (-- …, # …, /* … */), and says whether it returns
// rows (SELECT, SHOW, DESCRIBE, DESC, EXPLAIN, WITH). Statements that need one
// connection across calls — transactions, locks, session state — are refused:
// over a pool each call may land on another connection. (The original only
// recognised an upper-case SELECT at byte 0 and let BEGIN/COMMIT through.)
func classify(sql string) (stmtKind, error) {
	kw, rest := firstKeyword(sql)
	switch kw {
	case "SELECT", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "WITH":
		return kindRows, nil
	case "BEGIN", "START", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "XA", "LOCK", "UNLOCK", "USE":
		return 0, fmt.Errorf("%w: %s cannot work over a connection pool (each call may use another connection); "+
			"use single statements or my_merge", ErrRefusedStatement, kw)
	case "SET":
		if strings.Contains(strings.ToUpper(rest), "AUTOCOMMIT") || strings.HasPrefix(strings.ToUpper(strings.TrimSpace(rest)), "TRANSACTION") {
			return 0, fmt.Errorf("%w: SET autocommit/transaction cannot work over a connection pool", ErrRefusedStatement)
		}
	case "":
		return 0, fmt.Errorf("%w: empty statement", ErrRefusedStatement)
	}
	return kindExec, nil
}

// firstKeyword returns the upper-cased first word of sql after whitespace and
// comments, and the text after it.
func firstKeyword(sql string) (string, string) {
	s := sql
	for {
		s = strings.TrimLeft(s, " \t\r\n\f\v(")
		switch {
		case strings.HasPrefix(s, "--"), strings.HasPrefix(s, "#"):
			if i := strings.IndexByte(s, '\n'); i >= 0 {
				s = s[i+1:]
				continue
			}
			return "", ""
		case strings.HasPrefix(s, "/*"):
			if i := strings.Index(s[2:], "*/"); i >= 0 {
				s = s[i+4:]
				continue
			}
			return "", ""
		}
		break
	}
	end := 0
	for end < len(s) && (s[end] >= 'a' && s[end] <= 'z' || s[end] >= 'A' && s[end] <= 'Z' || s[end] == '_') {
		end++
	}
	return strings.ToUpper(s[:end]), s[end:]
}
