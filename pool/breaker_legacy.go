package pool

import (
	"errors"
	"fmt"

	"github.com/sony/gobreaker/v2"
)

// ErrBreakerOpen is wrapped by every error a Breaker returns when it refuses a call.
var ErrBreakerOpen = errors.New("circuit open")

// legacyBreaker (being replaced by Breaker) is the circuit breaker in front of one server, glue over
// sony/gobreaker: it opens after BreakerConfig.FailureAllowance consecutive
// failures, refuses calls for RetryInterval, then lets one probe call through
// (half-open): success closes it, failure opens it again. Only errors the caller
// classifies as server failures count; any other outcome (a success, a miss, a
// caller's mistake) proves the server answered and resets the count.
// Safe for concurrent use.
type legacyBreaker struct {
	kind, name string
	cb         *gobreaker.TwoStepCircuitBreaker[struct{}]
}

// newLegacyBreaker returns a closed breaker for the server name of backend kind
// ("mysql", "redis", …); both appear in its errors.
func newLegacyBreaker(kind, name string, cfg BreakerConfig) *legacyBreaker {
	allowance := uint32(max(cfg.FailureAllowance, 1))
	return &legacyBreaker{kind: kind, name: name, cb: gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        name,
		MaxRequests: 1,
		Timeout:     cfg.RetryInterval,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= allowance },
	})}
}

// Do runs fn unless the breaker is open, in which case it returns an error
// "<kind>: circuit open for <name>" wrapping ErrBreakerOpen without calling fn.
// isFailure tells which errors of fn count as server failures.
func (b *legacyBreaker) Do(fn func() error, isFailure func(error) bool) error {
	done, err := b.cb.Allow()
	if err != nil {
		return fmt.Errorf("%s: %w for %s", b.kind, ErrBreakerOpen, b.name)
	}
	err = fn()
	if err != nil && isFailure(err) {
		done(err)
	} else {
		done(nil)
	}
	return err
}

// State is "closed", "half-open" or "open".
func (b *legacyBreaker) State() string { return b.cb.State().String() }
