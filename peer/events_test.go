package peer

import (
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

// The epoch is 0 before the membership is read, then grows by one per
// membership change applied: a member joining bumps it, and a read that
// changes nothing does not. The last ZooKeeper event is the registry's.
func testEpochAndLastEvent(t *testing.T, zkAddr string) {
	cfg := testConfig("/epoch/fae", testSession)
	a := startRegistry(t, zkAddr, cfg)
	if e := a.Epoch(); e != 0 {
		t.Fatalf("epoch %d before the first read", e)
	}
	if err := a.Register(info(1), "127.0.0.1:9301"); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, 10*time.Second, []string{"127.0.0.1:9301"}, a)
	before := a.Epoch()
	if before < 1 {
		t.Fatalf("epoch %d with a membership read", before)
	}
	ev, ok := a.LastEvent()
	if !ok || ev.Type == "" || ev.State == "" || ev.Time.IsZero() || time.Since(ev.Time) > time.Minute {
		t.Fatalf("last event %+v, %v", ev, ok)
	}
	node(t, zkAddr, cfg, "127.0.0.1:9302", 2)
	waitMembers(t, 10*time.Second, []string{"127.0.0.1:9301", "127.0.0.1:9302"}, a)
	if got := a.Epoch(); got != before+1 {
		t.Errorf("epoch %d after one member joined, want %d", got, before+1)
	}
	// The join fired the children watch on the root: the last event names it.
	testenv.Eventually(t, 5*time.Second, "the watch event recorded", func() bool {
		ev, _ := a.LastEvent()
		return ev.Type == "EventNodeChildrenChanged" && ev.Path == "/epoch/fae"
	})
	if got := a.Epoch(); got != before+1 {
		t.Errorf("epoch %d after re-reading an unchanged membership, want %d", got, before+1)
	}
}
