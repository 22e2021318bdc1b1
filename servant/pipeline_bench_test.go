package servant

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/fae-go/fae/idl/fun/rpc"
)

// BenchmarkPipelineTracing is the per-call cost of the call pipeline (enter,
// leave) around an empty body, from every core at once, for calls whose rid
// is not traced, without and with what tracing and reasons add:
//
//   - off: a call without a Context (id_decode's path): no rid noted, no
//     reason counted, no sampling decision;
//   - on: a checked call with the defaults (profiler_rate 1,
//     call_slow_threshold 2s): its rid noted, its reason counted, the
//     sampling decision made (not traced).
//
// Each worker plays web requests of 10 calls with a rid of their own, with a
// reason that has digits ("call.init.567", normalised to "call.init.?"). The
// body has an args closure as the methods do; on − off is the cost of tracing
// and reasons for an untraced call. Run with -cpu 1,2.
func BenchmarkPipelineTracing(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(map[bool]string{false: "off", true: "on"}[on], func(b *testing.B) {
			var cfg Config
			cfg.SetDefaults()
			s, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(s.Close)
			var workers atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				rid := workers.Add(1) << 40 // each worker its own requests, as php-fpm workers
				c := &rpc.Context{Rid: rid, Reason: "call.init.567"}
				key := "user:1"
				for n := 0; pb.Next(); n++ {
					if n%10 == 0 {
						rid++
						for Traced(rid, cfg.ProfilerRate) { // untraced rids only
							rid++
						}
						c.Rid = rid
					}
					cc := c
					if !on {
						cc = nil
					}
					run(s, context.Background(), "ping", cc, on, func() string { return targs("key", key) },
						func(*generation) (int, error) { return 0, nil })
				}
			})
			if traced, slow := s.Traces(); traced+slow != 0 {
				b.Fatalf("%d calls traced, %d slow: want none", traced, slow)
			}
		})
	}
}
