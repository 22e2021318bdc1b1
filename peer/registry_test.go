package peer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/fae-go/fae/internal/testenv"
)

// Tests against real ZooKeeper servers of their own (testenv.StartZooKeeper:
// tickTime 500 ms, so 1 s sessions are granted). Several Registry instances
// in one process stand for several nodes.

const testSession = time.Second

var testLog = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

func testConfig(root string, session time.Duration) Config {
	var c Config
	c.SetDefaults()
	c.Root, c.SessionTimeout = root, session
	if err := c.Validate("peer"); err != nil {
		panic(err)
	}
	return c
}

// startRegistry starts a Registry closed when the test ends.
func startRegistry(t *testing.T, zkAddr string, cfg Config) *Registry {
	t.Helper()
	r, err := New([]string{zkAddr}, cfg, testLog)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// node starts a Registry and registers it as addr with idgen worker id worker.
func node(t *testing.T, zkAddr string, cfg Config, addr string, worker int) *Registry {
	t.Helper()
	r := startRegistry(t, zkAddr, cfg)
	if err := r.Register(info(worker), addr); err != nil {
		t.Fatal(err)
	}
	return r
}

func info(worker int) MemberInfo {
	return MemberInfo{Version: "test", Pid: os.Getpid(), Started: time.Now().UTC().Truncate(time.Millisecond),
		Protocol: "binary", IdgenWorkerID: worker}
}

func addrsOf(ms []Member) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.Addr)
	}
	return out
}

// waitMembers polls until every registry's membership is exactly want.
func waitMembers(t *testing.T, timeout time.Duration, want []string, rs ...*Registry) {
	t.Helper()
	for i, r := range rs {
		testenv.Eventually(t, timeout, fmt.Sprintf("registry %d to see members %v", i, want), func() bool {
			return reflect.DeepEqual(addrsOf(r.Members()), want)
		})
	}
}

// rawClient is a plain ZooKeeper session of the test's own: "another
// process" or "an operator".
func rawClient(t *testing.T, zkAddr string) *zk.Conn {
	t.Helper()
	c, _, err := zk.Connect([]string{zkAddr}, 4*time.Second, zk.WithLogger(zkLogger{testLog}), zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	testenv.Eventually(t, 10*time.Second, "raw ZooKeeper session", func() bool { return c.State() == zk.StateHasSession })
	return c
}

// owner is the ephemeral owner session of path (0 when it does not exist).
func owner(t *testing.T, c *zk.Conn, path string) int64 {
	t.Helper()
	_, st, err := c.Get(path)
	if errors.Is(err, zk.ErrNoNode) {
		return 0
	}
	if err != nil {
		t.Fatalf("get %s: %v", path, err)
	}
	return st.EphemeralOwner
}

// registeredIn reports whether r's znode at path is owned by r's current session.
func registeredIn(t *testing.T, c *zk.Conn, r *Registry, path string) bool {
	sid := r.client().SessionID()
	return sid != 0 && owner(t, c, path) == sid && r.Registered()
}

// One ZooKeeper for the tests that leave it running; each subtest has a root of its own.
func TestRegistry(t *testing.T) {
	z := testenv.StartZooKeeper(t)
	for name, f := range map[string]func(*testing.T, string){
		"ThreeNodes":          testThreeNodes,
		"ForeignIgnored":      testForeignIgnored,
		"IDConflict":          testIDConflict,
		"StaleOwnZnode":       testStaleOwnZnode,
		"DeletedBySomeone":    testDeletedBySomeone,
		"SessionExpiry":       testSessionExpiry,
		"LeaveDropsAtOnce":    testLeaveDropsAtOnce,
		"RemovalAndSettle":    testRemovalAndSettle,
		"ZkOps":               testZkOps,
		"ReRegisterNewRecord": testReRegisterNewRecord,
		"EpochAndLastEvent":   testEpochAndLastEvent,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, z.Addr())
		})
	}
}

