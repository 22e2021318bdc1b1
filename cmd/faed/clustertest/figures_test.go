package clustertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/fae-go/fae/peer"
)

// getJSON fetches path from n's HTTP API and decodes it into v.
func (n *node) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := http.Get("http://" + n.http + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s GET %s: %s", n.name, path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s GET %s: %v", n.name, path, err)
	}
}

// forwardedByPeer is /svt/stat's cluster.by_peer of n: calls by peer address.
func forwardedByPeer(t *testing.T, n *node) map[string]int64 {
	t.Helper()
	var st struct {
		Cluster struct {
			ByPeer []struct {
				Peer  string `json:"peer"`
				Calls int64  `json:"calls"`
			} `json:"by_peer"`
		} `json:"cluster"`
	}
	n.getJSON(t, "/svt/stat", &st)
	out := map[string]int64{}
	for _, r := range st.Cluster.ByPeer {
		out[r.Peer] = r.Calls
	}
	return out
}

// checkForwardedByPeer checks that from before (forwardedByPeer of nodes[0])
// to now, nodes[0] forwarded exactly one call per key of keys to the key's
// owner on the ring of nodes (none for the keys it owns), and that
// /engine/peers shows the 3 members, an epoch and the last ZooKeeper event.
func checkForwardedByPeer(t *testing.T, nodes []*node, before map[string]int64, keys []string) {
	t.Helper()
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.addr
	}
	ring := peer.NewRing(addrs)
	want := map[string]int64{}
	for _, k := range keys {
		if o, _ := ring.Owner(k); o != nodes[0].addr {
			want[o]++
		}
	}
	after := forwardedByPeer(t, nodes[0])
	for _, a := range addrs[1:] {
		if got := after[a] - before[a]; got != want[a] || got == 0 {
			t.Errorf("forwarded to %s: %d calls, want %d (owner of %d of %d keys)", a, got, want[a], want[a], len(keys))
		}
	}
	if n := after[nodes[0].addr]; n != 0 {
		t.Errorf("%d calls forwarded to the node itself", n)
	}
	var st struct {
		Pools []struct {
			Backend, Server, Breaker string
			Open                     int
		} `json:"pools"`
	}
	nodes[0].getJSON(t, "/svt/stat", &st)
	peers := 0
	for _, r := range st.Pools {
		if r.Backend == "peer" {
			peers++
			if r.Breaker != "closed" || r.Open < 1 || r.Server == nodes[0].addr {
				t.Errorf("pool to peer %s: %+v", r.Server, r)
			}
		}
	}
	if peers != 2 {
		t.Errorf("/svt/stat pools: %d peers, want 2: %+v", peers, st.Pools)
	}
	var p struct {
		Members   []any          `json:"members"`
		Epoch     int64          `json:"epoch"`
		LastEvent map[string]any `json:"last_event"`
	}
	nodes[0].getJSON(t, "/engine/peers", &p)
	if len(p.Members) != 3 || p.Epoch < 1 || p.LastEvent["type"] == nil || p.LastEvent["time"] == nil {
		t.Errorf("/engine/peers: %d members, epoch %d, last event %v", len(p.Members), p.Epoch, p.LastEvent)
	}
}

// ownerKey is the k-th key of TestOwnersAgreeAndClusterLock.
func ownerKey(k int) string { return fmt.Sprintf("owner:%d", k) }
