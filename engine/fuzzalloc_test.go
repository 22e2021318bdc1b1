package engine_test

import (
	"bytes"
	"github.com/fae-go/fae/engine"
	"runtime"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"
)

// TestFuzzManyShortValues: the requests that allocate the most for their size,
// each as large as max_message_bytes allows (lists of the shortest values:
// one-byte binaries, empty strings, empty lists), stay within FuzzSession's
// fuzzAllocPerCall in every mode, are decoded and answered, and leave faed
// serving. Measured: 5 to 17 times max_message_bytes for mg_inserts, up to 69
// for my_bulk_exec's lists of empty lists (a slice header for each byte, and
// the trace formatting them). Thrift v0.17's own ReadBinary fails this
// (mg_inserts: 330 times max_message_bytes in binary, 820 in compact): see
// engine/readbinary.go.
func TestFuzzManyShortValues(t *testing.T) {
	h := newFuzzHarness(t)
	for m, mode := range fuzzModes {
		// elem is the most elements of binary (compact) bytes on the wire
		// and mem bytes in the generated code's slice that fit in
		// max_message_bytes (exactBinary.checkCount).
		elem := func(binary, compact, mem int) int {
			wire := binary
			if mode.compact {
				wire = compact
			}
			return (fuzzMaxMessage - 256) / max(wire, mem/engine.MemPerMessageByte)
		}
		for _, tc := range []struct {
			method string
			field  int16
			typ    thrift.TType
			n      int
			write  func(p thrift.TProtocol)
		}{
			{"mg_inserts", 5, thrift.STRING, elem(5, 2, 16), func(p thrift.TProtocol) { p.WriteBinary(bg, []byte("v")) }},
			{"rd_call", 4, thrift.STRING, elem(4, 1, 16), func(p thrift.TProtocol) { p.WriteString(bg, "") }},
			{"my_bulk_exec", 6, thrift.LIST, elem(5, 1, 24), func(p thrift.TProtocol) {
				p.WriteListBegin(bg, thrift.STRING, 0)
				p.WriteListEnd(bg)
			}},
		} {
			data := seedFrame(mode, seedCall(t, mode, tc.method, func(p thrift.TProtocol, _ *bytes.Buffer) {
				seedCtx(t, p)
				p.WriteFieldBegin(bg, "list", thrift.LIST, tc.field)
				p.WriteListBegin(bg, tc.typ, tc.n)
				for range tc.n {
					tc.write(p)
				}
				p.WriteListEnd(bg)
				p.WriteFieldEnd(bg)
				seedEnd(p)
			}))
			calls, oversize := h.srv[m].Stats.Calls.Load(), h.srv[m].Stats.EndOversize.Load()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			h.session(t, m, data, nil)
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%s %s: %d values in %d bytes: %d bytes allocated (%.1f times max_message_bytes)",
				mode.name, tc.method, tc.n, len(data), alloc, float64(alloc)/fuzzMaxMessage)
			if alloc > fuzzAllocPerCall {
				t.Errorf("%s %s: %d bytes allocated, over %d", mode.name, tc.method, alloc, fuzzAllocPerCall)
			}
			if h.srv[m].Stats.Calls.Load() != calls+1 || h.srv[m].Stats.EndOversize.Load() != oversize {
				t.Errorf("%s %s (%d bytes): not answered, or refused as over max_message_bytes", mode.name, tc.method, len(data))
			}
			h.ping(t, m)
		}
	}
}

// TestDeclaredCountBound: a list header that declares more elements than
// max_message_bytes can hold, on the wire or in the memory the generated
// code takes for them before they arrive, ends the session as oversize at
// once, in every mode, allocating next to nothing: found by a hostile
// client's review, where a 60-byte my_bulk_exec declaring 16 million lists
// made faed allocate 384 MB, and 10 such sessions at a time grew it to 14 GB.
// The library's own check (count ≤ max_message_bytes) let a count of
// max_message_bytes lists through: 24 times max_message_bytes of slice.
// One element fewer than the bound (MemPerMessageByte × max_message_bytes of
// slice), absent, is let through and ends at the missing bytes (the client
// closed), allocating at most that much.
func TestDeclaredCountBound(t *testing.T) {
	h := newFuzzHarness(t)
	for m, mode := range fuzzModes {
		for _, tc := range []struct {
			name   string
			n      int
			refuse bool
		}{
			{"max_message_bytes lists", fuzzMaxMessage, true},
			{"lists of 24 bytes each past 4 × max_message_bytes", 4*fuzzMaxMessage/24 + 1, true},
			{"lists of 24 bytes each within 4 × max_message_bytes", 4 * fuzzMaxMessage / 24, false},
		} {
			data := seedFrame(mode, seedCall(t, mode, "my_bulk_exec", func(p thrift.TProtocol, _ *bytes.Buffer) {
				seedCtx(t, p)
				p.WriteFieldBegin(bg, "rows", thrift.LIST, 6)
				p.WriteListBegin(bg, thrift.LIST, tc.n) // and no element: the client stops there
			}))
			oversize := h.srv[m].Stats.EndOversize.Load()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			h.session(t, m, data, nil)
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%s: a list declaring %d lists in %d bytes: %d bytes allocated", mode.name, tc.n, len(data), alloc)
			if got := h.srv[m].Stats.EndOversize.Load() - oversize; got != map[bool]int64{true: 1, false: 0}[tc.refuse] {
				t.Errorf("%s, %s: %d sessions ended as oversize, want refused %t", mode.name, tc.name, got, tc.refuse)
			}
			if alloc > (engine.MemPerMessageByte+1)*fuzzMaxMessage {
				t.Errorf("%s, %s: %d bytes allocated, want at most %d times max_message_bytes (%d)", mode.name, tc.name, alloc, engine.MemPerMessageByte+1, fuzzMaxMessage)
			}
			h.ping(t, m)
		}
	}
}

// TestMessageTypeNotCall: a message head of type REPLY, EXCEPTION or ONEWAY
// ends the session as a protocol error, in every mode, before anything runs
// (the library ran them all as calls, and a ONEWAY sender would then read a
// reply it did not expect); the next session's ping is answered.
func TestMessageTypeNotCall(t *testing.T) {
	h := newFuzzHarness(t)
	for m, mode := range fuzzModes {
		for _, typ := range []thrift.TMessageType{thrift.REPLY, thrift.EXCEPTION, thrift.ONEWAY} {
			msg := seedMessage(t, mode, "ping", typ, func(p thrift.TProtocol, _ *bytes.Buffer) {
				seedCtx(t, p)
				seedEnd(p)
			})
			calls, proto := h.srv[m].Stats.Calls.Load(), h.srv[m].Stats.EndProtocol.Load()
			var reply bytes.Buffer
			h.session(t, m, seedFrame(mode, msg), &reply)
			if h.srv[m].Stats.Calls.Load() != calls || h.srv[m].Stats.EndProtocol.Load() != proto+1 || reply.Len() != 0 {
				t.Errorf("%s, a message of type %d: %d calls run, %d protocol ends, %d bytes answered; want none run, 1, none",
					mode.name, typ, h.srv[m].Stats.Calls.Load()-calls, h.srv[m].Stats.EndProtocol.Load()-proto, reply.Len())
			}
			h.ping(t, m)
		}
	}
}
