package testenv

import (
	"hash/crc32"
	"sort"
	"strconv"
)

// OriginalRedisRing is the server of addrs that the original fae's Redis ring
// (funkygao/golib hash.Map) picks for key, written out as the tests' reference:
// 32 points per server, crc32 of "<i><addr>" for i < 32; the key goes to the
// first point ≥ crc32(key) by linear scan, else to the first point.
func OriginalRedisRing(addrs []string, key string) string {
	var points []int
	owner := map[int]string{}
	for _, a := range addrs {
		for i := 0; i < 32; i++ {
			h := int(crc32.ChecksumIEEE([]byte(strconv.Itoa(i) + a)))
			points = append(points, h)
			owner[h] = a
		}
	}
	sort.Ints(points)
	h := int(crc32.ChecksumIEEE([]byte(key)))
	for _, p := range points {
		if p >= h {
			return owner[p]
		}
	}
	return owner[points[0]]
}
