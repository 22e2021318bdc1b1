package servant

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
)

// Request tracing (the original fae's "profiler") and calls by reason.
//
// A web request's calls share its rid. The servant keeps, for each of the
// last servants.session_max_items rids seen (an LRU, as the original's
// rid-session map), the time of the rid's first call and the counter of its
// reason. Every call of a traced rid, and every slow call (over
// call_slow_threshold), is written to the trace stream (Options.TraceLogger)
// with its method, rid, reason, uid, elapsed time, time since the rid's first
// call and its arguments cut at profiler_max_body_size bytes.

// MaxReasons bounds the distinct normalised reasons counted; calls with any
// other reason are counted under OtherReason. The original's reason map grew
// without limit (ORIGINAL-FAE.md §1.2): a client putting ids with letters in
// its reasons grew it forever. 1000 is far more than the controller.action
// pairs of an application.
const MaxReasons = 1000

// MaxReasonBytes cuts a normalised reason, so that the reasons held are
// bounded by MaxReasons × MaxReasonBytes (128 KB).
const MaxReasonBytes = 128

// OtherReason is the reason under which calls past MaxReasons distinct
// reasons are counted.
const OtherReason = "(other)"

// TraceHashSeed is fixed so that every node and every run traces the same
// rids: a rid is traced iff xxhash64(seed, rid as 8 little-endian bytes) mod
// 10000 < profiler_rate. The original drew rand(0..9999) per node, so one
// request was traced on some nodes and not others.
const traceHashSeed = 0

// Traced reports whether rid is traced at rate (profiler_rate, per 10,000
// rids): xxhash64 of the rid's 8 little-endian bytes, mod 10,000, below rate.
// The same on every node and every run.
func Traced(rid int64, rate int) bool {
	if rate <= 0 {
		return false
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(rid))
	return xxhash.Sum64(b[:])%10000 < uint64(rate)
}

// ridSessions keep each rid's first call: a table of session_max_items
// slots (rounded up to a power of two), one atomic word each, a rid's slot
// chosen by Fibonacci hashing (Knuth, TAOCP vol. 3 §6.4). A word holds the
// rid's fingerprint (the hash's low 32 bits) and its first call in ms since
// the table began (mod 2^32: since-first is right for requests shorter than
// 49 days). A rid whose slot another rid took starts afresh, as a rid evicted
// from the original's LRU did. It never locks: golang-lru's LRU, under one
// lock or 16, cost 170-400 ns a call on two cores (BenchmarkRidTouch), this
// about 5. Memory: 8 bytes a slot (160 KiB at the default 20,480).
type ridSessions struct {
	slots []atomic.Uint64
	shift uint // 64 - log2(len(slots))
	epoch time.Time
}

func newRidSessions(maxItems int) *ridSessions {
	bits := uint(1)
	for 1<<bits < maxItems {
		bits++
	}
	return &ridSessions{slots: make([]atomic.Uint64, 1<<bits), shift: 64 - bits, epoch: time.Now()}
}

// touch records a call of rid at now and returns the time since the rid's
// first call, in whole ms (0 for its first call).
func (r *ridSessions) touch(rid int64, now time.Time) (sinceFirst time.Duration) {
	h := uint64(rid) * 0x9E3779B97F4A7C15
	slot := &r.slots[h>>r.shift]
	fp := h & 0xffffffff
	nowMs := uint32(now.Sub(r.epoch) / time.Millisecond)
	w := slot.Load()
	if w>>32 == fp {
		return time.Duration(nowMs-uint32(w)) * time.Millisecond // mod 2^32
	}
	slot.Store(fp<<32 | uint64(nowMs))
	return 0
}

// reasonCounts count calls by normalised reason (each run of digits → "?",
// as the original: call.init.567 → call.init.?), at most MaxReasons distinct
// ones plus OtherReason. Safe for concurrent use.
type reasonCounts struct {
	raw     [rawSlots]atomic.Pointer[rawReason] // see lookup
	rawSeed maphash.Seed
	rawSize int // entries in raw; guarded by mu
	mu      sync.RWMutex
	m       map[string]*stripedCount
	other   stripedCount
}

// rawReason is an entry of reasonCounts.raw: a raw reason and the counter of
// its normalised form.
type rawReason struct {
	reason string
	c      *stripedCount
}

