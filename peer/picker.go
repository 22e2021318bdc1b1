package peer

import "errors"

// ErrNoMembers is returned by Picker.PickPeer when the ring has no members:
// no node with server_mode true is known (say a lone node with server_mode
// false, or one whose registry has not seen any member yet), so no node owns
// any key. The original fae divided by the member count here.
var ErrNoMembers = errors.New("peer: no cluster members known (no node with server_mode true is registered), so the key has no owner")

// Picker answers "which node owns this key, and is it me?" for one node: a
// Ring of the current members plus this node's own advertised address.
//
// A node that is not on the ring — server_mode false, or a member that has
// not registered yet or has left — owns no key and forwards every keyed call.
// Keys, and the cluster locks on them, change owner when a member joins as
// well as when one leaves (see Ring).
//
// A Picker is immutable and safe for concurrent use; a membership change
// makes a new one (NewPicker over a new Ring), swapped in whole by the caller,
// so one call sees one ring from start to end. The zero Picker has no
// members.
type Picker struct {
	ring *Ring
	self string
	idx  int // self's index in ring.members, -1 if not a member
}

// NewPicker returns the picker of node self ("host:port", as advertised) over
// ring; a nil ring is an empty one.
func NewPicker(ring *Ring, self string) *Picker {
	return &Picker{ring: ring, self: self, idx: ring.index(self)}
}

// PickPeer returns the owner of key: ("", false, nil) when this node owns it,
// (addr, true, nil) when the member at addr does, and ("", false,
// ErrNoMembers) when the ring is empty. Keys are hashed by their hash tag
// (HashTag). It allocates nothing.
func (p *Picker) PickPeer(key string) (addr string, remote bool, err error) {
	i := p.ring.ownerIndex(key)
	switch {
	case i < 0:
		return "", false, ErrNoMembers
	case i == p.idx:
		return "", false, nil
	}
	return p.ring.members[i], true, nil
}

// Members returns a copy of the ring's members, sorted; self is among them
// only if this node is a member.
func (p *Picker) Members() []string { return p.ring.Members() }

// Self returns this node's advertised address, as given to NewPicker.
func (p *Picker) Self() string { return p.self }

// IsMember reports whether this node is on the ring (owns keys).
func (p *Picker) IsMember() bool { return p.ring.Len() > 0 && p.idx >= 0 }

// Ring returns the ring the picker looks keys up on.
func (p *Picker) Ring() *Ring { return p.ring }
