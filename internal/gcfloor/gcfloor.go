// Package gcfloor gives Go's garbage collector a heap floor: no collection
// starts before the heap reaches the floor, however small the live heap.
//
// Go collects when the heap has grown by GOGC % (100) of what the last
// collection found live. faed's live heap is a few MiB with its caches empty,
// so under load it collected 20 to 40 times a second (pprof and
// /debug/pprof/allocs of make bench scenario 5, 1 December 2026), and each
// collection's fixed costs (scanning every session's stack, write barriers
// while marking, assists) were 6 to 10 % of its CPU on php-fpm sessions and
// proxied Redis and memcache calls (GOGC=1000 against the default, alternated,
// 4 runs of 3 rounds). A floor costs at most that many bytes of garbage held
// between collections, and nothing once the live heap is past half of it:
// then Go's own pacing is in force unchanged. This is the "minimum heap"
// proposed for Go (golang/go#23044, #42430), answered there with GOMEMLIMIT;
// Uber's GOGC tuning ("How we saved 70K cores", 2021) and ByteDance's
// gopkg/util/gctuner adjust GOGC after each collection the same way.
//
// After each collection a finalizer reads the live heap (runtime/metrics,
// no stop-the-world) and sets GOGC so that the next goal is the larger of
// Go's own and the floor (Percent). A soft memory limit (debug.SetMemoryLimit,
// faed's memory_limit) still bounds the heap: the runtime collects at the
// limit whatever GOGC says; and the floor in force is at most half the limit,
// so that a floor set near or past it does not leave every collection to the
// limit's (its scavenging, its CPU limiter). One floor per process: Stop gives
// back the GOGC its Start found.
package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// MaxPercent bounds the GOGC Percent returns, whatever the floor.
const MaxPercent = 10000

// heapMinimum is the runtime's smallest heap goal at GOGC=100 (4 MiB,
// defaultHeapMinimum in runtime/mgcpacer.go), which it scales by GOGC/100:
// at GOGC=1000 no goal is below 40 MiB, whatever is live.
const heapMinimum = 4 << 20

// Percent returns the GOGC (%) that makes the next collection's heap goal
// floor bytes, or base when base's own goal is already larger. Go's goal
// (runtime/mgcpacer.go, Go 1.18 on) is live + (live + roots) × GOGC/100,
// where roots are the goroutine stacks and globals it scans (bytes), and at
// least heapMinimum × GOGC/100: so the result is at most floor × 100 /
// heapMinimum (800 for a 32 MiB floor), and a live heap too small to reach
// the floor that way gets a goal a little under it. The runtime computes
// its goal from its own counts of the stacks and the live heap, which differ
// a little from runtime/metrics' (more under the race detector): the goal
// it sets is the floor give or take a few % (64.5 MiB for a 64 MiB floor
// was seen under -race). base < 0 (GOGC=off) or floor 0 returns base
// unchanged.
func Percent(live, roots, floor uint64, base int) int {
	if base < 0 || floor == 0 || live >= floor {
		return base
	}
	scan := live + roots
	if scan == 0 {
		scan = 1
	}
	p := min((floor-live)*100/scan, floor*100/heapMinimum, MaxPercent)
	return max(base, int(p))
}

// Floor keeps GOGC at Percent of the floor after each collection. Its
// methods are safe for concurrent use.
type Floor struct {
	mu      sync.Mutex
	floor   uint64 // bytes; 0 = off
	base    int    // GOGC at Start (the environment's GOGC, 100 by default)
	set     int    // the GOGC last set
	stopped bool
	samples []metrics.Sample
}

const (
	mLive    = "/gc/heap/live:bytes"
	mStacks  = "/gc/scan/stack:bytes"
	mGlobals = "/gc/scan/globals:bytes"
	mGOGC    = "/gc/gogc:percent"
)

// Start keeps a heap floor of floor bytes (0: none, GOGC as the process
// started) until Stop. The GOGC in force at Start (the GOGC environment
// variable's, 100 by default) is the base the floor only ever raises: with
// GOGC=off the floor does nothing.
func Start(floor uint64) *Floor {
	f := &Floor{floor: floor, samples: []metrics.Sample{{Name: mLive}, {Name: mStacks}, {Name: mGlobals}, {Name: mGOGC}}}
	metrics.Read(f.samples[3:])
	f.base = 100 // a runtime without the metric: Go's default
	if v := f.samples[3].Value; v.Kind() == metrics.KindUint64 {
		f.base = int(v.Uint64()) // GOGC=off reads as -1
	}
	f.set = f.base
	f.tune()
	arm(f)
	return f
}

// Set changes the floor to floor bytes (0: none) from now on.
func (f *Floor) Set(floor uint64) {
	f.mu.Lock()
	f.floor = floor
	f.mu.Unlock()
	f.tune()
}

// Stop ends the floor and gives GOGC back its value at Start.
func (f *Floor) Stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = true
	if f.set != f.base {
		debug.SetGCPercent(f.base)
		f.set = f.base
	}
}

// GOGC returns the GOGC the floor last set (%).
func (f *Floor) GOGC() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.set
}

// tune sets GOGC for the live heap the last collection found (none yet: the
// base). A change of less than a tenth is not made: SetGCPercent takes the
// heap lock and recomputes the pacing.
func (f *Floor) tune() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return
	}
	metrics.Read(f.samples)
	for _, m := range f.samples[:3] {
		if m.Value.Kind() != metrics.KindUint64 { // a runtime without the metric: no floor
			return
		}
	}
	live := f.samples[0].Value.Uint64()
	want := f.base
	if live > 0 {
		floor := f.floor
		if limit := debug.SetMemoryLimit(-1); limit > 0 && uint64(limit)/2 < floor {
			floor = uint64(limit) / 2
		}
		want = Percent(live, f.samples[1].Value.Uint64()+f.samples[2].Value.Uint64(), floor, f.base)
	}
	if want != f.set && (want == f.base || diff(want, f.set)*10 >= f.set) {
		debug.SetGCPercent(want)
		f.set = want
	}
}

func diff(a, b int) int {
	if a > b {
		return a - b
	}
	return b - a
}

// sentinel is garbage from birth: its finalizer runs after the collection
// that finds it, tunes the floor and makes the next one.
type sentinel struct{ f *Floor }

func arm(f *Floor) {
	runtime.SetFinalizer(&sentinel{f: f}, func(s *sentinel) {
		s.f.tune()
		s.f.mu.Lock()
		stopped := s.f.stopped
		s.f.mu.Unlock()
		if !stopped {
			arm(s.f)
		}
	})
}
