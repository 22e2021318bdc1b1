package main_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/fae-go/fae/internal/testenv"
)

// TestMongoServerSelection: with two or three server entries on different
// databases of the same FerretDB, a document lands in the database of the entry
// that shard_strategy picks (checked with a driver client of the test's own).
func TestMongoServerSelection(t *testing.T) {
	testenv.RequireServer(t, "FerretDB", testenv.MongoAddr)
	mc := directMongo(t, testenv.MongoAddr)
	coll := uniqueName("mgtest_select")
	dbs := map[string]string{}
	for _, n := range []string{"a", "b", "db1", "db2"} {
		dbs[n] = uniqueName("fae_sel_" + n)
		dropLater(t, mc, dbs[n], coll)
	}
	for _, tc := range []struct {
		strategy string
		entries  []string
		calls    []mgLanding
	}{
		{"legacy", []string{"a", "b"}, []mgLanding{{"a", 0, "a"}, {"database.b", 5, "b"}, {"b", 300000, "b"}}},
		{"standard", []string{"a", "db1", "db2"}, []mgLanding{{"db", 5, "db1"}, {"db", 99999, "db1"}, {"db", 100000, "db2"},
			{"dbUser", 150000, "db2"}, {"a", 250000, "a"}}},
	} {
		var servers []string
		for _, e := range tc.entries {
			servers = append(servers, mgServer(e, testenv.MongoAddr, dbs[e]))
		}
		_, c := startFaedSession(t, mgSection(fmt.Sprintf("shard_strategy: %q", tc.strategy), servers...))
		for i, l := range tc.calls {
			checkLanding(t, c, mc, fmt.Sprintf("%s-%d", tc.strategy, i), coll, l, tc.entries, dbs)
		}
		if tc.strategy == "standard" {
			_, err := c.MgCount(bg, ctx(), "db", coll, 200000, nil)
			wantErrContains(t, "standard shard beyond the entries", err, `mongodb count: pool "db": unknown pool: no server entry "db3" for shard 200000, shard_strategy standard`)
		}
	}
}

// mgLanding is a call's pool and shard and the server entry that must serve it.
type mgLanding struct {
	pool  string
	shard int32
	entry string
}

// checkLanding inserts a document {k: key} through c and checks that it is in
// the database of l.entry and of no other entry.
func checkLanding(t *testing.T, c *client, mc *mongo.Client, key, coll string, l mgLanding, entries []string, dbs map[string]string) {
	t.Helper()
	if ok, err := c.MgInsert(bg, ctx(), l.pool, coll, l.shard, bs(t, bson.D{{Key: "k", Value: key}})); err != nil || !ok {
		t.Fatalf("%s: insert = %v, %v", key, ok, err)
	}
	for _, e := range entries {
		found := directFind(t, mc, dbs[e], coll, bson.D{{Key: "k", Value: key}}) != nil
		if found != (e == l.entry) {
			t.Errorf("%s: pool %q shard %d: document in entry %s's database = %v; want it only in %s's",
				key, l.pool, l.shard, e, found, l.entry)
		}
	}
}

// TestMongoUserPass: user and pass are sent. The shared FerretDB (SQLite
// backend) supports no SCRAM authentication, so a configured user is refused
// by the real server: the error says so and names the pool, server and user.
func TestMongoUserPass(t *testing.T) {
	testenv.RequireServer(t, "FerretDB", testenv.MongoAddr)
	host, port, _ := strings.Cut(testenv.MongoAddr, ":")
	entry := fmt.Sprintf(`{ pool: "default", host: %q, port: %s, db: %q, user: "fae", pass: "secret" }`, host, port, mgDB)
	_, c := startFaedSession(t, mgSection("", entry))
	_, err := c.MgCount(bg, ctx(), "default", uniqueName("mgtest_auth"), 0, nil)
	wantErrContains(t, "count as user fae", err, fmt.Sprintf(`mongodb count: pool "default", server default (%s): refused: authentication failed as user "fae": `, testenv.MongoAddr))
}

// TestMongoStartsWhileDown: faed starts with its MongoDB down (nothing listens
// on the port) and a call fails within connect_timeout, naming the server.
func TestMongoStartsWhileDown(t *testing.T) {
	addr := testenv.FreeAddr(t) // nothing listens there
	_, c := startFaedSession(t, mgSection(`connect_timeout: "300ms"`, mgServer("default", addr, mgDB)))
	start := time.Now()
	_, err := c.MgFindOne(bg, ctx(), "default", "t", 0, nil, nil)
	wantErrContains(t, "find_one on a dead server", err,
		fmt.Sprintf(`mongodb find_one: pool "default", server default (%s): server failure: server unreachable (no connection within connect_timeout 300ms): `, addr), "connection refused")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("failing call took %s, want about connect_timeout (300ms)", d)
	}
}
