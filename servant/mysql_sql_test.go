package servant

import (
	"errors"
	"testing"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		sql     string
		kind    stmtKind
		refused bool
	}{
		{"SELECT 1", kindRows, false},
		{"  select * from t", kindRows, false},
		{"\n-- comment\n/* c */ Select 1", kindRows, false},
		{"# hash comment\nSHOW TABLES", kindRows, false},
		{"describe t", kindRows, false},
		{"EXPLAIN SELECT 1", kindRows, false},
		{"(SELECT 1) UNION (SELECT 2)", kindRows, false},
		{"WITH x AS (SELECT 1) SELECT * FROM x", kindRows, false},
		{"INSERT INTO t VALUES (1)", kindExec, false},
		{"update t set a=1", kindExec, false},
		{"DELETE FROM t", kindExec, false},
		{"REPLACE INTO t VALUES (1)", kindExec, false},
		{"SET NAMES utf8", kindExec, false},
		{"BEGIN", 0, true},
		{"start transaction", 0, true},
		{"commit", 0, true},
		{"ROLLBACK", 0, true},
		{"SET autocommit=0", 0, true},
		{"set session autocommit = 1", 0, true},
		{"LOCK TABLES t WRITE", 0, true},
		{"UNLOCK TABLES", 0, true},
		{"   ", 0, true},
		{"/* unterminated", 0, true},
	} {
		kind, err := classify(tc.sql)
		if tc.refused != errors.Is(err, ErrRefusedStatement) || !tc.refused && kind != tc.kind {
			t.Errorf("classify(%q) = %v, %v; want kind %v refused %v", tc.sql, kind, err, tc.kind, tc.refused)
		}
	}
}
