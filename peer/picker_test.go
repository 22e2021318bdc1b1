package peer

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestPickPeerMember: on a member, PickPeer answers local for exactly the keys
// the ring gives this node and the owner's address for the others.
func TestPickPeerMember(t *testing.T) {
	ms := localMembers(3)
	r := NewRing(ms)
	local := 0
	for _, self := range ms {
		p := NewPicker(r, self)
		if !p.IsMember() || p.Self() != self || p.Ring() != r {
			t.Fatalf("NewPicker(%s): IsMember %v, Self %q", self, p.IsMember(), p.Self())
		}
		for _, k := range testKeys(3000) {
			owner, _ := r.Owner(k)
			addr, remote, err := p.PickPeer(k)
			switch {
			case err != nil:
				t.Fatalf("%s: PickPeer(%q): %v", self, k, err)
			case owner == self && (addr != "" || remote):
				t.Fatalf("%s: PickPeer(%q) = %q, %v; it owns the key", self, k, addr, remote)
			case owner != self && (addr != owner || !remote):
				t.Fatalf("%s: PickPeer(%q) = %q, %v; want %s, true", self, k, addr, remote, owner)
			}
			if owner == self {
				local++
			}
		}
	}
	if local != 3000 { // every key is local on exactly one of the three
		t.Fatalf("%d keys were local somewhere, want each of 3000 exactly once", local)
	}
}

// TestPickPeerNotMember: a node off the ring (server_mode false) forwards
// every key, to the ring's owner.
func TestPickPeerNotMember(t *testing.T) {
	r := NewRing(localMembers(3))
	p := NewPicker(r, "127.0.0.1:29999")
	if p.IsMember() {
		t.Fatal("IsMember() = true for an address not on the ring")
	}
	for _, k := range testKeys(3000) {
		owner, _ := r.Owner(k)
		addr, remote, err := p.PickPeer(k)
		if err != nil || !remote || addr != owner {
			t.Fatalf("PickPeer(%q) = %q, %v, %v; want %s, true, nil", k, addr, remote, err, owner)
		}
	}
}

// TestPickPeerAlone: the only member owns every key.
func TestPickPeerAlone(t *testing.T) {
	p := NewPicker(NewRing([]string{"127.0.0.1:9001"}), "127.0.0.1:9001")
	for _, k := range testKeys(3000) {
		if addr, remote, err := p.PickPeer(k); addr != "" || remote || err != nil {
			t.Fatalf("PickPeer(%q) = %q, %v, %v; want local", k, addr, remote, err)
		}
	}
}

// TestPickPeerNoMembers: an empty ring gives ErrNoMembers, with a text that
// says why, for members and non-members alike; never a panic.
func TestPickPeerNoMembers(t *testing.T) {
	for name, p := range map[string]*Picker{
		"nil ring":        NewPicker(nil, "127.0.0.1:9001"),
		"empty ring":      NewPicker(NewRing(nil), "127.0.0.1:9001"),
		"empty self":      NewPicker(NewRing(nil), ""),
		"zero Picker":     {},
		"only empty name": NewPicker(NewRing([]string{""}), ""),
	} {
		addr, remote, err := p.PickPeer("user:1")
		if !errors.Is(err, ErrNoMembers) || addr != "" || remote {
			t.Errorf("%s: PickPeer = %q, %v, %v; want ErrNoMembers", name, addr, remote, err)
		}
		if p.IsMember() || len(p.Members()) != 0 {
			t.Errorf("%s: IsMember %v, Members %v", name, p.IsMember(), p.Members())
		}
	}
	if msg := ErrNoMembers.Error(); !strings.Contains(msg, "no cluster members known") || !strings.Contains(msg, "server_mode") {
		t.Errorf("ErrNoMembers = %q: should say no members are known and name server_mode", msg)
	}
}

func TestPickerMembersSorted(t *testing.T) {
	p := NewPicker(NewRing([]string{"127.0.0.1:9003", "127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9001"}), "127.0.0.1:9002")
	want := []string{"127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"}
	got := p.Members()
	if !slices.Equal(got, want) {
		t.Fatalf("Members() = %v, want %v", got, want)
	}
	got[0] = "changed"
	if !slices.Equal(p.Members(), want) {
		t.Fatalf("Members() = %v after the caller changed the returned slice", p.Members())
	}
}

// TestSwapWhileLooking: goroutines look keys up on the current picker while
// another builds 1,000-member rings and swaps them in. Every answer must be
// the owner on the old or the new ring (a lookup sees one whole ring), lookups
// must go on while a ring is being built (the build takes no lock a lookup
// needs), and -race must find nothing.
func TestSwapWhileLooking(t *testing.T) {
	const self = "127.0.0.1:20000"
	small, big := localMembers(3), localMembers(1000)
	rings := []*Ring{NewRing(small), NewRing(big)}
	var cur atomic.Pointer[Picker]
	cur.Store(NewPicker(rings[0], self))

	var building atomic.Bool
	var duringBuild atomic.Int64
	stop := make(chan struct{})
	keys := testKeys(1000)
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := keys[i%len(keys)]
				addr, remote, err := cur.Load().PickPeer(k)
				if !remote {
					addr = self
				}
				o0, _ := rings[0].Owner(k)
				o1, _ := rings[1].Owner(k)
				if err != nil || (addr != o0 && addr != o1) {
					errs <- "PickPeer(" + k + ") = " + addr + ", owners " + o0 + " / " + o1
					return
				}
				if building.Load() {
					duringBuild.Add(1)
				}
			}
		})
	}
	for i := range 6 {
		building.Store(true)
		r := NewRing(rings[(i+1)%2].Members())
		building.Store(false)
		cur.Store(NewPicker(r, self))
	}
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if duringBuild.Load() == 0 {
		t.Error("no lookup completed while rings were being built")
	}
	t.Logf("%d lookups completed during the builds", duringBuild.Load())
}
