package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/gomodule/redigo/redis"

	"github.com/fae-go/fae/internal/testenv"
	"github.com/fae-go/fae/peer"
)

// scenarioMyQuery is 4: my_query of one row by primary key through faed
// uncached and with a cacheKey hit, beside noop on the same faed and a direct
// database/sql prepared query, against a private MariaDB.
func scenarioMyQuery(s *suite) {
	mdb := testenv.StartMariaDB(s.b)
	admin := testenv.OpenMySQL(s.b, mdb.Addr(), "")
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS faeb_Global",
		"CREATE TABLE IF NOT EXISTS faeb_Global.BenchUser (uid BIGINT PRIMARY KEY, name VARCHAR(64), gold INT)",
		"REPLACE INTO faeb_Global.BenchUser VALUES (1, 'bench', 100)",
	} {
		if _, err := admin.Exec(q); err != nil {
			s.b.Fatalf("%s: %v", q, err)
		}
	}
	f, pid := s.startFaed("", fmt.Sprintf(`mysql: {
            servers: [ { pool: "Global", host: "127.0.0.1", port: %d, db: "faeb_Global", username: "fae", password: "fae", charset: "utf8mb4" } ]
            global_pools: ["Global"]
            max_idle_conns_per_server: 64
            max_conns_per_server: 128
            cache_prepare_stmt_max_items: 64
        }`, mdb.Port))
	const q = "SELECT uid, name, gold FROM BenchUser WHERE uid = ?"
	myQuery := func(cacheKey string) callFunc {
		return func(sess *session) error {
			r, err := sess.client.MyQuery(context.Background(), benchContext, "Global", "BenchUser", 0, q, []string{"1"}, cacheKey)
			if err == nil && len(r.GetRows()) != 1 {
				err = fmt.Errorf("my_query answered %d rows, want 1", len(r.GetRows()))
			}
			return err
		}
	}
	db := testenv.OpenMySQL(s.b, mdb.Addr(), "faeb_Global")
	db.SetMaxIdleConns(64)
	stmt, err := db.Prepare(q)
	if err != nil {
		s.b.Fatal(err)
	}
	defer stmt.Close()
	be := []int{mdb.Pid()}
	s.runLevels("4 my_query", twoLevels, []variant{
		{name: "faed noop", server: []int{pid}, backend: be, open: persistent(f.addr, noopCall)},
		{name: "faed uncached", server: []int{pid}, backend: be, open: persistent(f.addr, myQuery(""))},
		{name: "faed cacheKey hit", server: []int{pid}, backend: be, open: persistent(f.addr, myQuery("bench:user:1"))},
		{name: "database/sql direct", backend: be, open: func() (func() error, func(), error) {
			var uid, gold int
			var name string
			return func() error { return stmt.QueryRow("1").Scan(&uid, &name, &gold) }, func() {}, nil
		}},
	})
	f.stop(s.b)
}

// twemproxyConf is nutcracker's config: pool mc on mcListen for memcached
// mcAddr, pool rd on rdListen for Redis rdAddr (/work/shared/BACKENDS.md §8b).
func twemproxyConf(mcListen, mcAddr, rdListen, rdAddr string) string {
	return fmt.Sprintf(`mc:
  listen: %s
  hash: fnv1a_64
  distribution: ketama
  timeout: 4000
  servers:
   - %s:1
rd:
  listen: %s
  redis: true
  hash: fnv1a_64
  distribution: ketama
  timeout: 4000
  servers:
   - %s:1
`, mcListen, mcAddr, rdListen, rdAddr)
}

