// Package peer is fae's cluster layer: the ZooKeeper registration and
// discovery of the nodes, and the owner of a key among them (Ring, Picker).
package peer

import (
	"slices"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// PointsPerMember is how many points each member has on a Ring: 160, the
// number libmemcached's ketama uses (40 MD5 digests × 4 points), above the
// cluster's floor of 100. A member's share of the keys then deviates from 1/N
// by about 1/√160 ≈ 8% (one standard deviation of a sum of 160 random arcs);
// measured over 100,000 keys at 100 members, every share lies within
// 0.79–1.22 × 1/N (TestBalance, TestHashChoice). More points balance a little
// better for more memory and rebuild time: at 1,000 members the ring holds
// 160,000 points in 1.9 MB.
//
// Changing it, the point labels or the hash moves keys between nodes of
// different versions in one cluster: TestOwnerGolden pins all three.
const PointsPerMember = 160

// Ring is an immutable consistent-hash ring over a member set: the owner of a
// key is a deterministic function of the sorted, de-duplicated members and the
// key, the same on every node, in every process and after every restart (no
// random seed, no map order).
//
// The algorithm is Karger et al.'s consistent hashing ("Consistent Hashing and
// Random Trees", STOC 1997) with virtual points: each member m has
// PointsPerMember points on a 64-bit circle at XXH64("<m>#<i>") for i = 0…159
// (cespare/xxhash, seed 0: a fixed function, unlike hash/maphash whose seeds
// are random per process). The owner of a key is the member of the first point
// at or after XXH64(HashTag(key)), wrapping past the top to the first point;
// found by binary search over the sorted points, O(log(N·160)), no allocation.
// Two points with the same hash (a 64-bit collision) keep the lower member in
// sorted order, so even that case does not depend on input order.
//
// Why not groupcache's consistenthash (pool.Redis uses it to keep the
// original's Redis ring): its hash is 32-bit by type, and its default crc32 of
// "<i><member>" places points in clusters (crc32 is linear: members that
// differ in a few bytes get related point patterns), so with 160 points at 100
// members a member's share of the keys ranged 0.47–2.41 × 1/N against
// 0.81–1.22 here (TestHashChoice; FNV-1a-64 was worse still, 0.13–3.03); each
// Get allocates (the key's []byte passes through a func value) and looks the
// owner up in a map, and two members' points with equal hashes overwrite each
// other in that map in Add order. BenchmarkGroupcacheGet measures it beside
// BenchmarkPickPeer.
//
// Keys move when the membership changes, in both directions: when a member
// leaves, its keys (about 1/N of them) go to the members after its points, and
// no other key moves; when a member joins, about 1/(N+1) of the keys move to
// it, taken from every other member. State kept per key on its owner — the
// cluster locks, the query cache — does not move with the key: a lock held on
// the old owner is unknown to the new one, so a join as well as a leave can
// let a second caller take a lock that is still held.
//
// A Ring is never modified after NewRing, so any number of goroutines may use
// it at once; a membership change builds a new Ring, which the caller swaps in
// whole (an atomic pointer or a generation), so building one never blocks
// lookups on the old one. The zero Ring and a nil *Ring are empty.
type Ring struct {
	members []string // sorted, de-duplicated, no ""
	hashes  []uint64 // point positions, sorted ascending, unique
	owners  []uint32 // owners[i] is the index in members of the point at hashes[i]
}

// point is one member's point on the circle while a Ring is built.
type point struct {
	hash   uint64
	member uint32 // index in Ring.members
}

// NewRing builds the ring of members ("host:port" addresses as advertised;
// any non-empty strings). It copies, sorts and de-duplicates them, and drops
// "" (Picker.PickPeer returns "" for "this node"). With no members the ring is
// empty and every lookup reports no owner. At 1,000 members it takes about
// 20 ms and 7 MB of transient memory (BenchmarkNewRing).
func NewRing(members []string) *Ring {
	ms := slices.DeleteFunc(slices.Clone(members), func(m string) bool { return m == "" })
	slices.Sort(ms)
	ms = slices.Compact(ms)
	r := &Ring{members: ms}
	if len(ms) == 0 {
		return r
	}
	pts := make([]point, 0, len(ms)*PointsPerMember)
	var label []byte
	for mi, m := range ms {
		label = append(append(label[:0], m...), '#')
		base := len(label)
		for i := range PointsPerMember {
			label = strconv.AppendInt(label[:base], int64(i), 10)
			pts = append(pts, point{hash: xxhash.Sum64(label), member: uint32(mi)})
		}
	}
	// pts is in member order, and the sort is stable: equal hashes keep the
	// lower member first, and Compact keeps that one.
	pts = radixSort(pts, make([]point, len(pts)))
	pts = slices.CompactFunc(pts, func(a, b point) bool { return a.hash == b.hash })
	r.hashes = make([]uint64, len(pts))
	r.owners = make([]uint32, len(pts))
	for i, p := range pts {
		r.hashes[i], r.owners[i] = p.hash, p.member
	}
	return r
}

// HashTag returns the part of key that decides its owner, by Redis Cluster's
// hash tag rule (Redis Cluster specification, "Hash tags"): if key contains a
// '{', and a '}' after it, and at least one byte lies between the first '{'
// and the first '}' after it, only those bytes are hashed; otherwise the whole
// key is. So "{user1000}.following" and "{user1000}.followers" have the same
// owner; "foo{}{bar}" is hashed whole, "foo{{bar}}zap" by "{bar", and
// "foo{bar}{zap}" by "bar". Bytes, not runes: any UTF-8 key works. Only the
// rule is Redis's: the hash is XXH64, not Redis's CRC16 slots.
func HashTag(key string) string {
	if s := strings.IndexByte(key, '{'); s >= 0 {
		if e := strings.IndexByte(key[s+1:], '}'); e > 0 {
			return key[s+1 : s+1+e]
		}
	}
	return key
}

// ownerIndex returns the index in r.members of key's owner, or -1 when r is
// empty.
func (r *Ring) ownerIndex(key string) int {
	if r == nil || len(r.hashes) == 0 {
		return -1
	}
	i, _ := slices.BinarySearch(r.hashes, xxhash.Sum64String(HashTag(key)))
	if i == len(r.hashes) {
		i = 0 // past the last point: wrap around to the first
	}
	return int(r.owners[i])
}

// Owner returns the member that owns key, and false (with "") when the ring
// is empty. It allocates nothing and takes about 0.25 µs at 1,000 members
// (BenchmarkPickPeer).
func (r *Ring) Owner(key string) (addr string, ok bool) {
	i := r.ownerIndex(key)
	if i < 0 {
		return "", false
	}
	return r.members[i], true
}

// Members returns a copy of the members, sorted (byte order) and
// de-duplicated; never nil.
func (r *Ring) Members() []string {
	if r == nil {
		return []string{}
	}
	return append([]string{}, r.members...)
}

// Len returns the number of members.
func (r *Ring) Len() int {
	if r == nil {
		return 0
	}
	return len(r.members)
}

// Has reports whether addr is a member.
func (r *Ring) Has(addr string) bool {
	return r.index(addr) >= 0
}

// index returns addr's index in r.members, or -1.
func (r *Ring) index(addr string) int {
	if r == nil {
		return -1
	}
	if i, ok := slices.BinarySearch(r.members, addr); ok {
		return i
	}
	return -1
}

// radixDigit is the digit width, in bits, of radixSort: 6 passes over 64-bit
// hashes with a 2,048-entry count table (16 KiB, on the stack).
const radixDigit = 11

// radixSort sorts pts by hash with a stable LSD radix sort, using tmp (as
// long as pts) as scratch, and returns the sorted slice (pts or tmp). It
// replaces slices.SortFunc, which made a 1,000-member rebuild take about 45 ms
// against 17 ms with this; stability keeps equal hashes in member order.
func radixSort(pts, tmp []point) []point {
	const mask = 1<<radixDigit - 1
	for shift := uint(0); shift < 64; shift += radixDigit {
		var start [mask + 2]int
		for _, p := range pts {
			start[(p.hash>>shift)&mask+1]++
		}
		for d := 1; d < len(start); d++ {
			start[d] += start[d-1]
		}
		for _, p := range pts {
			d := (p.hash >> shift) & mask
			tmp[start[d]] = p
			start[d]++
		}
		pts, tmp = tmp, pts
	}
	return pts
}