// Three nodes find each other; each record reaches the others intact.
func testThreeNodes(t *testing.T, zkAddr string) {
	cfg := testConfig("/three/fae", testSession)
	want := []string{"127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"}
	var rs []*Registry
	infos := map[string]MemberInfo{}
	for i, addr := range want {
		in := info(i + 1)
		in.HTTPAddr, in.DashboardAddr, in.Framed = fmt.Sprintf("127.0.0.1:910%d", i+1), fmt.Sprintf("127.0.0.1:920%d", i+1), i == 1
		r := startRegistry(t, zkAddr, cfg)
		if err := r.Register(in, addr); err != nil {
			t.Fatal(err)
		}
		in.Impl, in.Format = Impl, Format
		infos[addr] = in
		rs = append(rs, r)
	}
	var mu sync.Mutex
	var got [][]string
	cancel := rs[0].Subscribe(func(ms []Member) {
		mu.Lock()
		got = append(got, addrsOf(ms))
		mu.Unlock()
	})
	defer cancel()
	waitMembers(t, 10*time.Second, want, rs...)
	for _, r := range rs {
		for _, m := range r.Members() {
			if w := infos[m.Addr]; !reflect.DeepEqual(m.Info, w) {
				t.Errorf("record of %s: got %+v, want %+v", m.Addr, m.Info, w)
			}
		}
		if r.Conflict() != nil || !r.Registered() || len(r.Foreign()) != 0 {
			t.Errorf("conflict %v, registered %v, foreign %v", r.Conflict(), r.Registered(), r.Foreign())
		}
	}
	testenv.Eventually(t, 5*time.Second, "the subscriber to get the full membership", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0 && reflect.DeepEqual(got[len(got)-1], want)
	})
	mu.Lock()
	for i, ms := range got { // sorted, and only growing while nodes join
		if !sort.StringsAreSorted(ms) || (i > 0 && len(ms) < len(got[i-1])) {
			t.Errorf("subscriber deliveries %v: not sorted lists of a growing membership", got)
		}
	}
	mu.Unlock()
	c := rawClient(t, zkAddr)
	for i, r := range rs {
		if o := owner(t, c, "/three/fae/"+want[i]); o != r.client().SessionID() {
			t.Errorf("%s: znode owner 0x%x, want the registry's session 0x%x", want[i], o, r.client().SessionID())
		}
	}
}

// Children of the root that are not this implementation's records (an
// original fae registers with empty data) are reported, never members.
func testForeignIgnored(t *testing.T, zkAddr string) {
	cfg := testConfig("/foreign", testSession)
	c := rawClient(t, zkAddr)
	mustCreate(t, c, "/foreign", nil, 0)
	mustCreate(t, c, "/foreign/10.0.0.7:9001", nil, zk.FlagEphemeral) // the original fae
	mustCreate(t, c, "/foreign/10.0.0.8:9001", []byte(`{"impl":"fae-java","format":1}`), zk.FlagEphemeral)
	mustCreate(t, c, "/foreign/10.0.0.9:9001", []byte(`{"impl":"fae-go","format":9}`), zk.FlagEphemeral)
	a := node(t, zkAddr, cfg, "127.0.0.1:9001", 1)
	b := node(t, zkAddr, cfg, "127.0.0.1:9002", 2)
	waitMembers(t, 10*time.Second, []string{"127.0.0.1:9001", "127.0.0.1:9002"}, a, b)
	f := a.Foreign()
	if len(f) != 3 || f[0].Addr != "10.0.0.7:9001" || !strings.Contains(f[0].Reason, "empty data") ||
		!strings.Contains(f[1].Reason, `impl "fae-java"`) || !strings.Contains(f[2].Reason, "record format 9") {
		t.Fatalf("foreign children: %v", f)
	}
	// A foreign child never blocks a worker id nor becomes a member.
	if a.Conflict() != nil || len(a.Members()) != 2 {
		t.Fatalf("conflict %v, members %v", a.Conflict(), addrsOf(a.Members()))
	}
}

func mustCreate(t *testing.T, c *zk.Conn, path string, data []byte, flags int32) {
	t.Helper()
	if _, err := c.Create(path, data, flags, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("create %s: %v", path, err)
	}
}

