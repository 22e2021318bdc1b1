package peer

import (
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"testing"

	"github.com/golang/groupcache/consistenthash"
)

// TestHashChoice keeps the measurement behind Ring's hash reproducible: the
// spread of members' shares of 100,000 keys with PointsPerMember points each,
// on Ring (XXH64), on groupcache's consistenthash (crc32 of "<i><member>",
// its default) and on the same ring as Ring's with FNV-1a-64 (hash/fnv)
// instead of XXH64. Ring must spread keys more evenly than both.
func TestHashChoice(t *testing.T) {
	keys := testKeys(100000)
	for _, shape := range []struct {
		name    string
		members func(int) []string
	}{{"local", localMembers}, {"spread", spreadMembers}} {
		for _, n := range []int{10, 100} {
			ms := shape.members(n)
			r := NewRing(ms)
			gc := consistenthash.New(PointsPerMember, nil)
			gc.Add(ms...)
			fnvRing := fnvRing(ms)
			ours := shareRange(ms, keys, func(k string) string { o, _ := r.Owner(k); return o })
			theirs := map[string][2]float64{
				"groupcache crc32": shareRange(ms, keys, gc.Get),
				"FNV-1a-64":        shareRange(ms, keys, fnvRing),
			}
			t.Logf("%s, %d members: Ring %.2f–%.2f × 1/N, groupcache crc32 %.2f–%.2f, FNV-1a-64 %.2f–%.2f",
				shape.name, n, ours[0], ours[1], theirs["groupcache crc32"][0], theirs["groupcache crc32"][1],
				theirs["FNV-1a-64"][0], theirs["FNV-1a-64"][1])
			for name, sr := range theirs {
				if ours[1]-ours[0] >= sr[1]-sr[0] {
					t.Errorf("%s, %d members: Ring's shares %.2f–%.2f are no tighter than %s's %.2f–%.2f",
						shape.name, n, ours[0], ours[1], name, sr[0], sr[1])
				}
			}
		}
	}
}

// shareRange returns the lowest and highest share of keys that owner gives a
// member, as multiples of 1/len(members).
func shareRange(members, keys []string, owner func(string) string) [2]float64 {
	count := map[string]int{}
	for _, k := range keys {
		count[owner(k)]++
	}
	lo, hi := math.Inf(1), 0.0
	for _, m := range members {
		rel := float64(count[m]) * float64(len(members)) / float64(len(keys))
		lo, hi = min(lo, rel), max(hi, rel)
	}
	return [2]float64{lo, hi}
}

// fnvRing returns the owner function of Ring's construction with FNV-1a-64
// for the points ("<member>#<i>") and the keys.
func fnvRing(members []string) func(string) string {
	sum := func(s string) uint64 {
		h := fnv.New64a()
		h.Write([]byte(s))
		return h.Sum64()
	}
	var pts []point
	for mi, m := range members {
		for i := range PointsPerMember {
			pts = append(pts, point{hash: sum(m + "#" + strconv.Itoa(i)), member: uint32(mi)})
		}
	}
	pts = radixSort(pts, make([]point, len(pts)))
	return func(key string) string {
		i, _ := slices.BinarySearchFunc(pts, sum(key), func(p point, h uint64) int {
			switch {
			case p.hash < h:
				return -1
			case p.hash > h:
				return 1
			}
			return 0
		})
		return members[pts[i%len(pts)].member]
	}
}
