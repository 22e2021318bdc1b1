package peer

import (
	"bytes"
	"time"
)

// SettleDelay is how long a joining member must be seen, without a break,
// before it is applied: a znode that comes and goes at once (a node crashing
// at start, a stale znode replaced) moves no keys. Members seen in the same
// read of ZooKeeper (nodes started together) are applied together, as one
// membership change. New in this fae.
const SettleDelay = 200 * time.Millisecond

// seen is one child of the root as the last complete read of ZooKeeper found
// it: a member record (raw is its JSON) or, with a reason, a foreign child.
type seen struct {
	info    MemberInfo
	raw     []byte
	czxid   int64 // the zxid that created the znode
	version int32 // its data version
	owner   int64 // its ephemeral owner session (0 = persistent)
	reason  string
}

// view turns what ZooKeeper shows into the applied membership: additions
// after SettleDelay, removals after the removal delay (the session timeout,
// as Finagle's serversets do), except members marked leaving, which go at
// once. Only the registry loop uses it.
type view struct {
	removalDelay time.Duration
	applied      map[string]seen      // the membership subscribers see
	observed     map[string]seen      // the last complete read, members only
	joining      map[string]time.Time // observed members not yet applied → first seen
	goneAt       map[string]time.Time // applied members no longer observed → when they go
}

func newView(removalDelay time.Duration) *view {
	return &view{removalDelay: removalDelay, applied: map[string]seen{},
		observed: map[string]seen{}, joining: map[string]time.Time{}, goneAt: map[string]time.Time{}}
}

// observe takes a complete read of the members (foreign children left out)
// at now, and reports whether the applied membership changed at once.
func (v *view) observe(members map[string]seen, now time.Time) (changed bool) {
	v.observed = members
	for addr, a := range v.applied {
		o, ok := members[addr]
		switch {
		case ok && o.info.Leaving:
			delete(v.applied, addr)
			delete(v.goneAt, addr)
			changed = true
		case ok:
			delete(v.goneAt, addr)
			if !bytes.Equal(o.raw, a.raw) { // restarted with other data: same member, new record
				v.applied[addr] = o
				changed = true
			}
		default:
			if _, pending := v.goneAt[addr]; !pending {
				v.goneAt[addr] = now.Add(v.removalDelay)
			}
		}
	}
	for addr := range v.joining {
		if o, ok := members[addr]; !ok || o.info.Leaving {
			delete(v.joining, addr) // gone again before it settled
		}
	}
	for addr, o := range members {
		_, applied := v.applied[addr]
		_, joining := v.joining[addr]
		if !applied && !joining && !o.info.Leaving {
			v.joining[addr] = now
		}
	}
	return changed
}

// apply carries out the additions and removals due at now, and reports
// whether the applied membership changed.
func (v *view) apply(now time.Time) (changed bool) {
	for addr, since := range v.joining {
		if !now.Before(since.Add(SettleDelay)) {
			v.applied[addr] = v.observed[addr]
			delete(v.joining, addr)
			changed = true
		}
	}
	for addr, at := range v.goneAt {
		if !now.Before(at) {
			delete(v.applied, addr)
			delete(v.goneAt, addr)
			changed = true
		}
	}
	return changed
}

// next is when the next pending change is due; zero = none pending.
func (v *view) next() time.Time {
	var t time.Time
	for _, since := range v.joining {
		if at := since.Add(SettleDelay); t.IsZero() || at.Before(t) {
			t = at
		}
	}
	for _, at := range v.goneAt {
		if t.IsZero() || at.Before(t) {
			t = at
		}
	}
	return t
}

// members is the applied membership, sorted by address.
func (v *view) members() []Member {
	ms := make([]Member, 0, len(v.applied))
	for addr, s := range v.applied {
		ms = append(ms, Member{Addr: addr, Info: s.info})
	}
	sortMembers(ms)
	return ms
}
