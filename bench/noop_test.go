// Package bench holds fae's benchmark suites. Figures, not pass/fail:
//
//	make bench    (go test -run '^$' -bench . -benchtime 3s ./bench/...)
package bench

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/servant"
)

// BenchmarkNoop measures noop calls/s over loopback TCP, binary protocol,
// buffered transport, 16 concurrent sessions (one Go client each), through
// fae's engine and, as the baseline in the same run, through the Apache Thrift
// library's own TSimpleServer serving the same processor.
func BenchmarkNoop(b *testing.B) {
	svt, err := servant.New(servant.Config{IdgenWorkerID: 1}, servant.Options{})
	if err != nil {
		b.Fatal(err)
	}
	proc := rpc.NewFunServantProcessor(svt)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	b.Run("server=fae/sessions=16", func(b *testing.B) {
		var cfg engine.Config
		cfg.SetDefaults()
		cfg.ListenAddr = "127.0.0.1:0"
		cfg.SessionTimeout, cfg.IOTimeout = 0, 0
		srv := engine.NewServer(cfg, proc, quiet)
		ln, err := net.Listen("tcp", cfg.ListenAddr)
		if err != nil {
			b.Fatal(err)
		}
		go srv.Serve(ln)
		defer srv.Close()
		runNoop(b, ln.Addr().String(), 16)
	})

	b.Run("server=thrift-TSimpleServer/sessions=16", func(b *testing.B) {
		sock, err := thrift.NewTServerSocket("127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		if err := sock.Listen(); err != nil {
			b.Fatal(err)
		}
		srv := thrift.NewTSimpleServer4(proc, sock, thrift.NewTBufferedTransportFactory(4096),
			thrift.NewTBinaryProtocolFactoryConf(nil))
		go srv.Serve()
		defer srv.Stop()
		runNoop(b, sock.Addr().String(), 16)
	})
}

func runNoop(b *testing.B, addr string, sessions int) {
	b.SetParallelism((sessions + 1) / 2) // × GOMAXPROCS goroutines; one session each
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		sock := thrift.NewTSocketConf(addr, &thrift.TConfiguration{ConnectTimeout: 5 * time.Second})
		trans := thrift.NewTBufferedTransport(sock, 4096)
		if err := trans.Open(); err != nil {
			b.Error(err)
			return
		}
		defer trans.Close()
		c := rpc.NewFunServantClientFactory(trans, thrift.NewTBinaryProtocolFactoryConf(nil))
		for pb.Next() {
			if _, err := c.Noop(context.Background(), 1); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
}
