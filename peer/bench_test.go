package peer

import (
	"strconv"
	"testing"

	"github.com/golang/groupcache/consistenthash"
)

// benchKeys are 4,096 keys shaped like fae's, looked up in turn so that the
// branch predictor and the caches do not learn one key's path.
func benchKeys() []string {
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = "user:" + strconv.Itoa(i*7919) + ":profile"
	}
	return keys
}

// BenchmarkPickPeer is the owner lookup of one keyed call at 3, 100 and 1,000
// members (target: ≤ 1 µs and 0 allocations at 1,000).
func BenchmarkPickPeer(b *testing.B) {
	for _, n := range []int{3, 100, 1000} {
		b.Run("members="+strconv.Itoa(n), func(b *testing.B) {
			ms := localMembers(n)
			p := NewPicker(NewRing(ms), ms[0])
			keys := benchKeys()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, _, err := p.PickPeer(keys[i&4095]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkNewRing is a membership change: the whole ring rebuilt (target at
// 1,000 members: ≤ 50 ms).
func BenchmarkNewRing(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run("members="+strconv.Itoa(n), func(b *testing.B) {
			ms := localMembers(n)
			b.ReportAllocs()
			for b.Loop() {
				NewRing(ms)
			}
		})
	}
}

// BenchmarkGroupcacheGet measures groupcache's consistenthash.Map.Get with
// the same points per member and keys as BenchmarkPickPeer, for the record of
// why Ring does not use it (see Ring): it allocates once per lookup.
func BenchmarkGroupcacheGet(b *testing.B) {
	for _, n := range []int{3, 100, 1000} {
		b.Run("members="+strconv.Itoa(n), func(b *testing.B) {
			m := consistenthash.New(PointsPerMember, nil)
			m.Add(localMembers(n)...)
			keys := benchKeys()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				m.Get(keys[i&4095])
				i++
			}
		})
	}
}
