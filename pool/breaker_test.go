package pool

import (
	"errors"
	"testing"
	"time"
)

var errDown = errors.New("connection refused")
var errUser = errors.New("syntax error")

func isDown(err error) bool { return errors.Is(err, errDown) }

func TestBreakerOpensAfterConsecutiveFailures(t *testing.T) {
	b := NewBreaker("mysql", "UserShard2", BreakerConfig{FailureAllowance: 3, RetryInterval: 100 * time.Millisecond})
	fail := func() error { return errDown }
	// Failures interleaved with successes and user errors never trip it: they are not consecutive.
	for i := 0; i < 10; i++ {
		b.Do(fail, isDown)
		b.Do(fail, isDown)
		b.Do(func() error { return errUser }, isDown)
	}
	if b.State() != "closed" {
		t.Fatalf("state %s after non-consecutive failures", b.State())
	}
	for i := 0; i < 3; i++ {
		b.Do(fail, isDown)
	}
	called := false
	err := b.Do(func() error { called = true; return nil }, isDown)
	if !errors.Is(err, ErrBreakerOpen) || called || err.Error() != "mysql: circuit open for UserShard2" {
		t.Fatalf("after 3 consecutive failures: err %v, called %v", err, called)
	}
	time.Sleep(150 * time.Millisecond) // past retry_interval: half-open, one probe
	if err := b.Do(func() error { return nil }, isDown); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if b.State() != "closed" {
		t.Fatalf("state %s after a good probe", b.State())
	}
}
