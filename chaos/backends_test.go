package chaos

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/testenv"
)

// Breaker settings of every backend in these cases: retry_interval is what
// "success resumes within retry_interval of the restore" is measured against.
const (
	allowance     = 3
	retryInterval = time.Second
	// recoverSlack is added to retry_interval: the probe's own poll, a
	// re-dial, and a MariaDB restart's first connection (authentication).
	recoverSlack = 1500 * time.Millisecond
	// faultedIO is the I/O timeout of the backend a case harms (a frozen
	// server is found out after failure_allowance of them); sharedIO that of
	// the shared servers, busy with other tests on the same 2 cores.
	faultedIO, sharedIO = 500 * time.Millisecond, 3 * time.Second
	// failFast is how long a call to a backend whose breaker is open may take.
	failFast = 100 * time.Millisecond
)

// backend is one backend of the cases: how to run a server of the case's
// own, its servants section, its bit of the stress tool's mix and the
// flags addressing it, and a probe call through faed.
type backend struct {
	name    string // as /svt/stat names it
	label   string // as the table names it
	x       int
	start   func(t testing.TB) *testenv.Server
	section func(addr string, io time.Duration) string
	flags   []string
	probe   func(c *client) error
	// workers of the load on it while another backend is harmed: 1 for
	// MongoDB, where concurrent upserts of one _id (stress's random keys
	// collide) may fail E11000 duplicate key, as MongoDB documents.
	workers int
}

var breakerConf = fmt.Sprintf(`breaker: { failure_allowance: %d, retry_interval: %q }`, allowance, retryInterval)

var backends = []backend{
	{name: "mysql", label: "MariaDB", x: xMySQL, start: testenv.StartMariaDB,
		section: func(addr string, io time.Duration) string {
			host, port, _ := strings.Cut(addr, ":")
			return fmt.Sprintf(`mysql: {
            servers: [ { pool: "Global", host: %q, port: %s, db: "fae_test", username: "fae", password: "fae" } ]
            global_pools: ["Global"]
            timeout: "1s", query_timeout: %q, max_idle_conns_per_server: 2
            %s
        }`, host, port, io.String(), breakerConf)
		},
		flags: []string{"-my-pool", "Global", "-my-table", "t", "-my-hint", "0", "-my-sql", "SELECT 1 AS one", "-my-args", "", "-my-cachekey", ""}, workers: 2,
		probe: func(c *client) error {
			_, err := c.MyQuery(bg, ctx(), "Global", "t", 0, "SELECT 1 AS one", nil, "")
			return err
		}},
	{name: "redis", label: "Redis", x: xRedis, start: testenv.StartRedis,
		section: func(addr string, io time.Duration) string {
			return fmt.Sprintf(`redis: {
            pools: [ { name: "default", servers: [ { addr: %q, max_idle: 2 } ] } ]
            connect_timeout: "300ms", io_timeout: %q, borrow_timeout: "500ms"
            %s
        }`, addr, io.String(), breakerConf)
		},
		flags: []string{"-rd-pool", "default"}, workers: 2,
		probe: func(c *client) error {
			_, err := c.RdCall(bg, ctx(), "SET", "default", []string{"chaos:probe", "v"})
			return err
		}},
	{name: "memcache", label: "memcached", x: xMemcache, start: testenv.StartMemcached,
		section: func(addr string, io time.Duration) string {
			host, port, _ := strings.Cut(addr, ":")
			return fmt.Sprintf(`memcache: {
            servers: [ { pool: "default", host: %q, port: %s } ]
            timeout: %q, max_idle_conns_per_server: 2
            %s
        }`, host, port, io.String(), breakerConf)
		},
		flags: []string{"-mc-pool", "default"}, workers: 2,
		probe: func(c *client) error {
			_, err := c.McSet(bg, ctx(), "default", "chaos:probe", &rpc.TMemcacheData{Data: []byte("v")}, 60)
			return err
		}},
	{name: "mongodb", label: "MongoDB wire (FerretDB)", x: xMongo, start: testenv.StartFerretDB,
		section: func(addr string, io time.Duration) string {
			host, port, _ := strings.Cut(addr, ":")
			return fmt.Sprintf(`mongodb: {
            servers: [ { pool: "default", host: %q, port: %s, db: "fae_chaos" } ]
            connect_timeout: "500ms", io_timeout: %q, max_idle_conns_per_server: 2
            %s
        }`, host, port, io.String(), breakerConf)
		},
		flags: []string{"-mg-pool", "default", "-mg-table", "chaos"}, workers: 1,
		probe: func(c *client) error {
			_, err := c.MgUpsert(bg, ctx(), "default", "chaos", 0, bsonDoc("_id", "probe"), bsonDoc("$set", map[string]string{"v": "v"}))
			return err
		}},
}