// scenarioProxy is 5: mc_get and rd_call GET of a 100-byte value through
// faed, through twemproxy, and directly to a private memcached and Redis.
func scenarioProxy(s *suite) {
	bin, err := exec.LookPath("nutcracker")
	if err != nil {
		s.b.Fatalf("nutcracker (twemproxy) not installed: bash contrib/install-deps: %v", err)
	}
	mcd, rds := testenv.StartMemcached(s.b), testenv.StartRedis(s.b)
	mcListen, rdListen := testenv.FreeAddr(s.b), testenv.FreeAddr(s.b)
	conf := filepath.Join(s.dir, "twemproxy.yml")
	if err := os.WriteFile(conf, []byte(twemproxyConf(mcListen, mcd.Addr(), rdListen, rds.Addr())), 0o644); err != nil {
		s.b.Fatal(err)
	}
	tw := s.startChild("nutcracker", mcListen, bin, "-c", conf, "-o", filepath.Join(s.dir, "twemproxy.log"))
	f, pid := s.startFaed("", fmt.Sprintf(`memcache: { servers: [ { pool: "default", host: "127.0.0.1", port: %d } ], max_idle_conns_per_server: 256, max_conns_per_server: 512 }
        redis: { pools: [ { name: "default", servers: [ { addr: %q, max_idle: 256, max_active: 512 } ] } ] }`,
		mcd.Port, rds.Addr()))
	key, value := "bench:proxy:key", bytes.Repeat([]byte{'v'}, 100)
	direct := memcache.New(mcd.Addr())
	if err := direct.Set(&memcache.Item{Key: key, Value: value}); err != nil {
		s.b.Fatal(err)
	}
	rc, err := redis.Dial("tcp", rds.Addr())
	if err != nil {
		s.b.Fatal(err)
	}
	if _, err := rc.Do("SET", key, value); err != nil {
		s.b.Fatal(err)
	}
	rc.Close()
	be := []int{mcd.Pid()}
	// faed with servants.memcache.coalesce off (a connection per get, as
	// before issue 12), alternated with the default in each round.
	mcOff := startFaedProcConf(s.b, s.faedBin, s.dir, suiteFaedConf("", "", fmt.Sprintf(
		`memcache: { coalesce: false, servers: [ { pool: "default", host: "127.0.0.1", port: %d } ], max_idle_conns_per_server: 256, max_conns_per_server: 512 }`, mcd.Port)))
	mcGet := func(sess *session) error {
		d, err := sess.client.McGet(context.Background(), benchContext, "default", key)
		return checkValue(d.GetData(), err, value)
	}
	s.runLevels("5 mc_get", sweepLevels, []variant{
		{name: "faed", server: []int{pid}, backend: be, open: persistent(f.addr, mcGet)},
		{name: "faed coalesce off", server: []int{mcOff.cmd.Process.Pid}, backend: be, open: persistent(mcOff.addr, mcGet)},
		{name: "twemproxy", server: []int{tw.Process.Pid}, backend: be, open: memcacheOpen(mcListen, key, value)},
		{name: "memcached direct", backend: be, open: memcacheOpen(mcd.Addr(), key, value)},
	})
	mcOff.stop(s.b)
	be = []int{rds.Pid()}
	// faed with servants.redis.pipeline off (every call on a connection of
	// its own, as before issue 12), alternated with the default in each round.
	fOff := startFaedProcConf(s.b, s.faedBin, s.dir, suiteFaedConf("", "", fmt.Sprintf(
		`redis: { pipeline: false, pools: [ { name: "default", servers: [ { addr: %q, max_idle: 256, max_active: 512 } ] } ] }`, rds.Addr())))
	rdGet := func(sess *session) error {
		r, err := sess.client.RdCall(context.Background(), benchContext, "GET", "default", []string{key})
		return checkValue([]byte(r), err, value)
	}
	// The Go floor: faed's bytes of an rd_call GET and of its reply, through
	// a minimal Go proxy on a pipelined connection (bench/baseline/goproxy).
	rdReq, rdResp, err := byteCounts(f.addr, rdGet)
	if err != nil {
		s.b.Fatal(err)
	}
	gpAddr := testenv.FreeAddr(s.b)
	gp := s.startChild("goproxy", gpAddr, goBuild(s.b, s.dir, "goproxy", "github.com/fae-go/fae/bench/baseline/goproxy"),
		"-addr", gpAddr, "-redis", rds.Addr(), "-key", key, "-size", strconv.Itoa(len(value)),
		"-req", strconv.Itoa(rdReq), "-resp", strconv.Itoa(rdResp))
	s.logf("Go proxy floor: %d B a request, %d B a reply (faed's rd_call GET)", rdReq, rdResp)
	s.runLevels("5 redis GET", sweepLevels, []variant{
		{name: "faed", server: []int{pid}, backend: be, open: persistent(f.addr, rdGet)},
		{name: "faed pipeline off", server: []int{fOff.cmd.Process.Pid}, backend: be, open: persistent(fOff.addr, rdGet)},
		{name: "twemproxy", server: []int{tw.Process.Pid}, backend: be, open: redisOpen(rdListen, key, value)},
		{name: "Go proxy floor", server: []int{gp.Process.Pid}, backend: be, open: echoPersistent(gpAddr, rdReq, rdResp)},
		{name: "redis direct", backend: be, open: redisOpen(rds.Addr(), key, value)},
	})
	fOff.stop(s.b)
	f.stop(s.b)
}

