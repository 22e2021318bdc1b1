package main_test

import (
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/testenv"
)

// TestMethods calls every method of this issue through a running faed, in each
// protocol × transport × listener mode.
func TestMethods(t *testing.T) {
	for _, m := range allModes {
		t.Run(m.String(), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			f := startFaedIn(t, dir, m.config(dir, "", `lock: { expires: "300ms" }`))
			c := f.dial(t, m)
			testMethods(t, c)
		})
	}
}

// testMethods is the body of TestMethods for one session.
func testMethods(t *testing.T, c *client) {
	if x, err := c.Noop(bg, 12345); err != nil || x != 12345 {
		t.Fatalf("noop(12345) = %d, %v", x, err)
	}
	pong, err := c.Ping(bg, ctx())
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^ver:test, build:testbuild, myid:7, uptime:[0-9.hms]+$`).MatchString(pong) {
		t.Errorf("ping = %q", pong)
	}

	// id generator
	before := time.Now().UnixMilli()
	id, err := c.IDNext(bg, ctx())
	if err != nil {
		t.Fatal(err)
	}
	parts, err := c.IDDecode(bg, nil, id) // id_decode needs no Context
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 4 || parts[0] < before-1 || parts[0] > time.Now().UnixMilli()+1 || parts[1] != 0 || parts[2] != 7 {
		t.Errorf("id_decode(%d) = %v, want [ts≈%d 0 7 seq]", id, parts, before)
	}
	tagged, err := c.IDNextWithTag(bg, ctx(), 31)
	if err != nil {
		t.Fatal(err)
	}
	if parts, _ := c.IDDecode(bg, ctx(), tagged); parts[1] != 31 || parts[2] != 7 {
		t.Errorf("id_decode(tagged 31) = %v", parts)
	}
	for _, bad := range []int16{-1, 32, 1000} {
		if _, err := c.IDNextWithTag(bg, ctx(), bad); err == nil || !strings.Contains(err.Error(), "tag must be 0..31") {
			t.Errorf("id_next_with_tag(%d) error = %v, want one naming the range", bad, err)
		}
	}

	// lcache
	if ok, err := c.LcSet(bg, ctx(), "k1", []byte("v1\x00\xff")); err != nil || !ok {
		t.Fatalf("lc_set = %v, %v", ok, err)
	}
	if v, err := c.LcGet(bg, ctx(), "k1"); err != nil || string(v) != "v1\x00\xff" {
		t.Fatalf("lc_get = %q, %v", v, err)
	}
	if err := c.LcDel(bg, ctx(), "k1"); err != nil {
		t.Fatal(err)
	}
	_, err = c.LcGet(bg, ctx(), "k1")
	var miss *rpc.TCacheMissed
	if !errors.As(err, &miss) || miss.GetMessage() != "lcache missed: k1" {
		t.Fatalf("lc_get after lc_del: %v, want TCacheMissed 'lcache missed: k1'", err)
	}

	// lock: free → true, held → false, expired (300ms) → true; unlock by the holder's rid only
	locked := time.Now()
	if ok, _ := c.Lock(bg, ctx(), "why", "L"); !ok {
		t.Error("lock of a free key = false")
	}
	if ok, _ := c.Lock(bg, ctx(), "why", "L"); ok {
		t.Error("lock of a held key = true")
	}
	testenv.Eventually(t, 5*time.Second, "the held lock to expire", func() bool {
		ok, _ := c.Lock(bg, ctx(), "why", "L")
		return ok
	})
	if el := time.Since(locked); el < 300*time.Millisecond {
		t.Errorf("held lock taken again after %s, before its expiry of 300ms", el)
	}
	// The lock was taken over by some rid: unlock frees it only for the
	// rid that holds it (issue 8; the original let anyone unlock).
	holder := ctx()
	if ok, _ := c.Lock(bg, holder, "why", "M"); !ok {
		t.Error("lock of a free key = false")
	}
	if err := c.Unlock(bg, ctx(), "why", "M"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Lock(bg, ctx(), "why", "M"); ok {
		t.Error("unlock by another rid freed the lock")
	}
	if err := c.Unlock(bg, holder, "why", "M"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Lock(bg, ctx(), "why", "M"); !ok {
		t.Error("lock after the holder's unlock = false")
	}

	// backends that are not configured
	for name, call := range map[string]func() error{
		"mysql is not configured (servants.mysql)": func() error {
			_, err := c.MyQuery(bg, ctx(), "Global", "t", 0, "SELECT 1", nil, "")
			return err
		},
		"redis is not configured (servants.redis)": func() error {
			_, err := c.RdCall(bg, ctx(), "GET", "default", []string{"k"})
			return err
		},
		"memcache is not configured (servants.memcache)": func() error {
			_, err := c.McGet(bg, ctx(), "default", "k")
			return err
		},
		"mongodb is not configured (servants.mongodb)": func() error {
			_, err := c.MgCount(bg, ctx(), "default", "t", 0, nil)
			return err
		},
		"zookeeper is not configured (etcd_servers)": func() error {
			_, err := c.ZkChildren(bg, ctx(), "/")
			return err
		},
	} {
		if err := call(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("error = %v, want %q", err, name)
		}
	}

	// the session is still good after all those errors
	if x, err := c.Noop(bg, 7); err != nil || x != 7 {
		t.Fatalf("noop after errors = %d, %v", x, err)
	}
}

// TestInvalidContext: every method but noop and id_decode refuses a bad Context.
func TestInvalidContext(t *testing.T) {
	m := allModes[0]
	dir := t.TempDir()
	f := startFaedIn(t, dir, m.config(dir, "", ""))
	c := f.dial(t, m)
	for name, bad := range map[string]*rpc.Context{
		"nil":          nil,
		"rid 0":        {Rid: 0, Reason: "x"},
		"empty reason": {Rid: 1, Reason: ""},
	} {
		calls := map[string]func() error{
			"ping":    func() error { _, err := c.Ping(bg, bad); return err },
			"id_next": func() error { _, err := c.IDNext(bg, bad); return err },
			"lc_get":  func() error { _, err := c.LcGet(bg, bad, "k"); return err },
			"lock":    func() error { _, err := c.Lock(bg, bad, "r", "k"); return err },
			"my_query": func() error {
				_, err := c.MyQuery(bg, bad, "p", "t", 1, "SELECT 1", nil, "")
				return err
			},
		}
		for method, call := range calls {
			err := call()
			var ae thrift.TApplicationException
			if !errors.As(err, &ae) || !strings.Contains(err.Error(), "invalid context") {
				t.Errorf("%s with %s ctx: %v, want a TApplicationException with 'invalid context'", method, name, err)
			}
		}
	}
	if _, err := c.IDDecode(bg, nil, 1<<22); err != nil {
		t.Errorf("id_decode with nil ctx: %v", err)
	}
}

// TestPanicRecovered: a panic inside a call (injected by the faetest build, see
// fault_faetest.go) answers INTERNAL_ERROR; the session and the daemon go on.
func TestPanicRecovered(t *testing.T) {
	m := allModes[0]
	dir := t.TempDir()
	f := startFaedIn(t, dir, m.config(dir, "", ""))
	c := f.dial(t, m)
	other := f.dial(t, m)
	_, err := c.Ping(bg, &rpc.Context{Rid: 1, Reason: "test.panic"})
	var ae thrift.TApplicationException
	if !errors.As(err, &ae) || ae.TypeId() != thrift.INTERNAL_ERROR || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("ping that panics: %v, want INTERNAL_ERROR naming the panic", err)
	}
	if _, err := c.Ping(bg, ctx()); err != nil {
		t.Fatalf("same session after the panic: %v", err)
	}
	if _, err := other.Ping(bg, ctx()); err != nil {
		t.Fatalf("other session after the panic: %v", err)
	}
	testenv.Eventually(t, 5*time.Second, "the panic and its stack in the log", func() bool {
		out := f.out.String()
		return strings.Contains(out, `msg="call panicked"`) && strings.Contains(out, "goroutine ")
	})
}

// TestIDsUniqueAndIncreasing: ids from concurrent sessions are unique, and each
// session sees them strictly increasing.
func TestIDsUniqueAndIncreasing(t *testing.T) {
	m := allModes[0]
	dir := t.TempDir()
	f := startFaedIn(t, dir, m.config(dir, "", ""))
	const sessions, perSession = 8, 3000
	var mu sync.Mutex
	seen := make(map[int64]bool, sessions*perSession)
	var wg sync.WaitGroup
	for i := 0; i < sessions; i++ {
		c := f.dial(t, m)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last int64
			ids := make([]int64, 0, perSession)
			for j := 0; j < perSession; j++ {
				id, err := c.IDNext(bg, ctx())
				if err != nil {
					t.Error(err)
					return
				}
				if id <= last {
					t.Errorf("id %d after %d: not increasing", id, last)
				}
				last = id
				ids = append(ids, id)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range ids {
				if seen[id] {
					t.Errorf("duplicate id %d", id)
				}
				seen[id] = true
			}
		}()
	}
	wg.Wait()
	if len(seen) != sessions*perSession {
		t.Fatalf("%d unique ids, want %d", len(seen), sessions*perSession)
	}
}

// TestHTTPPing: the HTTP API answers /engine/ping, and 404 with a JSON body.
func TestHTTPPing(t *testing.T) {
	m := allModes[0]
	dir := t.TempDir()
	f := startFaedIn(t, dir, m.config(dir, "", ""))
	body, code := httpGet(t, "http://"+f.httpAddr+"/engine/ping")
	if code != 200 || !strings.Contains(body, `"status": "ok"`) {
		t.Errorf("/engine/ping = %d %q", code, body)
	}
	body, code = httpGet(t, "http://"+f.httpAddr+"/nope")
	if code != 404 || !strings.Contains(body, "not found") {
		t.Errorf("/nope = %d %q", code, body)
	}
}

func TestVersionFlag(t *testing.T) {
	out, code := runFaed(t, "-version")
	if code != 0 || !strings.HasPrefix(out, "faed test (build: testbuild)") {
		t.Errorf("faed -version = %d %q", code, out)
	}
}

// TestSlowCallLogged: a call slower than servants.call_slow_threshold is logged
// with its method, elapsed time, rid and reason.
func TestSlowCallLogged(t *testing.T) {
	m := allModes[0]
	dir := t.TempDir()
	f := startFaedIn(t, dir, m.config(dir, "", `call_slow_threshold: "1ns"`))
	c := f.dial(t, m)
	if _, err := c.Ping(bg, &rpc.Context{Rid: 987654321, Reason: "slow.page"}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, "the slow call in the log", func() bool {
		return regexp.MustCompile(`msg="slow call" method=ping elapsed=\S+ rid=987654321 reason=slow.page`).MatchString(f.out.String())
	})
}