// sharedAddr is the shared server of backend name (contrib/test-services).
func sharedAddr(name string) string {
	return map[string]string{"mysql": testenv.MySQLAddr, "redis": testenv.RedisAddr,
		"memcache": testenv.MemcacheAddr, "mongodb": testenv.MongoAddr}[name]
}

// TestBackendFaults: each backend's server (one of the case's own) killed
// with -9, or frozen with SIGSTOP, under load on every backend, then
// restored. Calls to it fail fast with typed errors once its breaker is
// open, the other backends' calls never fail, the breaker closes, and
// success resumes within retry_interval of the restore (plus a little).
// The fast subset runs Redis killed and memcached frozen.
func TestBackendFaults(t *testing.T) {
	for _, b := range backends {
		for _, fault := range []string{"kill -9", "SIGSTOP"} {
			if !full && !(b.name == "redis" && fault == "kill -9" || b.name == "memcache" && fault == "SIGSTOP") {
				continue
			}
			t.Run(b.name+"/"+strings.ReplaceAll(fault, " ", ""), func(t *testing.T) { backendFault(t, b, fault) })
		}
	}
}

// backendCase is one backend case: b's server srv, of the case's own,
// harmed by fault; the other backends on the shared servers.
type backendCase struct {
	t      *testing.T
	b      backend
	fault  string // "kill -9" or "SIGSTOP"
	r      *row
	srv    *testenv.Server
	n      *node
	c      *client // the probe's session
	others []backend
}

// loadWorkers is the stress tool's concurrency on the harmed backend.
const loadWorkers = 4

func backendFault(t *testing.T, b backend, fault string) {
	k := &backendCase{t: t, b: b, fault: fault, r: newRow(t, b.label+" "+fault), srv: b.start(t)}
	k.setup()
	onIt, otherLoads := k.loads()
	k.outage()
	repOn := onIt.stop()
	line, failed := stopLoads(otherLoads)
	kinds := k.n.failedKinds(b.name)
	k.r.Failed = fmt.Sprintf("%s: %s; faed's %s kinds %v; %s", b.name, repOn, b.name, kinds, line)
	if failed != 0 {
		t.Errorf("calls to the other backends failed: %s", line)
	}
	if repOn.failed() == 0 || kinds["breaker_open"] == 0 {
		t.Errorf("no %s call failed (%s, faed kinds %v): the fault was not felt", b.name, repOn, kinds)
	}
	if e := repOn.Errors["call"]; e.Count != repOn.failed() {
		t.Errorf("%s calls failed otherwise than with an answer from faed (%s): %s", b.name, repOn, repOn.firsts())
	}
	checkLeaks(t, k.n, k.r)
}

// setup starts faed on every backend, warms its pools with a short load on
// all of them, and takes the baseline.
func (k *backendCase) setup() {
	t, b := k.t, k.b
	sections := []string{b.section(k.srv.Addr(), faultedIO)}
	x, flags := b.x, b.flags
	for _, o := range backends {
		if o.name == b.name {
			continue
		}
		testenv.RequireServer(t, o.label, sharedAddr(o.name))
		sections = append(sections, o.section(sharedAddr(o.name), sharedIO))
		x |= o.x
		flags = append(append([]string{}, flags...), o.flags...)
		k.others = append(k.others, o)
	}
	k.n = startNode(t, "faed", nodeConf(testenv.FreePort(t), 1, "", "", strings.Join(sections, "\n        ")))
	k.c = k.n.dial()
	if err := b.probe(k.c); err != nil {
		t.Fatalf("%s before the fault: %v", b.name, err)
	}
	warm := runLoad(t, "warm-up", append([]string{"-addr", k.n.addr, "-c", "1", "-n", "20", "-x", fmt.Sprint(x | xPing)}, flags...)...)
	if warm.failed() != 0 {
		t.Fatalf("warm-up: %s: %s", warm, warm.firsts())
	}
	baseline(t, k.n, k.r)
}