func checkValue(got []byte, err error, want []byte) error {
	if err == nil && !bytes.Equal(got, want) {
		err = fmt.Errorf("answered %d bytes, want the %d set", len(got), len(want))
	}
	return err
}

// memcacheOpen is a worker with its own gomemcache client (one connection) to addr.
func memcacheOpen(addr, key string, value []byte) func() (func() error, func(), error) {
	return func() (func() error, func(), error) {
		c := memcache.New(addr)
		c.Timeout = callTimeout
		return func() error {
			it, err := c.Get(key)
			if err != nil {
				return err
			}
			return checkValue(it.Value, nil, value)
		}, func() { c.Close() }, nil
	}
}

// redisOpen is a worker with its own redigo connection to addr.
func redisOpen(addr, key string, value []byte) func() (func() error, func(), error) {
	return func() (func() error, func(), error) {
		c, err := redis.Dial("tcp", addr, redis.DialReadTimeout(callTimeout), redis.DialWriteTimeout(callTimeout))
		if err != nil {
			return nil, nil, err
		}
		return func() error {
			got, err := redis.Bytes(c.Do("GET", key))
			return checkValue(got, err, value)
		}, func() { c.Close() }, nil
	}
}

// scenarioForward is 6: a lock whose key the called node owns (answered
// locally) vs one whose key a second faed owns (forwarded): two faeds in a
// cluster with a private ZooKeeper; the server CPU is both nodes'.
func scenarioForward(s *suite) {
	zk := testenv.StartZooKeeper(s.b)
	if s.profile != "" {
		s.pprofAddr = testenv.FreeAddr(s.b)  // node 0's, the node called
		s.pprofAddr2 = testenv.FreeAddr(s.b) // node 1's, the owner of the forwarded keys
	}
	conf := func(worker int) func(addr string) string {
		pp := s.pprofAddr
		if worker == 2 {
			pp = s.pprofAddr2
		}
		return func(addr string) string {
			return fmt.Sprintf(`{
    pprof_listen_addr: %q
    etcd_servers: [%q]
    peer: { session_timeout: "2s" }
    rpc: { listen_addr: %q, session_timeout: "0s", io_timeout: "0s" }
    servants: { idgen_worker_id: %d, lock: { expires: "1s" }, proxy: { pool_capacity: 64 } }
}`, pp, zk.Addr(), addr, worker)
		}
	}
	n0 := startFaedProcConf(s.b, s.faedBin, s.dir, conf(1))
	n1 := startFaedProcConf(s.b, s.faedBin, s.dir, conf(2))
	keys := clusterKeys(s.b, n0, n1)
	both := []int{n0.cmd.Process.Pid, n1.cmd.Process.Pid}
	// The lock of a new key each time goes through the generated Thrift
	// client, as a PHP or Go client's would. Requests encoded ahead and
	// replayed (as the other scenarios' persistent workers do) leave the
	// cores idler, and faed's scheduler then spins more per call: forwarded /
	// local at c=16 measured 2.6-2.9 that way, for the build of 30 November as
	// for that of 1 December, against 2.35-2.57 with this client.
	lockOn := func(ks []string) func() (func() error, func(), error) {
		var i atomic.Int64
		return thriftPersistent(n0.addr, func(sess *session) error {
			_, err := sess.client.Lock(context.Background(), benchContext, "bench", ks[i.Add(1)%int64(len(ks))])
			return err
		})
	}
	s.runLevels("6 lock forwarded", twoLevels, []variant{
		{name: "local", server: both, open: lockOn(keys[n0.addr])},
		{name: "forwarded", server: both, open: lockOn(keys[n1.addr])},
	})
	n0.stop(s.b)
	n1.stop(s.b)
}

