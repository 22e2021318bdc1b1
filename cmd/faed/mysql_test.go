package main_test

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

// faet prefixes the databases of this test process, so that the runs of
// other checkouts on the shared MariaDB never drop this one's.
var faet = fmt.Sprintf("faet%d_", os.Getpid())

// The sharded schema of the MySQL tests, on a MariaDB at addr:
// faet<pid>_ShardLookup.UserLookup (entity → shard: 1→1, 2→2, 3→3, 4 locked, 9→shard 9 which has no server),
// faet<pid>_Global.Setting, faet<pid>_UserShard{1,2,3}.UserInfo with one row per entity of that shard.
func setupMysqlSchema(t testing.TB, addr string) *sql.DB {
	t.Helper()
	db := testenv.OpenMySQL(t, addr, "")
	for _, q := range []string{
		"DROP DATABASE IF EXISTS " + faet + "ShardLookup", "CREATE DATABASE " + faet + "ShardLookup",
		"CREATE TABLE " + faet + "ShardLookup.UserLookup (entityId BIGINT PRIMARY KEY, shardId INT NOT NULL, shardLock INT NOT NULL DEFAULT 0)",
		"INSERT INTO " + faet + "ShardLookup.UserLookup VALUES (1,1,0),(2,2,0),(3,3,0),(4,1,1),(5,1,0),(9,9,0)",
		"DROP DATABASE IF EXISTS " + faet + "Global", "CREATE DATABASE " + faet + "Global",
		"CREATE TABLE " + faet + "Global.Setting (k VARCHAR(64) PRIMARY KEY, v VARCHAR(255) NULL, data TEXT NULL)",
		"INSERT INTO " + faet + "Global.Setting VALUES ('a','1',NULL),('b',NULL,NULL),('c','3','{\"x\":1}')",
	} {
		mustExec(t, db, q)
	}
	for n := 1; n <= 3; n++ {
		dbName := fmt.Sprintf(faet+"UserShard%d", n)
		mustExec(t, db, "DROP DATABASE IF EXISTS "+dbName)
		mustExec(t, db, "CREATE DATABASE "+dbName)
		mustExec(t, db, "CREATE TABLE "+dbName+".UserInfo (uid BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL, gold INT NOT NULL DEFAULT 0, nick VARCHAR(64) NULL, extra TEXT NULL)")
		for _, uid := range []int{n, n + 10} {
			mustExec(t, db, fmt.Sprintf("INSERT INTO %s.UserInfo VALUES (%d, 'user%d', 100, NULL, '{}')", dbName, uid, uid))
		}
	}
	mustExec(t, db, "INSERT INTO "+faet+"UserShard1.UserInfo VALUES (5, 'user5', 100, NULL, '{}')")
	t.Cleanup(func() {
		for _, d := range []string{"ShardLookup", "Global", "UserShard1", "UserShard2", "UserShard3"} {
			db.Exec("DROP DATABASE IF EXISTS " + faet + d)
		}
	})
	return db
}