// loads starts stress on the harmed backend and one stress per other
// backend (with ping), and returns once they run.
func (k *backendCase) loads() (onIt *load, others []*load) {
	n := k.n
	onIt = startLoad(k.t, k.b.name, append([]string{"-addr", n.addr, "-c", fmt.Sprint(loadWorkers), "-d", "10m", "-timeout", "4s",
		"-x", fmt.Sprint(k.b.x)}, k.b.flags...)...)
	var desc []string
	for _, o := range k.others {
		others = append(others, startLoad(k.t, o.name, append([]string{"-addr", n.addr, "-c", fmt.Sprint(o.workers), "-d", "10m",
			"-x", fmt.Sprint(xPing | o.x)}, o.flags...)...))
		desc = append(desc, fmt.Sprintf("-c %d on %s", o.workers, o.name))
	}
	k.r.Load = fmt.Sprintf("stress -c %d on %s; ping and %s", loadWorkers, k.b.name, strings.Join(desc, ", "))
	calls0 := n.stat().RPC.Calls
	testenv.Eventually(k.t, 10*time.Second, "load running", func() bool { return n.stat().RPC.Calls > calls0+200 })
	return onIt, others
}

// outage injects the fault, checks calls fail fast once the breaker is
// open, holds the outage, restores the server and checks that success
// resumes within retry_interval and the breaker closes.
func (k *backendCase) outage() {
	t, b, n, srv := k.t, k.b, k.n, k.srv
	faultAt := time.Now()
	if k.fault == "kill -9" {
		srv.Kill()
	} else {
		srv.Freeze()
	}
	testenv.Eventually(t, 20*time.Second, b.name+"'s breaker open", func() bool { return n.breaker(b.name) == "open" })
	opened := time.Since(faultAt)
	checkFailFast(t, b, k.c, srv.Addr())
	for deadline := time.Now().Add(pick(time.Second, 5*time.Second)); time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond) // the outage's length: the scenario, not synchronisation
	}
	k.r.Faults = fmt.Sprintf("%s %s of the case's own for %s (breaker open after %s)", k.fault, b.label, round(time.Since(faultAt)), round(opened))
	restoredAt := time.Now()
	if k.fault == "kill -9" {
		srv.Start()
	} else {
		srv.Thaw()
	}
	testenv.Eventually(t, retryInterval+10*time.Second, b.name+" calls succeeding after the restore", func() bool { return b.probe(k.c) == nil })
	back := time.Since(restoredAt)
	testenv.Eventually(t, 10*time.Second, b.name+"'s breaker closed", func() bool { return n.breaker(b.name) == "closed" })
	k.r.Recover = round(back) + " (breaker closed)"
	if back > retryInterval+recoverSlack {
		t.Errorf("%s calls came back %s after the restore, want within retry_interval %s (+%s)", b.name, back, retryInterval, recoverSlack)
	}
	before := n.stat().RPC.Calls // the load goes on after the restore
	testenv.Eventually(t, 10*time.Second, "the load going on", func() bool { return n.stat().RPC.Calls > before+100 })
}

// typedFailure matches faed's answer to a call on a failed backend: the
// pool, the server and the pool.Kind of the failure.
var typedFailure = regexp.MustCompile(`pool "(default|Global)".*: (circuit open|timeout|server failure|busy)`)

// checkFailFast: with the breaker open, calls fail at once with a
// TApplicationException naming the pool, the server and "circuit open".
func checkFailFast(t *testing.T, b backend, c *client, addr string) {
	t.Helper()
	for i := range 5 {
		start := time.Now()
		err := b.probe(c)
		d := time.Since(start)
		ae := appError(err)
		switch {
		case ae == nil:
			t.Errorf("%s call %d with the breaker open: %v (%T), want a TApplicationException", b.name, i, err, err)
		case !typedFailure.MatchString(err.Error()) || !strings.Contains(err.Error(), "circuit open"):
			t.Errorf("%s call %d with the breaker open: %q, want the pool, the server and \"circuit open\"", b.name, i, err)
		case !strings.Contains(err.Error(), addr):
			t.Errorf("%s call %d: %q does not name the server %s", b.name, i, err, addr)
		}
		if d > failFast {
			t.Errorf("%s call %d with the breaker open took %s, want ≤ %s", b.name, i, d, failFast)
		}
	}
}
