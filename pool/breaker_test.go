package pool

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

var errDown = errors.New("connection refused")

func testBreaker(check HealthCheck) *Breaker {
	return NewBreaker("mysql", "UserShard2", BreakerConfig{FailureAllowance: 3, RetryInterval: 50 * time.Millisecond}, check)
}

func outcome(k Kind, err error) func() (Kind, error) { return func() (Kind, error) { return k, err } }

// waitState polls b until it is in state (a time-based transition: the retry interval).
func waitState(t *testing.T, b *Breaker, state string) {
	t.Helper()
	testenv.Eventually(t, 5*time.Second, "breaker "+state, func() bool { return b.State() == state })
}

func TestBreakerOpensAfterConsecutiveFailures(t *testing.T) {
	b := testBreaker(nil)
	// Failures interleaved with answers (a statement the server refused) never trip it.
	for range 10 {
		b.Do(outcome(KindServerFailure, errDown))
		b.Do(outcome(KindServerFailure, errDown))
		b.Do(outcome(KindRefused, errors.New("syntax error")))
	}
	if b.State() != "closed" {
		t.Fatalf("state %s after non-consecutive failures", b.State())
	}
	for range 3 {
		b.Do(outcome(KindServerFailure, errDown))
	}
	called := false
	k, err := b.Do(func() (Kind, error) { called = true; return KindOK, nil })
	if k != KindBreakerOpen || err != nil || called {
		t.Fatalf("after 3 consecutive failures: kind %v err %v, called %v", k, err, called)
	}
	waitState(t, b, "half-open")
	if k, _ := b.Do(outcome(KindOK, nil)); k != KindOK {
		t.Fatalf("probe: %v", k)
	}
	if b.State() != "closed" {
		t.Fatalf("state %s after a good probe", b.State())
	}
}

// A frozen server accepts connections but never answers: successful dials must
// not reset the count of failed commands.
func TestBreakerDialSuccessDoesNotResetCommandFailures(t *testing.T) {
	b := testBreaker(nil)
	for i := range 3 {
		if err := b.Dial(func() error { return nil }); err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		b.Do(outcome(KindTimeout, errors.New("i/o timeout")))
	}
	if b.State() != "open" {
		t.Fatalf("state %s after 3 timeouts with no health check, each after a good dial", b.State())
	}
}

func TestBreakerDialFailuresCountApart(t *testing.T) {
	b := testBreaker(nil)
	refused := &DialError{Err: errDown}
	for range 2 {
		b.Do(outcome(KindServerFailure, refused)) // a failed dial inside an operation
		b.Do(outcome(KindServerFailure, errDown)) // a failed command
	}
	if b.State() != "closed" {
		t.Fatalf("state %s: 2 dial and 2 command failures, none 3 in a row on its side", b.State())
	}
	if err := b.Dial(func() error { return errDown }); !isDialError(err) {
		t.Fatalf("failed dial returned %v, want a *DialError", err)
	}
	if b.State() != "open" {
		t.Fatalf("state %s after the third dial failure", b.State())
	}
	if err := b.Dial(func() error { t.Fatal("dialled while open"); return nil }); !errors.Is(err, KindBreakerOpen) {
		t.Fatalf("dial while open: %v", err)
	}
}

func TestBreakerTimeoutCountsOnlyWhenHealthCheckFails(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	b := testBreaker(func(ctx context.Context) error {
		if healthy.Load() {
			return nil
		}
		<-ctx.Done() // a frozen server: the check times out
		return ctx.Err()
	})
	for range 10 { // one client's slow statements
		b.Do(outcome(KindTimeout, context.DeadlineExceeded))
	}
	if b.State() != "closed" || b.Checks.Load() != 10 || b.CheckFailures.Load() != 0 {
		t.Fatalf("state %s, checks %d, failed %d after timeouts on a healthy server",
			b.State(), b.Checks.Load(), b.CheckFailures.Load())
	}
	healthy.Store(false)
	for range 3 {
		b.Do(outcome(KindTimeout, context.DeadlineExceeded))
	}
	if b.State() != "open" {
		t.Fatalf("state %s after 3 timeouts on a frozen server", b.State())
	}
}

