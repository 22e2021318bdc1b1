package metrics_test

import (
	"context"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/metrics"
	"github.com/fae-go/fae/servant"
)

// benchServant returns a servant without backends, observed by a Metrics
// (its fae_call_duration_seconds histogram) when observed is true. The other
// metrics read counters the pipeline keeps anyway, so the histogram is all
// that metrics add to a call.
func benchServant(b *testing.B, observed bool) (*servant.FunServant, *engine.Stats) {
	var cfg servant.Config
	cfg.SetDefaults()
	svt, err := servant.New(cfg, servant.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(svt.Close)
	st := new(engine.Stats)
	if observed {
		m := metrics.New(metrics.Sources{Engine: st, Servant: svt})
		b.Cleanup(m.Stop)
	}
	return svt, st
}

// BenchmarkServantPing is one ping through the servant's call pipeline
// (enter, body, leave), without and with the latency histogram: the
// difference is what metrics add per call.
func BenchmarkServantPing(b *testing.B) {
	for _, observed := range []bool{false, true} {
		name := map[bool]string{false: "bare", true: "histogram"}[observed]
		b.Run(name, func(b *testing.B) {
			svt, _ := benchServant(b, observed)
			c := &rpc.Context{Rid: 1, Reason: "bench"}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := svt.Ping(context.Background(), c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRPCPing is one ping call through a real engine server on loopback,
// with the client in the same process: its cpu-ns/op (server and client
// together) bounds from above the server CPU of a ping call.
func BenchmarkRPCPing(b *testing.B) {
	b.Run("bare", func(b *testing.B) { benchRPCPing(b, false) })
	b.Run("histogram", func(b *testing.B) { benchRPCPing(b, true) })
}

func benchRPCPing(b *testing.B, observed bool) {
	svt, _ := benchServant(b, observed)
	var cfg engine.Config
	cfg.SetDefaults()
	cfg.ListenAddr = "127.0.0.1:0"
	srv := engine.NewServer(cfg, rpc.NewFunServantProcessor(svt), slog.New(slog.DiscardHandler))
	ln, err := engine.Listen(cfg)
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	sock := thrift.NewTSocketConf(ln.Addr().String(), &thrift.TConfiguration{SocketTimeout: 5 * time.Second})
	trans := thrift.NewTBufferedTransport(sock, 4096)
	if err := trans.Open(); err != nil {
		b.Fatal(err)
	}
	defer trans.Close()
	client := rpc.NewFunServantClientFactory(trans, thrift.NewTBinaryProtocolFactoryConf(nil))
	c := &rpc.Context{Rid: 1, Reason: "bench"}
	cpu0 := cpuTime()
	for b.Loop() {
		if _, err := client.Ping(context.Background(), c); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// BenchmarkLatencyObserve is what leave adds per call with metrics on: one
// observation of a pre-curried child of fae_call_duration_seconds, through
// servant.LatencyObserver as the pipeline makes it.
func BenchmarkLatencyObserve(b *testing.B) {
	hv := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "fae_call_duration_seconds",
		Buckets: metrics.LatencyBuckets}, []string{"method"})
	var o servant.LatencyObserver = hv.WithLabelValues("ping")
	d := 30 * time.Microsecond
	b.ReportAllocs()
	for b.Loop() {
		o.Observe(d.Seconds())
	}
}