// A node whose idgen_worker_id a live member holds does not register, says
// so naming both, and registers once the holder is gone.
func testIDConflict(t *testing.T, zkAddr string) {
	cfg := testConfig("/conflict", testSession)
	a := node(t, zkAddr, cfg, "127.0.0.1:9001", 5)
	waitMembers(t, 10*time.Second, []string{"127.0.0.1:9001"}, a)
	b := node(t, zkAddr, cfg, "127.0.0.1:9002", 5)
	c := node(t, zkAddr, cfg, "127.0.0.1:9003", 6)
	waitMembers(t, 10*time.Second, []string{"127.0.0.1:9001", "127.0.0.1:9003"}, a, b, c)
	var ce *IDConflictError
	if err := b.Conflict(); !errors.As(err, &ce) || ce.WorkerID != 5 || ce.Self != "127.0.0.1:9002" || ce.Holder != "127.0.0.1:9001" {
		t.Fatalf("b.Conflict() = %v, want the conflict on worker id 5 with 127.0.0.1:9001", err)
	}
	if b.Registered() || a.Conflict() != nil {
		t.Fatalf("b registered %v, a's conflict %v", b.Registered(), a.Conflict())
	}
	if err := b.IDReady(); !errors.As(err, &ce) {
		t.Fatalf("b.IDReady() = %v, want the conflict", err)
	}
	if err := a.IDReady(); err != nil {
		t.Fatalf("a.IDReady() = %v, want nil (registered)", err)
	}
	// b still discovers (it forwards) and retries on every membership change.
	a.Close()
	waitMembers(t, 10*time.Second, []string{"127.0.0.1:9002", "127.0.0.1:9003"}, b, c)
	if b.Conflict() != nil || !b.Registered() || b.IDReady() != nil {
		t.Fatalf("after the holder left: conflict %v, registered %v, IDReady %v", b.Conflict(), b.Registered(), b.IDReady())
	}
}

// TestIDReadyUnconfirmed: a node that registers, while ZooKeeper is
// unreachable (nothing listens at its address), may not issue ids: its
// worker id is not confirmed, and another node may hold it (found by a
// cluster review: a node started with ZooKeeper down issued 40,022
// duplicates of 160,000 ids beside the holder of its worker id).
func TestIDReadyUnconfirmed(t *testing.T) {
	r := startRegistry(t, testenv.FreeAddr(t), testConfig("/unconfirmed", testSession))
	if err := r.Register(info(3), "127.0.0.1:9005"); err != nil {
		t.Fatal(err)
	}
	if err := r.IDReady(); !errors.Is(err, ErrIDUnconfirmed) {
		t.Fatalf("IDReady() with ZooKeeper unreachable = %v, want ErrIDUnconfirmed", err)
	}
}

// A znode of this node's address left by a previous process (a session not
// yet expired) is replaced by one of this session.
func testStaleOwnZnode(t *testing.T, zkAddr string) {
	cfg := testConfig("/stale", testSession)
	prev := rawClient(t, zkAddr)
	mustCreate(t, prev, "/stale", nil, 0)
	old := info(1)
	old.Pid = 1
	mustCreate(t, prev, "/stale/127.0.0.1:9001", old.encode(), zk.FlagEphemeral)
	r := node(t, zkAddr, cfg, "127.0.0.1:9001", 1)
	testenv.Eventually(t, 10*time.Second, "the stale znode replaced", func() bool {
		return registeredIn(t, prev, r, "/stale/127.0.0.1:9001")
	})
	data, _, err := prev.Get("/stale/127.0.0.1:9001")
	if m, reason := decodeMember("127.0.0.1:9001", data); err != nil || reason != "" || m.Pid != os.Getpid() {
		t.Fatalf("record after replacement: %s (%v, %s)", data, err, reason)
	}
	waitMembers(t, 10*time.Second, []string{"127.0.0.1:9001"}, r)
	testenv.Eventually(t, 5*time.Second, "the member's record to be the new one", func() bool {
		ms := r.Members()
		return len(ms) == 1 && ms[0].Info.Pid == os.Getpid()
	})
}

// A registration deleted by another client is re-created.
func testDeletedBySomeone(t *testing.T, zkAddr string) {
	cfg := testConfig("/deleted", testSession)
	c := rawClient(t, zkAddr)
	r := node(t, zkAddr, cfg, "127.0.0.1:9001", 1)
	const path = "/deleted/127.0.0.1:9001"
	testenv.Eventually(t, 10*time.Second, "registered", func() bool { return registeredIn(t, c, r, path) })
	for i := 0; i < 3; i++ {
		if err := c.Delete(path, -1); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 10*time.Second, "re-created", func() bool { return registeredIn(t, c, r, path) })
	}
	waitMembers(t, 5*time.Second, []string{"127.0.0.1:9001"}, r)
}

// cutDialer dials ZooKeeper for real and can cut this node off: it closes
// the node's connections and refuses new dials, as a network partition would
// (a partition of one client cannot be caused for real on one loopback).
type cutDialer struct {
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

func (d *cutDialer) dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cut {
		return nil, errors.New("test: network cut")
	}
	c, err := net.DialTimeout(network, addr, timeout)
	if err == nil {
		d.conns = append(d.conns, c)
	}
	return c, err
}

func (d *cutDialer) setCut(cut bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cut = cut
	for _, c := range d.conns {
		c.Close()
	}
	d.conns = nil
}

