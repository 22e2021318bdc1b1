package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const MiB = 1 << 20
	for _, c := range []struct {
		name               string
		live, roots, floor uint64
		base, want         int
	}{
		{"no floor", 3 * MiB, 1 * MiB, 0, 100, 100},
		{"GOGC off", 3 * MiB, 1 * MiB, 32 * MiB, -1, -1},
		{"small heap: goal at the floor", 3 * MiB, 1 * MiB, 32 * MiB, 100, 725}, // 3 + 4 × 7.25 = 32
		{"live past half the floor: Go's own goal", 20 * MiB, 1 * MiB, 32 * MiB, 100, 100},
		{"live past the floor", 40 * MiB, 1 * MiB, 32 * MiB, 100, 100},
		{"a base above the floor's", 3 * MiB, 1 * MiB, 32 * MiB, 1000, 1000},
		{"tiny heap: the runtime's minimum goal bounds it", 1024, 0, 32 * MiB, 100, 800},
		{"nothing scanned yet", 0, 0, 32 * MiB, 100, 800},
		{"a huge floor: MaxPercent bounds it", 1 * MiB, 0, 1 << 40, 100, MaxPercent},
	} {
		if got := Percent(c.live, c.roots, c.floor, c.base); got != c.want {
			t.Errorf("%s: Percent(%d, %d, %d, %d) = %d, want %d", c.name, c.live, c.roots, c.floor, c.base, got, c.want)
		}
	}
}

func readUint(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// gcCycles counts the collections made while 256 MiB of garbage is
// allocated in 32 KiB pieces.
func gcCycles() uint64 {
	before := readUint("/gc/cycles/total:gc-cycles")
	var keep []byte
	for range 256 << 20 / (32 << 10) {
		keep = make([]byte, 32<<10)
		keep[0] = 1
	}
	runtime.KeepAlive(keep)
	return readUint("/gc/cycles/total:gc-cycles") - before
}

// waitGOGC runs collections (whose finalizers tune f) until f has set GOGC
// to what ok accepts, and returns it; it fails t after 10 s.
func waitGOGC(t *testing.T, f *Floor, ok func(int) bool) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		if g := f.GOGC(); ok(g) && int(readUint(mGOGC)) == g {
			return g
		}
		if time.Now().After(deadline) {
			t.Fatalf("GOGC stayed %d (runtime: %d)", f.GOGC(), int(readUint(mGOGC)))
		}
		runtime.Gosched() // the finalizer goroutine runs
	}
}

// A floor raises GOGC while the live heap is small, so that far fewer
// collections run for the same garbage; a live heap past the floor gets Go's
// own GOGC back; Stop gives back the GOGC it started with.
func TestFloor(t *testing.T) {
	base := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(base) })
	runtime.GC()
	without := gcCycles()

	f := Start(64 << 20)
	t.Cleanup(f.Stop)
	g := waitGOGC(t, f, func(g int) bool { return g > 100 })
	with := gcCycles()
	goal := readUint("/gc/heap/goal:bytes")
	t.Logf("GOGC %d, heap goal %d; collections for 256 MiB of garbage: %d without the floor, %d with a 64 MiB floor", g, goal, without, with)
	if with*3 > without || with < 2 {
		t.Errorf("a 64 MiB floor: %d collections for 256 MiB of garbage, against %d without: want 2 to a third of them", with, without)
	}
	if goal > 68<<20 || goal < 48<<20 { // the floor give or take the runtime's own counts (see Percent)
		t.Errorf("a 64 MiB floor: heap goal %d bytes, want 48 to 68 MiB", goal)
	}

	live := make([]byte, 80<<20) // past the floor: Go's own pacing
	for i := 0; i < len(live); i += 4096 {
		live[i] = 1
	}
	waitGOGC(t, f, func(g int) bool { return g == 100 })
	runtime.KeepAlive(live)
	live = nil

	f.Set(0)
	if got := int(readUint(mGOGC)); got != 100 {
		t.Errorf("floor set to 0: GOGC %d, want 100", got)
	}
	f.Set(64 << 20)
	waitGOGC(t, f, func(g int) bool { return g > 100 })
	f.Stop()
	if got := int(readUint(mGOGC)); got != 100 {
		t.Errorf("after Stop: GOGC %d, want 100", got)
	}
	runtime.GC()
	runtime.GC()
	if got := int(readUint(mGOGC)); got != 100 {
		t.Errorf("after Stop and more collections: GOGC %d, want 100 (a finalizer still tuning)", got)
	}
}

// Under a soft memory limit the floor in force is at most half the limit: a
// 64 MiB floor under a 48 MiB limit gives a goal of about 24 MiB, not one
// at the limit.
func TestFloorUnderMemoryLimit(t *testing.T) {
	base := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(base) })
	limit := debug.SetMemoryLimit(48 << 20)
	t.Cleanup(func() { debug.SetMemoryLimit(limit) })
	runtime.GC()
	f := Start(64 << 20)
	t.Cleanup(f.Stop)
	g := waitGOGC(t, f, func(g int) bool { return g > 100 })
	goal := readUint("/gc/heap/goal:bytes")
	t.Logf("GOGC %d, heap goal %d", g, goal)
	if goal > 27<<20 || goal < 16<<20 {
		t.Errorf("a 64 MiB floor under a 48 MiB memory limit: heap goal %d bytes, want about 24 MiB (half the limit)", goal)
	}
}

// With GOGC=off the floor leaves it off.
func TestFloorLeavesGOGCOff(t *testing.T) {
	base := debug.SetGCPercent(-1)
	t.Cleanup(func() { debug.SetGCPercent(base) })
	f := Start(64 << 20)
	defer f.Stop()
	runtime.GC()
	if got := f.GOGC(); got != -1 {
		t.Fatalf("GOGC=off: the floor set %d", got)
	}
}