func mustExec(t testing.TB, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// mysqlSection is a servants.mysql section for the schema above on addr.
func mysqlSection(addr, extra string) string {
	host, port, _ := strings.Cut(addr, ":")
	var servers []string
	for _, p := range []string{"ShardLookup", "Global", "UserShard1", "UserShard2", "UserShard3"} {
		servers = append(servers, fmt.Sprintf(`{ pool: %q, host: %q, port: %s, db: "%s%s", username: "fae", password: "fae" }`, p, host, port, faet, p))
	}
	// UserShardLookup is a global pool whose name starts with UserShard: my_query_shards must not take it for a shard.
	servers = append(servers, fmt.Sprintf(`{ pool: "UserShardLookup", host: %q, port: %s, db: "%sShardLookup", username: "fae", password: "fae" }`, host, port, faet))
	return fmt.Sprintf(`mysql: {
            servers: [
                %s
            ]
            global_pools: ["ShardLookup", "Global", "UserShardLookup"]
            lookup_pool: "ShardLookup"
            lookup_tables: { UserShard: "UserLookup" }
            cache_prepare_stmt_max_items: 64
            breaker: { failure_allowance: 3, retry_interval: "1s" }
            %s
        }`, strings.Join(servers, "\n                "), extra)
}

// startMysqlFaed runs faed on the shared MariaDB with the schema set up; extra goes into servants.mysql.
func startMysqlFaed(t *testing.T, extra string) (*faed, *client, *sql.DB) {
	t.Helper()
	testenv.RequireServer(t, "MariaDB", testenv.MySQLAddr)
	db := setupMysqlSchema(t, testenv.MySQLAddr)
	m := allModes[0]
	dir := t.TempDir()
	f := startFaedIn(t, dir, m.config(dir, "", mysqlSection(testenv.MySQLAddr, extra)))
	return f, f.dial(t, m), db
}

// whichDB runs SELECT DATABASE() through my_query and returns the answer: the server chosen.
func whichDB(t *testing.T, c *client, pool string, hint int64) string {
	t.Helper()
	r, err := c.MyQuery(bg, ctx(), pool, "UserInfo", hint, "SELECT DATABASE() AS db", nil, "")
	if err != nil {
		t.Fatalf("my_query(%s, %d): %v", pool, hint, err)
	}
	return r.Rows[0][0]
}

func TestMyQuery(t *testing.T) {
	_, c, _ := startMysqlFaed(t, "")

	// server selection
	if db := whichDB(t, c, "Global", 0); db != faet+"Global" {
		t.Errorf("Global → %s", db)
	}
	for uid, want := range map[int64]string{1: faet + "UserShard1", 2: faet + "UserShard2", 3: faet + "UserShard3", 5: faet + "UserShard1"} {
		if db := whichDB(t, c, "UserShard", uid); db != want {
			t.Errorf("UserShard hint %d → %s, want %s", uid, db, want)
		}
	}

	// rows: strings, NULL as "NULL", each row its own
	r, err := c.MyQuery(bg, ctx(), "Global", "Setting", 0, "select k, v, data from Setting where k in (?, ?, ?) order by k", []string{"a", "b", "c"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(r.Cols) != "[k v data]" || fmt.Sprint(r.Rows) != `[[a 1 NULL] [b NULL NULL] [c 3 {"x":1}]]` {
		t.Errorf("select = %v %v", r.Cols, r.Rows)
	}
	for _, q := range []string{"SHOW TABLES", "  describe Setting", "/* c */ EXPLAIN SELECT * FROM Setting", "-- x\nSeLeCt 1"} {
		if r, err := c.MyQuery(bg, ctx(), "Global", "Setting", 0, q, nil, ""); err != nil || len(r.Rows) == 0 {
			t.Errorf("%q: rows %v, %v", q, r.GetRows(), err)
		}
	}

	// exec: rowsAffected, lastInsertId; argv bound, never spliced
	mustExec(t, testenv.OpenMySQL(t, testenv.MySQLAddr, faet+"Global"), "CREATE TABLE Counter (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(64))")
	r, err = c.MyQuery(bg, ctx(), "Global", "Counter", 0, "INSERT INTO Counter (note) VALUES (?), (?)", []string{"x'); DROP TABLE Counter; --", "y"}, "")
	if err != nil || r.RowsAffected != 2 || r.LastInsertId != 1 {
		t.Fatalf("insert = %+v, %v", r, err)
	}
	r, _ = c.MyQuery(bg, ctx(), "Global", "Counter", 0, "SELECT note FROM Counter ORDER BY id", nil, "")
	if len(r.GetRows()) != 2 || r.Rows[0][0] != "x'); DROP TABLE Counter; --" {
		t.Errorf("bound value came back as %v", r.GetRows())
	}
	r, err = c.MyQuery(bg, ctx(), "UserShard", "UserInfo", 2, "update UserInfo set gold = gold + ? where uid = ?", []string{"5", "2"}, "")
	if err != nil || r.RowsAffected != 1 {
		t.Errorf("update = %+v, %v", r, err)
	}

	// refused statements
	for _, q := range []string{"BEGIN", "start transaction", "COMMIT", "rollback", "SET autocommit=0", "LOCK TABLES Setting READ"} {
		_, err := c.MyQuery(bg, ctx(), "Global", "Setting", 0, q, nil, "")
		wantErrContains(t, "", err, "cannot work over a connection pool")
	}

	// selection errors
	_, err = c.MyQuery(bg, ctx(), "NoSuchPool", "t", 1, "SELECT 1", nil, "")
	wantErrContains(t, "", err, `pool "NoSuchPool" is not global and has no lookup table`)
	_, err = c.MyQuery(bg, ctx(), "UserShard", "UserInfo", 0, "SELECT 1", nil, "")
	wantErrContains(t, "", err, "sharded pool needs hintId > 0")
	_, err = c.MyQuery(bg, ctx(), "UserShard", "UserInfo", 999, "SELECT 1", nil, "")
	wantErrContains(t, "", err, "shard lookup: no entity 999 in UserLookup")
	_, err = c.MyQuery(bg, ctx(), "UserShard", "UserInfo", 4, "SELECT 1", nil, "")
	wantErrContains(t, "", err, "entity 4 is locked")
	_, err = c.MyQuery(bg, ctx(), "UserShard", "UserInfo", 9, "SELECT 1", nil, "")
	wantErrContains(t, "", err, `mysql query: pool "UserShard": unknown pool: no such server "UserShard9"`)

	// a statement error names the server and does not trip the breaker (allowance 3)
	for i := 0; i < 6; i++ {
		_, err = c.MyQuery(bg, ctx(), "Global", "Setting", 0, "SELEC broken", nil, "")
		wantErrContains(t, "", err, "mysql exec: pool \"Global\", server Global (", ": refused: ")
		wantErrContains(t, "", err, "1064")
		_, err = c.MyQuery(bg, ctx(), "Global", "Setting", 0, "SELECT nosuchcolumn FROM Setting", nil, "")
		wantErrContains(t, "", err, "1054")
	}
	if db := whichDB(t, c, "Global", 0); db != faet+"Global" {
		t.Errorf("after statement errors: %s", db)
	}
}

func TestMyQueryNotNullable(t *testing.T) {
	_, c, _ := startMysqlFaed(t, "allow_nullable_columns: false")
	r, err := c.MyQuery(bg, ctx(), "Global", "Setting", 0, "SELECT k, v FROM Setting WHERE k IN ('a','c') ORDER BY k", nil, "")
	if err != nil || fmt.Sprint(r.Rows) != "[[a 1] [c 3]]" {
		t.Errorf("rows without NULL = %v, %v (each row its own, not copies of the last)", r.GetRows(), err)
	}
	_, err = c.MyQuery(bg, ctx(), "Global", "Setting", 0, "SELECT k, v FROM Setting WHERE k = 'b'", nil, "")
	wantErrContains(t, "", err, `NULL value in column "v"`)
}

func TestMyVbucket(t *testing.T) {
	_, c, _ := startMysqlFaed(t, "shard_strategy: \"vbucket\"\nvbucket_size: 10")
	for hint, want := range map[int64]string{1: faet + "UserShard1", 9: faet + "UserShard1", 10: faet + "UserShard2", 29: faet + "UserShard3"} {
		if db := whichDB(t, c, "UserShard", hint); db != want {
			t.Errorf("vbucket hint %d → %s, want %s", hint, db, want)
		}
	}
}

// TestMyLookupInvalidation: a write through fae to the lookup table drops the
// cached shard of the entity it moved (by hintId, or the whole table without one).
func TestMyLookupInvalidation(t *testing.T) {
	_, c, _ := startMysqlFaed(t, "")
	if db := whichDB(t, c, "UserShard", 5); db != faet+"UserShard1" {
		t.Fatalf("entity 5 on %s", db)
	}
	if _, err := c.MyQuery(bg, ctx(), "ShardLookup", "UserLookup", 5, "UPDATE UserLookup SET shardId = 2 WHERE entityId = ?", []string{"5"}, ""); err != nil {
		t.Fatal(err)
	}
	if db := whichDB(t, c, "UserShard", 5); db != faet+"UserShard2" {
		t.Errorf("after the move with hintId: entity 5 still on %s", db)
	}
	whichDB(t, c, "UserShard", 1) // cached
	if _, err := c.MyQuery(bg, ctx(), "ShardLookup", "", 0, "update UserLookup set shardId = 3 where entityId = 1", nil, ""); err != nil {
		t.Fatal(err)
	}
	if db := whichDB(t, c, "UserShard", 1); db != faet+"UserShard3" {
		t.Errorf("after the move without hintId: entity 1 still on %s", db)
	}
}

func TestMyLookupTTL(t *testing.T) {
	_, c, db := startMysqlFaed(t, `lookup_cache_ttl: "300ms"`)
	whichDB(t, c, "UserShard", 5)
	mustExec(t, db, "UPDATE "+faet+"ShardLookup.UserLookup SET shardId = 3 WHERE entityId = 5") // behind fae's back
	if got := whichDB(t, c, "UserShard", 5); got != faet+"UserShard1" {
		t.Fatalf("cached lookup not used: %s", got)
	}
	time.Sleep(400 * time.Millisecond) // waits out lookup_cache_ttl (300ms) on purpose
	if got := whichDB(t, c, "UserShard", 5); got != faet+"UserShard3" {
		t.Errorf("after lookup_cache_ttl: %s", got)
	}
}

// testQueryCache: hit, miss, kick by a write with the cacheKey, my_evict, ttl.
func testQueryCache(t *testing.T, c *client, db *sql.DB, key string) {
	t.Helper()
	get := func() string {
		t.Helper()
		r, err := c.MyQuery(bg, ctx(), "UserShard", "UserInfo", 2, "SELECT gold FROM UserInfo WHERE uid = ?", []string{"2"}, key)
		if err != nil {
			t.Fatal(err)
		}
		return r.Rows[0][0]
	}
	if g := get(); g != "100" {
		t.Fatalf("gold = %s", g)
	}
	mustExec(t, db, "UPDATE "+faet+"UserShard2.UserInfo SET gold = 200 WHERE uid = 2") // behind fae's back
	if g := get(); g != "100" {
		t.Errorf("cached read = %s, want the cached 100", g)
	}
	if _, err := c.MyQuery(bg, ctx(), "UserShard", "UserInfo", 2, "UPDATE UserInfo SET gold = gold + 1 WHERE uid = ?", []string{"2"}, key); err != nil {
		t.Fatal(err)
	}
	if g := get(); g != "201" {
		t.Errorf("read after a write with the cacheKey = %s, want 201", g)
	}
	mustExec(t, db, "UPDATE "+faet+"UserShard2.UserInfo SET gold = 300 WHERE uid = 2")
	if err := c.MyEvict(bg, ctx(), key); err != nil {
		t.Fatal(err)
	}
	if g := get(); g != "300" {
		t.Errorf("read after my_evict = %s, want 300", g)
	}
	// an empty result is cached too
	r, err := c.MyQuery(bg, ctx(), "Global", "Setting", 0, "SELECT v FROM Setting WHERE k = ?", []string{"zz"}, key+":empty")
	if err != nil || len(r.Rows) != 0 || fmt.Sprint(r.Cols) != "[v]" {
		t.Errorf("empty result = %+v, %v", r, err)
	}
	mustExec(t, db, "INSERT INTO "+faet+"Global.Setting VALUES ('zz', 'new', NULL)")
	r, _ = c.MyQuery(bg, ctx(), "Global", "Setting", 0, "SELECT v FROM Setting WHERE k = ?", []string{"zz"}, key+":empty")
	if len(r.GetRows()) != 0 {
		t.Errorf("cached empty result not used: %v", r.GetRows())
	}
}

func TestMyQueryCacheMem(t *testing.T) {
	_, c, db := startMysqlFaed(t, "")
	testQueryCache(t, c, db, "user:2")
}

func TestMyQueryCacheHashedKeys(t *testing.T) {
	_, c, db := startMysqlFaed(t, "cache_key_hash: true")
	testQueryCache(t, c, db, "user:2:hashed") // my_evict must evict in this mode too
}

func TestMyQueryCacheTTL(t *testing.T) {
	_, c, db := startMysqlFaed(t, `cache_ttl: "300ms"`)
	q := func() string {
		r, err := c.MyQuery(bg, ctx(), "Global", "Setting", 0, "SELECT v FROM Setting WHERE k = 'a'", nil, "ttl:a")
		if err != nil {
			t.Fatal(err)
		}
		return r.Rows[0][0]
	}
	q()
	mustExec(t, db, "UPDATE "+faet+"Global.Setting SET v = 'changed' WHERE k = 'a'")
	if v := q(); v != "1" {
		t.Fatalf("within ttl: %s", v)
	}
	time.Sleep(400 * time.Millisecond) // waits out cache_ttl (300ms) on purpose
	if v := q(); v != "changed" {
		t.Errorf("after cache_ttl: %s", v)
	}
}

func TestMyBulkExec(t *testing.T) {
	_, c, db := startMysqlFaed(t, "")
	n, err := c.MyBulkExec(bg, ctx(),
		[]string{"UserShard", "UserShard", "Global"}, []string{"UserInfo", "UserInfo", "Setting"}, []int64{1, 2, 0},
		[]string{"UPDATE UserInfo SET gold = ? WHERE uid = ?", "UPDATE UserInfo SET gold = ? WHERE uid IN (?, ?)", "DELETE FROM Setting WHERE k = ?"},
		[][]string{{"7", "1"}, {"8", "2", "12"}, {"a"}}, []string{"", "", ""})
	if err != nil || n != 4 {
		t.Fatalf("my_bulk_exec = %d, %v; want 4", n, err)
	}
	var gold int
	db.QueryRow("SELECT gold FROM " + faet + "UserShard2.UserInfo WHERE uid = 12").Scan(&gold)
	if gold != 8 {
		t.Errorf("gold of 12 = %d", gold)
	}
	_, err = c.MyBulkExec(bg, ctx(), []string{"Global", "Global"}, []string{"t", "t"}, []int64{0, 0},
		[]string{"UPDATE Setting SET v = 'z' WHERE k = 'c'", "UPDATE nosuchtable SET x = 1"}, [][]string{{}, {}}, []string{"", ""})
	wantErrContains(t, "", err, "my_bulk_exec[1]")
	var v string
	db.QueryRow("SELECT v FROM " + faet + "Global.Setting WHERE k = 'c'").Scan(&v)
	if v != "z" {
		t.Errorf("statement 0 before the failing one: v = %q, want it committed (not atomic)", v)
	}
	_, err = c.MyBulkExec(bg, ctx(), []string{"Global"}, []string{"t", "t"}, []int64{0}, []string{"SELECT 1"}, [][]string{{}}, []string{""})
	wantErrContains(t, "", err, "lists of unequal length")
}

func TestMyQueryShards(t *testing.T) {
	_, c, _ := startMysqlFaed(t, "")
	r, err := c.MyQueryShards(bg, ctx(), "UserShard", "UserInfo", "SELECT DATABASE() AS db, COUNT(*) FROM UserInfo WHERE gold >= ?", []string{"0"})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(r.Rows) != "[["+faet+"UserShard1 3] ["+faet+"UserShard2 2] ["+faet+"UserShard3 2]]" || fmt.Sprint(r.Cols) != "[db COUNT(*)]" {
		t.Errorf("shards = %v %v (want shard order, UserShardLookup excluded)", r.Cols, r.Rows)
	}
	_, err = c.MyQueryShards(bg, ctx(), "UserShard", "UserInfo", "SELECT nosuch FROM UserInfo", nil)
	wantErrContains(t, "", err, `my_query_shards: mysql query: pool "UserShard", server UserShard`, "Error 1054")
	_, err = c.MyQueryShards(bg, ctx(), "NoShard", "t", "SELECT 1", nil)
	wantErrContains(t, "", err, "no shard servers NoShard<n>")
	_, err = c.MyQueryShards(bg, ctx(), "UserShard", "t", "DELETE FROM UserInfo", nil)
	wantErrContains(t, "", err, "return rows only")
}

// TestMyMerge: 50 concurrent merges of different keys into one row lose none.
func TestMyMerge(t *testing.T) {
	f, c, db := startMysqlFaed(t, "")
	const callers = 50
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := 0; i < callers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := f.tryDial(allModes[0])
			if err != nil {
				errs <- err
				return
			}
			defer cl.Close()
			r, err := cl.MyMerge(bg, ctx(), "UserShard", "UserInfo", 3, "uid = 3", "merge:3", "extra",
				fmt.Sprintf(`{"k%d": %d, "nested": {"n%d": true}}`, i, i, i))
			if err == nil && !r.Ok {
				err = errors.New("ok = false")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	var extra string
	db.QueryRow("SELECT extra FROM " + faet + "UserShard3.UserInfo WHERE uid = 3").Scan(&extra)
	for i := 0; i < callers; i++ {
		if !strings.Contains(extra, `"k`+strconv.Itoa(i)+`":`) || !strings.Contains(extra, `"n`+strconv.Itoa(i)+`":true`) {
			t.Fatalf("merge %d lost: %s", i, extra)
		}
	}
	r, err := c.MyMerge(bg, ctx(), "Global", "Setting", 0, "k = 'c'", "c", "data", `{"y":"it's"}`)
	if err != nil || r.NewVal_ != `{"x":1,"y":"it's"}` {
		t.Errorf("merge with a quote = %+v, %v", r, err)
	}
	_, err = c.MyMerge(bg, ctx(), "Global", "Setting", 0, "k LIKE '%'", "c", "data", `{"y":1}`)
	wantErrContains(t, "", err, "want exactly 1")
	_, err = c.MyMerge(bg, ctx(), "Global", "Setting; DROP", 0, "k = 'c'", "c", "data", `{"y":1}`)
	wantErrContains(t, "", err, "plain identifiers")
	_, err = c.MyMerge(bg, ctx(), "Global", "Setting", 0, "k = 'c'", "c", "data", `[1]`)
	wantErrContains(t, "", err, "not a JSON object")
}

// TestPHPMysqlPage: php-cli runs contrib/php/mysql_page.php against faed, as a web page would.
func TestPHPMysqlPage(t *testing.T) {
	f, _, _ := startMysqlFaed(t, "")
	out, err := exec.Command("php", "../../contrib/php/mysql_page.php", f.rpcAddr, "2").CombinedOutput()
	if err != nil {
		t.Fatalf("php: %v\n%s", err, out)
	}
	want := `read: {"uid":"2","name":"user2","gold":"100"}
write: rowsAffected=1
read again: {"uid":"2","name":"user2","gold":"110"}
begin: refused: Internal error processing my_query: mysql: statement refused: BEGIN cannot work over a connection pool`
	if !strings.HasPrefix(string(out), want) {
		t.Errorf("php output:\n%s\nwant it to start with:\n%s", out, want)
	}
}

// TestMyQueryCacheRedis: the query cache in a Redis pool; values read back exactly.
func TestMyQueryCacheRedis(t *testing.T) {
	testenv.RequireServer(t, "Redis", testenv.RedisAddr)
	testenv.RequireServer(t, "MariaDB", testenv.MySQLAddr)
	db := setupMysqlSchema(t, testenv.MySQLAddr)
	m := allModes[0]
	dir := t.TempDir()
	redis := fmt.Sprintf(`redis: { pools: [ { name: "db_cache", servers: [ { addr: %q } ] } ] }`, testenv.RedisAddr)
	f := startFaedIn(t, dir, m.config(dir, "", mysqlSection(testenv.MySQLAddr, `cache_store: "redis"
            cache_store_redis_pool: "db_cache"`)+"\n"+redis))
	c := f.dial(t, m)
	key := fmt.Sprintf("user:2:redis:%d", time.Now().UnixNano())
	testQueryCache(t, c, db, key)
	// The stored value is in Redis under the prefixed key, and faed reads it back exactly.
	raw, err := c.RdCall(bg, ctx(), "GET", "db_cache", []string{"fae:qc:" + key})
	if err != nil || len(raw) == 0 {
		t.Fatalf("the cached result is not in Redis: %q, %v", raw, err)
	}
	r, err := c.MyQuery(bg, ctx(), "UserShard", "UserInfo", 2, "SELECT uid, name, nick FROM UserInfo WHERE uid = ?", []string{"2"}, key+":row")
	r2, err2 := c.MyQuery(bg, ctx(), "UserShard", "UserInfo", 2, "SELECT uid, name, nick FROM UserInfo WHERE uid = ?", []string{"2"}, key+":row")
	if err != nil || err2 != nil || fmt.Sprint(r) != fmt.Sprint(r2) || fmt.Sprint(r2.Rows) != "[[2 user2 NULL]]" {
		t.Errorf("miss %v %v, hit %v %v", r, err, r2, err2)
	}

	// cache_store redis without a Redis pool of that name: faed does not start, and says why.
	bad := writeConf(t, m.config(dir, "", mysqlSection(testenv.MySQLAddr, `cache_store: "redis"`)))
	out, code := runFaed(t, "-conf", bad, "-lockfile", "")
	if code == 0 || !strings.Contains(out, "servants.redis is not configured") {
		t.Errorf("faed with cache_store redis and no redis section: %d %s", code, out)
	}
}
