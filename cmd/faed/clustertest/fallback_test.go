package clustertest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/fae-go/fae/peer"
)

// Issue 8: while a key's owner is unreachable (killed, not yet dropped by
// ZooKeeper), a cacheKey'd read of that key runs locally without the cache,
// and a write with that cacheKey fails at once naming the owner: it is never
// run here instead.
func TestOwnerUnreachable(t *testing.T) {
	db, table, mysql := mysqlTable(t, "fb", "id INT PRIMARY KEY, v INT NOT NULL", "1, 10")
	_, nodes := startCluster(t, 2, mysql)
	ring := peer.NewRing([]string{nodes[0].addr, nodes[1].addr})
	var key string
	for i := 0; key == ""; i++ {
		if owner, _ := ring.Owner(fmt.Sprintf("fb:%d", i)); owner == nodes[1].addr {
			key = fmt.Sprintf("fb:%d", i)
		}
	}
	c := nodes[0].dial(t)
	nodes[1].kill()
	for i := range 5 { // through the open breaker too
		r, err := c.MyQuery(bg, ctx(), "Global", table, 0, "SELECT v FROM "+table+" WHERE id = 1", nil, key)
		if err != nil || len(r.Rows) != 1 || r.Rows[0][0] != "10" {
			t.Fatalf("read %d of a dead owner's cacheKey: %v %v, want it run here", i, r, err)
		}
	}
	_, err := c.MyQuery(bg, ctx(), "Global", table, 0, "UPDATE "+table+" SET v = v + 1 WHERE id = 1", nil, key)
	if err == nil || !strings.Contains(err.Error(), nodes[1].addr) {
		t.Fatalf("write with a dead owner's cacheKey: %v, want an error naming %s", err, nodes[1].addr)
	}
	var v int
	if err := db.QueryRow("SELECT v FROM " + table + " WHERE id = 1").Scan(&v); err != nil || v != 10 {
		t.Fatalf("v = %d (%v): the write ran somewhere", v, err)
	}
}
