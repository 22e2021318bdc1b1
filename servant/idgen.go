package servant

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/fae-go/fae/idl/fun/rpc"
)

// Layout of an id, MSB first, exactly as the original fae's (a Snowflake variant):
// 1 sign bit 0 | 41 bits ms since IDEpoch | 5 bits tag | 5 bits worker id | 12 bits sequence.
// 41 bits of ms last about 69.7 years from the epoch, until about 2083.
const (
	IDEpoch = 1388834974657 // ms since the Unix epoch: 2014-01-04 11:29:34.657 UTC (original fae)

	seqBits    = 12
	workerBits = 5
	tagBits    = 5

	maxSeq      = 1<<seqBits - 1    // 4095
	maxWorkerID = 1<<workerBits - 1 // 31
	maxTag      = 1<<tagBits - 1    // 31

	workerShift = seqBits                        // 12
	tagShift    = seqBits + workerBits           // 17
	tsShift     = seqBits + workerBits + tagBits // 22
)

// MaxClockBackwards is how far back the clock may jump before Next fails with
// ErrClockBackwards instead of waiting for it to catch up. NTP usually slews the
// clock; a step back longer than this is an operator's matter.
const MaxClockBackwards = time.Second

// IDGen makes ids for one worker id. Ids of one tag are strictly increasing;
// all ids are unique (the tag is part of the id). Safe for concurrent use.
type IDGen struct {
	mu       sync.Mutex
	workerID int64
	lastMs   int64 // ms since the Unix epoch of the last id
	seq      int64

	nowMs func() int64 // the clock, ms since the Unix epoch
	sleep func(time.Duration)
}

// NewIDGen returns a generator for workerID (0..31).
func NewIDGen(workerID int64) *IDGen {
	return &IDGen{workerID: workerID, nowMs: func() int64 { return time.Now().UnixMilli() }, sleep: time.Sleep}
}

// Next returns a new id with tag (0..31). Past 4096 ids in one ms it waits for
// the next ms. If the clock moved back, it waits until the clock passes the last
// id's ms, unless that is more than MaxClockBackwards away: then ErrClockBackwards.
func (g *IDGen) Next(tag int) (int64, error) {
	if tag < 0 || tag > maxTag {
		return 0, fmt.Errorf("%w: tag must be 0..%d, got %d", ErrBadTag, maxTag, tag)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.nowMs()
	if now < g.lastMs {
		behind := time.Duration(g.lastMs-now) * time.Millisecond
		if behind > MaxClockBackwards {
			return 0, fmt.Errorf("%w by %s (more than %s)", ErrClockBackwards, behind, MaxClockBackwards)
		}
		for now < g.lastMs {
			g.sleep(time.Duration(g.lastMs-now) * time.Millisecond)
			now = g.nowMs()
		}
	}
	if now == g.lastMs {
		g.seq++
		if g.seq > maxSeq { // 4096 ids in this ms: wait for the next one
			for now <= g.lastMs {
				g.sleep(100 * time.Microsecond)
				now = g.nowMs()
			}
			g.seq = 0
		}
	} else {
		g.seq = 0
	}
	g.lastMs = now
	return (now-IDEpoch)<<tsShift | int64(tag)<<tagShift | g.workerID<<workerShift | g.seq, nil
}

// DecodeID splits id into [ms since the Unix epoch, tag, worker id, sequence].
func DecodeID(id int64) []int64 {
	return []int64{
		id>>tsShift + IDEpoch,
		id >> tagShift & maxTag,
		id >> workerShift & maxWorkerID,
		id & maxSeq,
	}
}

// IDNext returns a new id with tag 0.
func (s *FunServant) IDNext(ctx context.Context, c *rpc.Context) (int64, error) {
	return run(s, ctx, "id.next", c, true, nil, func(g *generation) (int64, error) { return s.nextID(0) })
}

// IDNextWithTag returns a new id with tag (0..31).
func (s *FunServant) IDNextWithTag(ctx context.Context, c *rpc.Context, tag int16) (int64, error) {
	return run(s, ctx, "id.nextag", c, true, func() string { return targs("tag", tag) }, func(g *generation) (int64, error) { return s.nextID(int(tag)) })
}

// IDDecode returns [ms since the Unix epoch, tag, worker id, sequence] of id. No Context check.
func (s *FunServant) IDDecode(ctx context.Context, c *rpc.Context, id int64) ([]int64, error) {
	return run(s, ctx, "id.decode", c, false, func() string { return targs("id", id) }, func(g *generation) ([]int64, error) { return DecodeID(id), nil })
}

// nextID is the next id of tag, unless another live member holds this node's
// worker id (then its error names both nodes).
func (s *FunServant) nextID(tag int) (int64, error) {
	if s.opts.IDConflict != nil {
		if err := s.opts.IDConflict(); err != nil {
			return 0, err
		}
	}
	return s.idgen.Next(tag)
}