// A node cut off from ZooKeeper past its session timeout keeps its last
// membership; when it is back, go-zookeeper opens a new session and the
// registry registers again and re-arms its watch.
func testSessionExpiry(t *testing.T, zkAddr string) {
	cfg := testConfig("/expiry", testSession)
	d := &cutDialer{}
	a, err := newRegistry([]string{zkAddr}, cfg, testLog, d.dial)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if err := a.Register(info(1), "127.0.0.1:9001"); err != nil {
		t.Fatal(err)
	}
	b := node(t, zkAddr, cfg, "127.0.0.1:9002", 2)
	both := []string{"127.0.0.1:9001", "127.0.0.1:9002"}
	waitMembers(t, 10*time.Second, both, a, b)
	c := rawClient(t, zkAddr)
	const path = "/expiry/127.0.0.1:9001"
	old := a.client().SessionID()

	d.setCut(true)
	testenv.Eventually(t, 10*time.Second, "a's session to expire on the server (its znode gone)", func() bool {
		return owner(t, c, path) == 0
	})
	if got := addrsOf(a.Members()); !reflect.DeepEqual(got, both) || a.client().State() == zk.StateHasSession {
		t.Fatalf("while cut off: members %v (want the last ones, %v), state %v", got, both, a.client().State())
	}
	d.setCut(false)
	testenv.Eventually(t, 15*time.Second, "a registered again in a new session", func() bool {
		return a.client().SessionID() != old && registeredIn(t, c, a, path)
	})
	waitMembers(t, 10*time.Second, both, a, b)
	// The watch works in the new session: a sees a node join and leave.
	n := node(t, zkAddr, cfg, "127.0.0.1:9003", 3)
	waitMembers(t, 10*time.Second, append(both, "127.0.0.1:9003"), a, b, n)
	n.Close()
	waitMembers(t, 10*time.Second, both, a, b)
}

