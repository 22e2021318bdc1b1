package pool

// Key → server mapping of a memcache pool, in the two strategies of
// servants.memcache.hash_strategy.
//
// Both are written here instead of taken from a library on purpose: items are
// shared with PHP's own memcache extensions, so a key must land on exactly the
// server PHP puts it on, bit for bit, and the Go ketama libraries differ from
// libmemcached in the details that decide it (the "host:port-i" label and its
// port-11211 special case, 4 points per MD5 digest, the float arithmetic of the
// point count). Both are checked against PHP itself (cmd/faed/memcache_php_test.go)
// and against vectors taken from it (ketama_test.go).

import (
	"crypto/md5"
	"hash/crc32"
	"math"
	"slices"
	"strconv"
)

// mcStandardIndex is PHP memcache's standard strategy (memcache.hash_strategy =
// standard, memcache.hash_function = crc32): bits 16..30 of crc32-IEEE(key),
// where PHP turns 0 into 1, modulo the number n of servers, in config order.
func mcStandardIndex(key string, n int) int {
	if n <= 1 {
		return 0
	}
	h := (crc32.ChecksumIEEE([]byte(key)) >> 16) & 0x7fff
	if h == 0 {
		h = 1 // as PHP memcache's mmc_standard_find_server does
	}
	return int(h % uint32(n))
}

// ketamaRing is libmemcached's weighted ketama continuum with all weights 1, as
// PHP's memcached extension builds it with Memcached::OPT_LIBKETAMA_COMPATIBLE
// (MD5 key hash, MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA weighted). Read-only
// after newKetamaRing, so safe for concurrent use.
type ketamaRing struct {
	points []ketamaPoint // sorted by hash
}

type ketamaPoint struct {
	hash   uint32
	server int // index in config order
}

// ketamaServer names one server as libmemcached labels it.
type ketamaServer struct {
	host string
	port int
}

// newKetamaRing builds the continuum of servers: for each server,
// ketamaPointsPerServer(n)/4 labels "host:port-i" ("host-i" on port 11211), each
// MD5 digest giving 4 points (its four little-endian 32-bit words).
func newKetamaRing(servers []ketamaServer) *ketamaRing {
	per := ketamaPointsPerServer(len(servers))
	r := &ketamaRing{points: make([]ketamaPoint, 0, per*len(servers))}
	for idx, s := range servers {
		prefix := s.host + ":" + strconv.Itoa(s.port) + "-"
		if s.port == 11211 { // MEMCACHED_DEFAULT_PORT is left out of the label
			prefix = s.host + "-"
		}
		for i := 0; i < per/4; i++ {
			d := md5.Sum([]byte(prefix + strconv.Itoa(i)))
			for w := 0; w < 4; w++ {
				r.points = append(r.points, ketamaPoint{hash: ketamaWord(d[:], w), server: idx})
			}
		}
	}
	// libmemcached's qsort orders by hash only; ties (never seen in practice) go
	// to the server listed first, so that the order is at least deterministic.
	slices.SortStableFunc(r.points, func(a, b ketamaPoint) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return a.server - b.server
	})
	return r
}

// ketamaPointsPerServer is libmemcached's point count for one of n servers of
// weight 1: floor(pct × 160 / 4 × n + 1e-10) × 4 with pct = 1/n, computed in
// C float (float32) as libmemcached does, so that it agrees where rounding matters.
func ketamaPointsPerServer(n int) int {
	if n == 0 {
		return 0
	}
	// Every step is converted explicitly so that no step is fused or widened.
	pct := float32(float32(1) / float32(n))
	x := float32(float32(float32(pct*160)/4) * float32(n))
	v := float32(float64(x) + 0.0000000001)
	return int(math.Floor(float64(v))) * 4
}

// ketamaWord is word w (0..3) of an MD5 digest, little-endian, as libmemcached's ketama_server_hash.
func ketamaWord(d []byte, w int) uint32 {
	return uint32(d[3+w*4])<<24 | uint32(d[2+w*4])<<16 | uint32(d[1+w*4])<<8 | uint32(d[w*4])
}

// pick returns the index of key's server: the first point whose hash is ≥ the
// key's hash (the first word of MD5(key)), wrapping around to the first point.
func (r *ketamaRing) pick(key string) int {
	if len(r.points) == 0 {
		return 0
	}
	d := md5.Sum([]byte(key))
	h := ketamaWord(d[:], 0)
	i, _ := slices.BinarySearchFunc(r.points, h, func(p ketamaPoint, h uint32) int {
		switch {
		case p.hash < h:
			return -1
		case p.hash > h:
			return 1
		}
		return 0
	})
	// BinarySearchFunc finds the first point ≥ h (the first of equal ones).
	if i == len(r.points) {
		i = 0
	}
	return r.points[i].server
}
