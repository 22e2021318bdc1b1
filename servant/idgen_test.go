package servant

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// A fake clock: the clock moving backwards and 4096 ids in one millisecond are
// faults a test cannot cause for real on demand.
type fakeClock struct {
	ms     int64
	slept  time.Duration
	onTick func(c *fakeClock)
}

func (c *fakeClock) now() int64 { return c.ms }
func (c *fakeClock) sleep(d time.Duration) {
	c.slept += d
	if c.onTick != nil {
		c.onTick(c)
	}
}

func newFakeGen(worker int64, c *fakeClock) *IDGen {
	g := NewIDGen(worker)
	g.nowMs, g.sleep = c.now, c.sleep
	return g
}

func TestIDLayout(t *testing.T) {
	c := &fakeClock{ms: IDEpoch + 1000}
	g := newFakeGen(5, c)
	id, err := g.Next(3)
	if err != nil {
		t.Fatal(err)
	}
	// 1000 ms << 22 | tag 3 << 17 | worker 5 << 12 | seq 0
	if want := int64(1000)<<22 | 3<<17 | 5<<12; id != want {
		t.Fatalf("id = %d, want %d", id, want)
	}
	got := DecodeID(id)
	if want := []int64{IDEpoch + 1000, 3, 5, 0}; !slices.Equal(got, want) {
		t.Fatalf("DecodeID = %v, want %v", got, want)
	}
	// A known id of the original layout: 2014-01-04 11:29:34.657 + 1 ms, tag 0, worker 1, seq 7.
	if got := DecodeID(1<<22 | 1<<12 | 7); !slices.Equal(got, []int64{1388834974658, 0, 1, 7}) {
		t.Fatalf("DecodeID(known) = %v", got)
	}
}

func TestIDSequenceOverflowWaitsForNextMs(t *testing.T) {
	c := &fakeClock{ms: IDEpoch + 5}
	c.onTick = func(c *fakeClock) { c.ms++ }
	g := newFakeGen(1, c)
	var last int64
	for i := 0; i < 4096+10; i++ {
		id, err := g.Next(0)
		if err != nil {
			t.Fatal(err)
		}
		if id <= last {
			t.Fatalf("id %d not above %d at i=%d", id, last, i)
		}
		last = id
	}
	if d := DecodeID(last); d[0] != IDEpoch+6 || d[3] != 9 {
		t.Fatalf("after 4106 ids the last is %v, want ms+1 seq 9", d)
	}
}

func TestIDClockBackwards(t *testing.T) {
	c := &fakeClock{ms: IDEpoch + 10000}
	g := newFakeGen(1, c)
	first, _ := g.Next(0)

	// A small step back is waited out: the next id is still larger.
	c.ms -= 300
	c.onTick = func(c *fakeClock) { c.ms += 100 }
	id, err := g.Next(0)
	if err != nil {
		t.Fatalf("300ms back: %v", err)
	}
	if id <= first || c.slept == 0 {
		t.Fatalf("300ms back: id %d after %d, slept %s", id, first, c.slept)
	}

	// A step back longer than MaxClockBackwards is an error.
	c.onTick = nil
	c.ms -= MaxClockBackwards.Milliseconds() + 500
	if _, err := g.Next(0); !errors.Is(err, ErrClockBackwards) {
		t.Fatalf("big step back: err = %v, want ErrClockBackwards", err)
	}
}

func TestIDBadTag(t *testing.T) {
	g := NewIDGen(1)
	for _, tag := range []int{-1, 32, -32768} {
		if _, err := g.Next(tag); !errors.Is(err, ErrBadTag) {
			t.Errorf("Next(%d) err = %v", tag, err)
		}
	}
}
