package main_test

import (
	"strings"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

// TestMemcacheServerFrozen: a memcached the test owns is frozen with SIGSTOP
// (a real hung server: the kernel still completes TCP handshakes, so dials
// succeed, but nothing answers). Each call times out after timeout; the
// breaker's health check ("version" on a connection of its own) fails too, so
// after failure_allowance calls the breaker opens and calls fail at once with
// "circuit open". After SIGCONT calls succeed again within retry_interval.
func TestMemcacheServerFrozen(t *testing.T) {
	srv := testenv.StartMemcached(t)
	const timeout, retry = 300 * time.Millisecond, time.Second
	_, c := startFaedSession(t, mcSection("standard", 1, `timeout: "300ms", breaker: { failure_allowance: 2, retry_interval: "1s" }`,
		mcSrv{"p", srv.Addr()}))
	k := kvKey(t, "k")
	if ok, err := c.McSet(bg, ctx(), "p", k, mcData("v", 0), 60); !ok || err != nil {
		t.Fatalf("mc_set = %v, %v", ok, err)
	}
	get := func() (time.Duration, error) {
		start := time.Now()
		_, err := c.McGet(bg, ctx(), "p", k)
		return time.Since(start), err
	}
	srv.Freeze()
	at := `memcache get "` + k + `": pool "p", server ` + srv.Addr() + ": "
	for i := 0; i < 2; i++ {
		d, err := get()
		wantErrContains(t, "mc_get of a frozen server", err, at+"timeout: ", "i/o timeout")
		// timeout, then a health check of at most 1 s.
		if d < timeout || d > timeout+2*time.Second {
			t.Errorf("call %d failed after %s, want about timeout (%s) plus a health check", i, d, timeout)
		}
	}
	d, err := get()
	wantErrContains(t, "mc_get with the breaker open", err, at+"circuit open")
	if d > 100*time.Millisecond {
		t.Errorf("refusal took %s, want it at once", d)
	}
	srv.Thaw()
	resumed := time.Now()
	testenv.Eventually(t, retry+time.Second, "calls to succeed after SIGCONT", func() bool {
		_, err := get()
		if err != nil && !strings.Contains(err.Error(), "circuit open") {
			t.Errorf("%s after SIGCONT: %v; want circuit open until the probe, then success",
				time.Since(resumed).Round(time.Millisecond), err)
		}
		return err == nil
	})
	t.Logf("back %s after SIGCONT (retry_interval %s)", time.Since(resumed).Round(time.Millisecond), retry)
}