// Concurrent timeouts share one health check.
func TestBreakerHealthCheckShared(t *testing.T) {
	release := make(chan struct{})
	var running atomic.Int32
	b := testBreaker(func(ctx context.Context) error {
		running.Add(1)
		<-release
		return errDown
	})
	var wg sync.WaitGroup
	var entered sync.WaitGroup
	for range 8 {
		wg.Add(1)
		entered.Add(1)
		go func() {
			defer wg.Done()
			b.Do(func() (Kind, error) { entered.Done(); return KindTimeout, context.DeadlineExceeded })
		}()
	}
	entered.Wait()
	// Let every caller join the check in flight before it ends.
	testenv.Eventually(t, 5*time.Second, "one check running and the 7 other callers waiting for it", func() bool {
		return running.Load() == 1 && checkWaiters("TestBreakerHealthCheckShared") == 7
	})
	close(release)
	wg.Wait()
	if n := b.Checks.Load(); n != 1 {
		t.Fatalf("%d checks for 8 concurrent timeouts, want 1 shared", n)
	}
	if b.State() != "open" {
		t.Fatalf("state %s after 8 timeouts on a failing server", b.State())
	}
}

// checkWaiters is the number of goroutines started by test that wait in
// singleflight for a health check another one runs (read off their stacks: the
// group does not count its waiters).
func checkWaiters(test string) int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "sync.(*WaitGroup).Wait(") && strings.Contains(g, "singleflight.(*Group).Do(") &&
			strings.Contains(g, "."+test+".") {
			n++
		}
	}
	return n
}

func TestBreakerNeutralOutcomes(t *testing.T) {
	b := testBreaker(nil)
	for range 2 {
		b.Do(outcome(KindServerFailure, errDown))
	}
	// Outcomes that say nothing of the server neither count nor reset.
	for _, k := range []Kind{KindBusy, KindCanceled, KindBadArgument, KindUnknownPool, KindClosed} {
		b.Do(outcome(k, nil))
	}
	b.Do(outcome(KindServerFailure, errDown))
	if b.State() != "open" {
		t.Fatalf("state %s: neutral outcomes reset the count", b.State())
	}
}

func TestKindReuseAndText(t *testing.T) {
	for _, k := range []Kind{KindServerFailure, KindTimeout, KindCanceled, KindTooLarge} {
		if k.Reusable() {
			t.Errorf("%v: connection reusable", k)
		}
	}
	for _, k := range []Kind{KindOK, KindMiss, KindRefused, KindBusy, KindBreakerOpen} {
		if !k.Reusable() {
			t.Errorf("%v: connection not reusable", k)
		}
	}
	err := error(&Error{Backend: "redis", Op: "GET", Key: "k", Pool: "p", Server: "127.0.0.1:1", Kind: KindTimeout,
		Err: context.DeadlineExceeded})
	if !errors.Is(err, KindTimeout) || !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, KindServerFailure) {
		t.Fatalf("errors.Is on %v", err)
	}
	if got, want := err.Error(), `redis GET "k": pool "p", server 127.0.0.1:1: timeout: context deadline exceeded`; got != want {
		t.Fatalf("text %q, want %q", got, want)
	}
	if KindOf(err) != KindTimeout || KindOf(nil) != KindOK || KindOf(errDown) != KindServerFailure {
		t.Fatal("KindOf")
	}
	for _, k := range Kinds() {
		if k.String() == "" || k.Error() == "" {
			t.Errorf("kind %d has no text", k)
		}
	}
}

func TestCountersObserve(t *testing.T) {
	c := NewCounters()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				c.Observe(Op{Backend: "redis", Pool: "p", Server: "s", Name: "GET", Kind: KindOK, Duration: time.Millisecond})
				c.Observe(Op{Backend: "redis", Pool: "p", Server: "s", Name: "GET", Kind: KindTimeout})
			}
		})
	}
	wg.Wait()
	snap := c.Snapshot()
	if len(snap) != 1 || snap[0].Count(KindOK) != 400 || snap[0].Count(KindTimeout) != 400 || snap[0].Total() != 800 ||
		snap[0].Nanos.Load() != int64(400*time.Millisecond) {
		t.Fatalf("snapshot %+v", snap)
	}
	if c.Sum("redis", KindTimeout) != 400 || c.Sum("mysql", KindTimeout) != 0 {
		t.Fatal("Sum")
	}
}
