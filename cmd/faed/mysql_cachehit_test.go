package main_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/fae-go/fae/internal/testenv"
)

// TestMyQueryCacheHitEveryProtocol: a query cache hit is answered with the
// same result as the query itself in every protocol and transport (on a
// binary-protocol session the hit is written as the cached bytes, undecoded;
// on compact it is decoded and encoded again), NULLs and an empty result
// included, and each hit is counted once in /svt/stat.
func TestMyQueryCacheHitEveryProtocol(t *testing.T) {
	testenv.RequireServer(t, "MariaDB", testenv.MySQLAddr)
	db := setupMysqlSchema(t, testenv.MySQLAddr)
	mustExec(t, db, "UPDATE "+faet+"UserShard2.UserInfo SET nick = 'ü\x00x' WHERE uid = 12")
	for _, m := range allModes {
		t.Run(m.String(), func(t *testing.T) {
			dir := t.TempDir()
			f := startFaedIn(t, dir, m.config(dir, "", mysqlSection(testenv.MySQLAddr, "")))
			c := f.dial(t, m)
			for i, q := range []struct {
				pool, table, sql string
				hint             int64
				args             []string
			}{
				{"UserShard", "UserInfo", "SELECT uid, name, gold, nick, extra FROM UserInfo ORDER BY uid", 2, nil},
				{"Global", "Setting", "SELECT k, v, data FROM Setting WHERE k <> ? ORDER BY k", 0, []string{"zz"}},
				{"Global", "Setting", "SELECT v FROM Setting WHERE k = ?", 0, []string{"none"}},
			} {
				want, err := c.MyQuery(bg, ctx(), q.pool, q.table, q.hint, q.sql, q.args, "")
				if err != nil {
					t.Fatalf("query %d uncached: %v", i, err)
				}
				key := fmt.Sprintf("hit:%d", i)
				for n := range 3 { // a miss, then two hits
					got, err := c.MyQuery(bg, ctx(), q.pool, q.table, q.hint, q.sql, q.args, key)
					if err != nil {
						t.Fatalf("query %d with cacheKey, call %d: %v", i, n, err)
					}
					if !reflect.DeepEqual(got, want) {
						t.Errorf("query %d with cacheKey, call %d: %+v, want %+v", i, n, got, want)
					}
				}
			}
			body, _ := httpGet(t, "http://"+f.httpAddr+"/svt/stat")
			var st struct {
				QueryCache map[string]int64 `json:"query_cache"`
			}
			if err := json.Unmarshal([]byte(body), &st); err != nil {
				t.Fatal(err)
			}
			if st.QueryCache["hits"] != 6 || st.QueryCache["misses"] != 3 {
				t.Errorf("/svt/stat query_cache = %v, want 6 hits and 3 misses", st.QueryCache)
			}
		})
	}
}
