package engine_test

import (
	"bytes"
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
		elem := func(binary, compact int) int { // elements that fit in max_message_bytes
			if mode.compact {
				return (fuzzMaxMessage - 256) / compact
			}
			return (fuzzMaxMessage - 256) / binary
		}
		for _, tc := range []struct {
			method string
			field  int16
			typ    thrift.TType
			n      int
			write  func(p thrift.TProtocol)
		}{
			{"mg_inserts", 5, thrift.STRING, elem(5, 2), func(p thrift.TProtocol) { p.WriteBinary(bg, []byte("v")) }},
			{"rd_call", 4, thrift.STRING, elem(4, 1), func(p thrift.TProtocol) { p.WriteString(bg, "") }},
			{"my_bulk_exec", 6, thrift.LIST, elem(5, 1), func(p thrift.TProtocol) {
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