// rawSlots is the size of reasonCounts.raw: a power of two at least twice
// maxRawReasons, so the table is never more than half full. Memory: 8 bytes
// a slot (64 KiB).
const rawSlots = 8192

// maxRawReasons bounds the raw reasons remembered with their counter; a
// reason past it is normalised at each of its calls. Raw reasons differ from
// normalised ones only by their digits (call.init.567, call.init.568), so
// 4 × MaxReasons is room for a few variants each.
const maxRawReasons = 4 * MaxReasons

// add counts one call of rid with reason: a lock-free lookup of a reason
// seen before, and an add to the stripe of the counter that rid picks.
func (rc *reasonCounts) add(reason string, rid int64) {
	h := maphash.String(rc.rawSeed, reason)
	if c := rc.lookup(reason, h); c != nil {
		c.add(rid)
		return
	}
	c := rc.counter(reason)
	c.add(rid)
	rc.remember(reason, h, c)
}

// lookup returns the counter of a raw reason seen before (h its hash), nil
// if none. raw is an open-addressing table with linear probing (Knuth, TAOCP
// vol. 3 §6.4, algorithm L) whose entries are only ever added, each with one
// atomic store into an empty slot, so a lookup takes no lock and allocates
// nothing. It replaced a sync.Map, whose lookup (the key boxed in an
// interface, hashed, a trie walked) was a sixth of the instructions of a
// cached lc_get (callgrind, BenchmarkLcache).
func (rc *reasonCounts) lookup(reason string, h uint64) *stripedCount {
	for i := h; ; i++ {
		e := rc.raw[i%rawSlots].Load()
		if e == nil {
			return nil
		}
		if e.reason == reason {
			return e.c
		}
	}
}

// remember adds reason (h its hash) and its counter c to raw, unless it is
// there already or raw holds maxRawReasons entries.
func (rc *reasonCounts) remember(reason string, h uint64, c *stripedCount) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.rawSize >= maxRawReasons {
		return
	}
	for i := h; ; i++ {
		slot := &rc.raw[i%rawSlots]
		e := slot.Load()
		if e == nil {
			slot.Store(&rawReason{reason: strings.Clone(reason), c: c})
			rc.rawSize++
			return
		}
		if e.reason == reason {
			return
		}
	}
}

func newReasonCounts() *reasonCounts {
	return &reasonCounts{m: map[string]*stripedCount{}, rawSeed: maphash.MakeSeed()}
}

// countStripes is the number of cache lines a reason's count is spread over:
// every core adds to a busy reason at once, and one shared word bounced
// between the cores' caches (BenchmarkPipelineTracing: +35 ns a call on two
// cores). A power of two, at least the cores of a usual faed host. Memory:
// 512 bytes a reason, 512 KB at MaxReasons.
const countStripes = 8

// stripedCount is a counter split into countStripes padded words, one picked
// by the caller's rid, summed when read.
type stripedCount [countStripes]struct {
	n atomic.Int64
	_ [56]byte // one cache line (64 bytes) each
}

func (c *stripedCount) add(rid int64) { c[uint64(rid)*0x9E3779B97F4A7C15>>61].n.Add(1) }

func (c *stripedCount) load() int64 {
	var sum int64
	for i := range c {
		sum += c[i].n.Load()
	}
	return sum
}

