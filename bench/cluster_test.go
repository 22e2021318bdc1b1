package bench

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
	"github.com/fae-go/fae/peer"
)

// BenchmarkForwardedLock compares, in one run, a lock answered by the node
// called (its own key) with a lock forwarded to the key's owner: two faed
// processes registered in a private ZooKeeper, 16 persistent sessions on the
// first node, alternating rounds (FAE_BENCH_ROUNDS, default 3; window
// FAE_BENCH_DURATION, default 3s). It prints calls/s and p50/p99 of each and
// the ratios; nothing is asserted on the figures.
func BenchmarkForwardedLock(b *testing.B) {
	rounds := envInt(b, "FAE_BENCH_ROUNDS", 3, 1, 50)
	window := envDuration(b, "FAE_BENCH_DURATION", 3*time.Second, 100*time.Millisecond, 5*time.Minute)
	sessions := envInt(b, "FAE_BENCH_SESSIONS", 16, 1, 1024)
	dir := b.TempDir()
	bin := os.Getenv("FAED_BIN")
	if bin == "" {
		bin = buildFaed(b, dir)
	}
	zk := testenv.StartZooKeeper(b)
	conf := func(worker int) func(addr string) string {
		return func(addr string) string {
			return fmt.Sprintf(`{
    etcd_servers: [%q]
    peer: { session_timeout: "2s" }
    rpc: { listen_addr: %q, session_timeout: "0s", io_timeout: "0s" }
    servants: {
        idgen_worker_id: %d
        lock: { expires: "1s" }
        proxy: { pool_capacity: %d }
    }
}`, zk.Addr(), addr, worker, sessions)
		}
	}
	n0 := startFaedProcConf(b, bin, dir, conf(1))
	n1 := startFaedProcConf(b, bin, dir, conf(2))
	ring := peer.NewRing([]string{n0.addr, n1.addr})
	keys := map[string][]string{}
	for i := 0; len(keys[n0.addr]) < 10000 || len(keys[n1.addr]) < 10000; i++ {
		k := fmt.Sprintf("benchlock:%d", i)
		owner, _ := ring.Owner(k)
		keys[owner] = append(keys[owner], k)
	}
	pool, err := openSessions(n0.addr, sessions)
	if err != nil {
		b.Fatal(err)
	}
	defer closeSessions(pool)
	lockOn := func(ks []string) callFunc {
		var i atomic.Int64
		return func(s *session) error {
			_, err := s.client.Lock(context.Background(), benchContext, "bench", ks[i.Add(1)%int64(len(ks))])
			return err
		}
	}
	// Wait until node 0 routes by the two-member ring: a lock of node 1's key
	// through node 0 is then held on node 1, so node 1 answers it false.
	testenv.Eventually(b, 30*time.Second, "node 0 forwarding to node 1", func() bool {
		k := keys[n1.addr][0] + fmt.Sprint(time.Now().UnixNano())
		if owner, _ := ring.Owner(k); owner != n1.addr {
			return false
		}
		got, err := pool[0].client.Lock(context.Background(), benchContext, "probe", k)
		if err != nil || !got {
			return false
		}
		c1, err := dialSession(n1.addr, time.Second)
		if err != nil {
			return false
		}
		defer c1.close()
		again, err := c1.client.Lock(context.Background(), benchContext, "probe", k)
		return err == nil && !again
	})
	var local, fwd []loadResult
	for b.Loop() {
		for r := range rounds {
			for _, which := range []int{r % 2, (r + 1) % 2} {
				ks, name := keys[n0.addr], "local"
				if which == 1 {
					ks, name = keys[n1.addr], "forwarded"
				}
				res, err := runLoad(n0, pool, lockOn(ks), warmup, window)
				if err != nil {
					b.Fatalf("%s lock: %v\n%s", name, err, n0.output())
				}
				if which == 1 {
					fwd = append(fwd, res)
				} else {
					local = append(local, res)
				}
				fmt.Printf("lock round %d/%d %-9s %8.0f calls/s  p50 %6.0f µs  p99 %6.0f µs  node0 CPU %5.1f µs/call\n",
					r+1, rounds, name, res.callsPerSec(), us(res.p50), us(res.p99), res.cpuPerCall())
			}
		}
	}
	med := func(rs []loadResult, f func(loadResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return spreadOf(v).med
	}
	cps := func(r loadResult) float64 { return r.callsPerSec() }
	p99 := func(r loadResult) float64 { return us(r.p99) }
	fmt.Printf("lock, %d sessions on node 0, median of %d rounds: local %.0f calls/s p99 %.0f µs; forwarded %.0f calls/s p99 %.0f µs; forwarded/local calls/s %.2f, p99 %.2f\n",
		sessions, rounds, med(local, cps), med(local, p99), med(fwd, cps), med(fwd, p99),
		med(fwd, cps)/med(local, cps), med(fwd, p99)/med(local, p99))
	b.ReportMetric(med(fwd, cps)/med(local, cps), "fwd/local-calls/s")
	b.ReportMetric(0, "ns/op")
}