// scenarioIdle is 7: faed's RSS holding 10,000 idle sessions (each has made
// one ping), beside the bare TSimpleServer holding as many.
func scenarioIdle(s *suite) {
	const n = 10000
	f, pid := s.startFaed("", "")
	simpleAddr := testenv.FreeAddr(s.b)
	simple := s.startChild("simple", simpleAddr, s.simpleBin, "-addr", simpleAddr)
	for _, v := range []struct {
		name, addr string
		pid        int
	}{{"faed", f.addr, pid}, {"TSimpleServer", simpleAddr, simple.Process.Pid}} {
		before, err := pidRSSKiB(v.pid)
		if err != nil {
			s.b.Fatal(err)
		}
		w, err := openWorkers(variant{name: v.name, open: thriftPersistent(v.addr, pingCall)}, n)
		if err != nil {
			s.b.Fatalf("7 idle sessions: %v", err)
		}
		after, err := pidRSSKiB(v.pid)
		w.close()
		if err != nil {
			s.b.Fatal(err)
		}
		line := fmt.Sprintf("7 idle sessions: %-13s RSS %.1f MiB with none, %.1f MiB holding %d idle sessions: %.1f KiB per session",
			v.name, float64(before)/1024, float64(after)/1024, n, float64(after-before)/n)
		s.logf("%s", line)
		s.notes = append(s.notes, line)
	}
	f.stop(s.b)
}

// clusterKeys splits 10,000 lock keys per node by their owner on the ring of
// n0 and n1, and waits until n0 forwards by that ring: a lock of n1's key
// taken through n0 is then held on n1, so n1 answers it false.
func clusterKeys(b *testing.B, n0, n1 *faedProc) map[string][]string {
	ring := peer.NewRing([]string{n0.addr, n1.addr})
	keys := map[string][]string{}
	for i := 0; len(keys[n0.addr]) < 10000 || len(keys[n1.addr]) < 10000; i++ {
		k := fmt.Sprintf("benchlock:%d", i)
		owner, _ := ring.Owner(k)
		keys[owner] = append(keys[owner], k)
	}
	c0, err := dialThrift(n0.addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c0.close()
	testenv.Eventually(b, 30*time.Second, "node 0 forwarding to node 1", func() bool {
		k := keys[n1.addr][0] + fmt.Sprint(time.Now().UnixNano())
		if owner, _ := ring.Owner(k); owner != n1.addr {
			return false
		}
		got, err := c0.client.Lock(context.Background(), benchContext, "probe", k)
		if err != nil || !got {
			return false
		}
		c1, err := dialThrift(n1.addr)
		if err != nil {
			return false
		}
		defer c1.close()
		again, err := c1.client.Lock(context.Background(), benchContext, "probe", k)
		return err == nil && !again
	})
	return keys
}