// counter returns the counter of reason's normalised form.
func (rc *reasonCounts) counter(reason string) *stripedCount {
	norm := normaliseReason(reason)
	rc.mu.RLock()
	c := rc.m[norm]
	rc.mu.RUnlock()
	if c != nil {
		return c
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if c = rc.m[norm]; c != nil {
		return c
	}
	if len(rc.m) >= MaxReasons {
		return &rc.other
	}
	c = new(stripedCount)
	rc.m[strings.Clone(norm)] = c
	return c
}

// normaliseReason folds each run of digits into "?" and cuts at
// MaxReasonBytes; a reason without digits is returned as it is (no copy).
func normaliseReason(reason string) string {
	if strings.IndexAny(reason, "0123456789") < 0 && len(reason) <= MaxReasonBytes {
		return reason
	}
	n := engine.NormaliseMessage(reason)
	if len(n) > MaxReasonBytes {
		n = strings.ToValidUTF8(n[:MaxReasonBytes], "")
	}
	return n
}

// snapshot returns the counts by reason, OtherReason included when non-zero.
func (rc *reasonCounts) snapshot() map[string]int64 {
	rc.mu.RLock()
	out := make(map[string]int64, len(rc.m)+1)
	for k, c := range rc.m {
		out[k] = c.load()
	}
	rc.mu.RUnlock()
	if n := rc.other.load(); n > 0 {
		out[OtherReason] = n
	}
	return out
}

// ReasonCount is one reason's calls.
type ReasonCount struct {
	Reason string `json:"reason"`
	Calls  int64  `json:"calls"`
}

// Reasons returns the calls by normalised reason since start, most first (then
// by reason): at most MaxReasons+1 rows, OtherReason counting the calls whose
// reason came after MaxReasons distinct ones. Calls refused for their Context
// are not counted.
func (s *FunServant) Reasons() []ReasonCount {
	m := s.reasons.snapshot()
	out := make([]ReasonCount, 0, len(m))
	for r, n := range m {
		out = append(out, ReasonCount{r, n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Calls != out[j].Calls {
			return out[i].Calls > out[j].Calls
		}
		return out[i].Reason < out[j].Reason
	})
	return out
}

// Traces returns the calls written to the trace stream since start: traced
// (their rid is sampled) and slow (over call_slow_threshold, traced or not).
func (s *FunServant) Traces() (traced, slow int64) { return s.traced.Load(), s.tracedSlow.Load() }

// traceCall writes one call to the trace stream: its method, rid, reason,
// uid, elapsed and since-first times in ms, whether it was slow, its error and
// its arguments (args(), cut at max bytes followed by "..."; none when args is
// nil).
func (s *FunServant) traceCall(cl *call, elapsed time.Duration, slow bool, maxBody int, err error, args func() string) {
	if slow {
		s.tracedSlow.Add(1)
	} else {
		s.traced.Add(1)
	}
	attrs := make([]slog.Attr, 0, 10)
	attrs = append(attrs, slog.String("method", cl.name), slog.Int64("rid", rid(cl.c)),
		slog.String("reason", reason(cl.c)), slog.Int64("uid", uid(cl.c)),
		slog.Float64("elapsed_ms", ms(elapsed)), slog.Float64("since_first_ms", ms(cl.sinceFirst+elapsed)),
		slog.Bool("slow", slow))
	if err != nil {
		attrs = append(attrs, slog.String("err", err.Error()))
	}
	if args != nil && maxBody > 0 {
		attrs = append(attrs, slog.String("args", cut(args(), maxBody)))
	}
	s.trace.LogAttrs(context.Background(), slog.LevelInfo, "call", attrs...)
}

// targs formats a call's arguments for the trace stream from name, value
// pairs: name=value separated by spaces; strings and string lists quoted,
// []byte and memcache values as their size (binary), bsonArg as MongoDB
// extended JSON.
func targs(kv ...any) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%v=", kv[i])
		switch v := kv[i+1].(type) {
		case string:
			b.WriteString(strconv.Quote(v))
		case []string:
			fmt.Fprintf(&b, "%q", v)
		case []byte:
			fmt.Fprintf(&b, "<%d bytes>", len(v))
		case *rpc.TMemcacheData:
			if v == nil {
				b.WriteString("<nil>")
			} else {
				fmt.Fprintf(&b, "<%d bytes, flags %d>", len(v.Data), v.Flags)
			}
		default:
			fmt.Fprintf(&b, "%v", v)
		}
	}
	return b.String()
}

// bsonArg is a BSON document argument, traced as extended JSON (its size when
// it is not a valid document).
type bsonArg []byte

func (a bsonArg) String() string {
	if len(a) == 0 {
		return "{}"
	}
	if err := bson.Raw(a).Validate(); err != nil {
		return fmt.Sprintf("<%d bytes, not BSON>", len(a))
	}
	return bson.Raw(a).String()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// cut returns s cut at max bytes (on a UTF-8 boundary) followed by "...", as
// the original's profiler_max_body_size; s when it is no longer. max 0 = no
// arguments at all.
func cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max], "") + "..."
}

func uid(c *rpc.Context) int64 {
	if c == nil {
		return 0
	}
	return c.UID
}