// Leave marks the znode leaving, and peers drop the node at once, well
// within the removal delay (here 4 s); then the znode is gone.
func testLeaveDropsAtOnce(t *testing.T, zkAddr string) {
	cfg := testConfig("/leave", 4*time.Second)
	a := node(t, zkAddr, cfg, "127.0.0.1:9001", 1)
	b := node(t, zkAddr, cfg, "127.0.0.1:9002", 2)
	c := node(t, zkAddr, cfg, "127.0.0.1:9003", 3)
	waitMembers(t, 10*time.Second, []string{"127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"}, a, b, c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := a.Leave(ctx); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	waitMembers(t, 2*time.Second, []string{"127.0.0.1:9002", "127.0.0.1:9003"}, b, c)
	if took := time.Since(start); took >= cfg.SessionTimeout {
		t.Fatalf("peers dropped the leaving node after %s: not before the removal delay %s", took, cfg.SessionTimeout)
	}
	raw := rawClient(t, zkAddr)
	if ok, _, err := raw.Exists("/leave/127.0.0.1:9001"); ok || err != nil {
		t.Fatalf("znode after Leave: exists %v, %v", ok, err)
	}
	if err := a.Register(info(1), "127.0.0.1:9001"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Register after Leave: %v, want ErrClosed", err)
	}
}

// A member seen joining is applied after SettleDelay; one whose znode went
// (a crash: session closed) is kept for the removal delay (here 2 s).
func testRemovalAndSettle(t *testing.T, zkAddr string) {
	cfg := testConfig("/removal", 2*time.Second)
	a := node(t, zkAddr, cfg, "127.0.0.1:9001", 1)
	b := node(t, zkAddr, cfg, "127.0.0.1:9002", 2)
	waitMembers(t, 10*time.Second, []string{"127.0.0.1:9001", "127.0.0.1:9002"}, a, b)
	c := rawClient(t, zkAddr)

	t0 := time.Now()
	mustCreate(t, c, "/removal/127.0.0.1:9009", info(9).encode(), zk.FlagEphemeral)
	waitMembers(t, 5*time.Second, []string{"127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9009"}, a)
	if took := time.Since(t0); took < SettleDelay {
		t.Fatalf("a joining member was applied after %s, before the settle delay %s", took, SettleDelay)
	}

	b.Close() // its session ends: ZooKeeper deletes its znode at once
	testenv.Eventually(t, 5*time.Second, "b's znode gone", func() bool { return owner(t, c, "/removal/127.0.0.1:9002") == 0 })
	gone := time.Now()
	waitMembers(t, cfg.SessionTimeout+3*time.Second, []string{"127.0.0.1:9001", "127.0.0.1:9009"}, a)
	if took := time.Since(gone); took < cfg.SessionTimeout-100*time.Millisecond {
		t.Fatalf("a vanished member was dropped after %s, before the removal delay %s", took, cfg.SessionTimeout)
	}
}

// Register called again replaces the record; peers see the new one.
func testReRegisterNewRecord(t *testing.T, zkAddr string) {
	cfg := testConfig("/again", testSession)
	a := node(t, zkAddr, cfg, "127.0.0.1:9001", 1)
	b := node(t, zkAddr, cfg, "127.0.0.1:9002", 2)
	waitMembers(t, 10*time.Second, []string{"127.0.0.1:9001", "127.0.0.1:9002"}, a, b)
	in := info(1)
	in.HTTPAddr, in.Protocol = "127.0.0.1:9999", "compact"
	if err := a.Register(in, "127.0.0.1:9001"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, "b to see a's new record", func() bool {
		ms := b.Members()
		return len(ms) == 2 && ms[0].Info.HTTPAddr == "127.0.0.1:9999" && ms[0].Info.Protocol == "compact"
	})
	c := rawClient(t, zkAddr)
	if !registeredIn(t, c, a, "/again/127.0.0.1:9001") {
		t.Fatal("a's znode is not its session's after the new record")
	}
}

// zk_create, zk_children, zk_del on the node's session, and the guard of the root.
func testZkOps(t *testing.T, zkAddr string) {
	cfg := testConfig("/zkops-fae", testSession)
	r := startRegistry(t, zkAddr, cfg) // a proxy-only node may use them too
	testenv.Eventually(t, 10*time.Second, "a session", func() bool { return r.client().State() == zk.StateHasSession })
	ctx := context.Background()
	for _, p := range []string{"/zkops", "/zkops/b", "/zkops/a", "/zkops/c", "/zkops-faex"} {
		if err := r.Create(ctx, p, []byte("data of "+p)); err != nil {
			t.Fatalf("create %s: %v", p, err)
		}
	}
	raw := rawClient(t, zkAddr)
	if data, st, err := raw.Get("/zkops/a"); err != nil || string(data) != "data of /zkops/a" || st.EphemeralOwner != 0 {
		t.Fatalf("/zkops/a: %q, %+v, %v: want persistent with its data", data, st, err)
	}
	if names, err := r.Children(ctx, "/zkops"); err != nil || !reflect.DeepEqual(names, []string{"a", "b", "c"}) {
		t.Fatalf("children: %v, %v", names, err)
	}
	for _, tc := range []struct {
		err  error
		want error
		text string
	}{
		{r.Create(ctx, "/zkops/a", nil), zk.ErrNodeExists, "zookeeper create /zkops/a: zk: node already exists"},
		{r.Create(ctx, "/zkops/none/x", nil), zk.ErrNoNode, "zookeeper create /zkops/none/x: zk: node does not exist"},
		{r.Delete(ctx, "/zkops"), zk.ErrNotEmpty, "zookeeper delete /zkops: zk: node has children"},
		{r.Delete(ctx, "/zkops/a"), nil, ""},
		{r.Delete(ctx, "/zkops/a"), zk.ErrNoNode, "zookeeper delete /zkops/a: zk: node does not exist"},
		{second(r.Children(ctx, "/zkops/missing")), zk.ErrNoNode, "zookeeper children /zkops/missing: zk: node does not exist"},
	} {
		if !errors.Is(tc.err, tc.want) || (tc.err != nil && tc.err.Error() != tc.text) {
			t.Errorf("got %v, want %q", tc.err, tc.text)
		}
	}
	// The registration root and everything below it are refused.
	for _, err := range []error{
		r.Create(ctx, "/zkops-fae/127.0.0.1:9001", nil),
		r.Delete(ctx, "/zkops-fae"),
		second(r.Children(ctx, "/zkops-fae/x")),
	} {
		if !errors.Is(err, ErrReservedPath) || !strings.Contains(err.Error(), "/zkops-fae, peer.root") {
			t.Errorf("guard: %v", err)
		}
	}
	for _, p := range []string{"zkops", "/zkops/", ""} {
		if err := r.Create(ctx, p, nil); err == nil || errors.Is(err, ErrReservedPath) {
			t.Errorf("create %q: %v, want a malformed-path error", p, err)
		}
	}
	r.Close()
	if err := r.Create(ctx, "/zkops/d", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("create after Close: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }
