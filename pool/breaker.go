package pool

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/sync/singleflight"
)

// HealthCheckTimeout bounds one health check of a server (issue 7: at most 1 s).
const HealthCheckTimeout = time.Second

// HealthCheck asks a server a trivial question on a connection of its own
// (PING, SELECT 1, memcache version, mongo hello) and returns nil when it
// answered before ctx ended.
type HealthCheck func(ctx context.Context) error

// DialError marks a failed connect, so that the breaker counts it on its dial
// side only. Backends wrap their dial errors in it; a *net.OpError whose Op is
// "dial" counts as one too.
type DialError struct{ Err error }

func (e *DialError) Error() string { return "dial: " + e.Err.Error() }
func (e *DialError) Unwrap() error { return e.Err }

// errCounted is what a failure is reported to gobreaker as; errNeutral an
// outcome that counts neither way (excluded).
var (
	errCounted = errors.New("server failure")
	errNeutral = errors.New("not the server's doing")
)

// Breaker is the circuit breaker in front of one server: glue over
// sony/gobreaker, two of them, one counting dials and one counting commands,
// so that a server that accepts connections but never answers (frozen, the
// kernel still completing handshakes) is seen: a successful dial never resets
// the count of failed commands.
//
// Either side opens after BreakerConfig.FailureAllowance consecutive failures
// of its own; while one is open every operation is refused (KindBreakerOpen)
// for RetryInterval, then one probe goes through (half-open): success closes
// it, failure opens it again.
//
// What counts (decided by the operation's Kind, here only):
//   - a failed dial (*DialError) counts on the dial side, nothing else;
//   - KindServerFailure counts on the command side;
//   - KindTimeout counts only when the server also fails a health check
//     (at most HealthCheckTimeout; one check per server at a time, shared by
//     the operations that wait for it), so a frozen server opens the breaker
//     after failure_allowance operations while one client's slow statement or
//     blocking command never opens it for everyone;
//   - an answer (KindOK, KindMiss, KindRefused, KindTooLarge) is a success;
//   - anything the server was not asked about (busy, canceled, bad argument…) counts neither way.
//
// Safe for concurrent use.
type Breaker struct {
	backend, name string
	dial, cmd     *gobreaker.TwoStepCircuitBreaker[struct{}]
	dialState     atomic.Int32 // the dial side's gobreaker.State as of its last change: read without its mutex
	cmdState      atomic.Int32 // the command side's, likewise
	// failed counts the command side's failures counted; cleared is the
	// failed a success counted after read before it ran (see quiet).
	failed, cleared atomic.Uint64
	check           HealthCheck
	checks          singleflight.Group

	Checks        atomic.Int64 // health checks run after a timeout
	CheckFailures atomic.Int64 // health checks the server failed
}

// NewBreaker returns a closed breaker for server name of backend ("mysql",
// "redis", …). check, which may be nil (then every timeout counts), is run
// after a timeout.
func NewBreaker(backend, name string, cfg BreakerConfig, check HealthCheck) *Breaker {
	allowance := uint32(max(cfg.FailureAllowance, 1))
	settings := func(side string) gobreaker.Settings {
		return gobreaker.Settings{
			Name:        name + " " + side,
			MaxRequests: 1,
			Timeout:     cfg.RetryInterval,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= allowance },
			IsExcluded:  func(err error) bool { return err == errNeutral },
		}
	}
	b := &Breaker{backend: backend, name: name, check: check}
	cs := settings("command")
	cs.OnStateChange = func(_ string, _, to gobreaker.State) { b.cmdState.Store(int32(to)) }
	b.cmd = gobreaker.NewTwoStepCircuitBreaker[struct{}](cs)
	ds := settings("dial")
	ds.OnStateChange = func(_ string, _, to gobreaker.State) { b.dialState.Store(int32(to)) }
	b.dial = gobreaker.NewTwoStepCircuitBreaker[struct{}](ds)
	return b
}

// dialSide is the dial side's state. While it is not closed, its own State is
// asked (which moves it from open to half-open once retry_interval has
// passed); while closed, the common case, no mutex is taken.
func (b *Breaker) dialSide() gobreaker.State {
	if gobreaker.State(b.dialState.Load()) == gobreaker.StateClosed {
		return gobreaker.StateClosed
	}
	return b.dial.State()
}

// Do runs op unless the breaker is open, in which case it returns
// KindBreakerOpen without running op. op returns its outcome's kind and
// error; Do counts it as the type comment says and returns it unchanged.
//
// While both sides are closed and no failure was counted since the last
// success was, an answered outcome changes nothing gobreaker keeps (its
// consecutive failures are 0 already; nothing reads its other counts), so it
// is not reported: no mutex and no clock read for the common call (some
// 0.5 µs of faed's CPU per rd_call at 64 clients). Any other outcome is
// reported as on the slow path.
func (b *Breaker) Do(op func() (Kind, error)) (Kind, error) {
	if b.quiet() {
		f := b.failed.Load()
		kind, opErr := op()
		if kind.Answered() && !isDialError(opErr) {
			if f != b.cleared.Load() { // a failure was counted before this ended: count this success
				b.report(b.cmd, nil)
				b.cleared.Store(f)
			}
			return kind, opErr
		}
		done, err := b.cmd.Allow()
		if err != nil { // opened meanwhile: nothing to count
			return kind, opErr
		}
		b.settle(done, kind, opErr)
		return kind, opErr
	}
	if b.dialSide() == gobreaker.StateOpen {
		return KindBreakerOpen, nil
	}
	done, err := b.cmd.Allow()
	if err != nil {
		return KindBreakerOpen, nil
	}
	f := b.failed.Load()
	kind, opErr := op()
	b.settle(done, kind, opErr)
	if kind.Answered() && !isDialError(opErr) {
		b.cleared.Store(f) // the failures counted up to f came before this success
	}
	return kind, opErr
}

// quiet reports whether both sides are closed and every failure counted was
// followed by a success counted (failed == cleared). A failure is counted
// on gobreaker before failed is incremented, and a success stores in
// cleared the failed it read before it ran: cleared == failed then means
// gobreaker saw every failure before a success (its consecutive failures are 0).
func (b *Breaker) quiet() bool {
	return gobreaker.State(b.dialState.Load()) == gobreaker.StateClosed &&
		gobreaker.State(b.cmdState.Load()) == gobreaker.StateClosed && b.failed.Load() == b.cleared.Load()
}

// settle counts op's outcome on the command side (done is its Allow's) and,
// for a dial error, on the dial side.
func (b *Breaker) settle(done func(error), kind Kind, opErr error) {
	switch {
	case isDialError(opErr):
		b.report(b.dial, errCounted)
		done(errNeutral)
	case kind == KindServerFailure:
		done(errCounted)
		b.failed.Add(1)
	case kind == KindTimeout:
		if b.healthy() {
			done(errNeutral)
		} else {
			done(errCounted)
			b.failed.Add(1)
		}
	case kind.Answered():
		done(nil)
		if b.dialSide() != gobreaker.StateClosed {
			b.report(b.dial, nil) // the server answered: it can be dialled
		}
	default:
		done(errNeutral)
	}
}

// Dial runs dial, a connect to the server, on the dial side: refused with an
// error of KindBreakerOpen while that side is open; a failure is counted and
// returned as a *DialError.
func (b *Breaker) Dial(dial func() error) error {
	done, err := b.dial.Allow()
	if err != nil {
		return KindBreakerOpen
	}
	if err := dial(); err != nil {
		done(errCounted)
		if isDialError(err) {
			return err
		}
		return &DialError{Err: err}
	}
	done(nil)
	return nil
}

func (b *Breaker) report(cb *gobreaker.TwoStepCircuitBreaker[struct{}], outcome error) {
	if done, err := cb.Allow(); err == nil {
		done(outcome)
	}
}

// healthy runs the health check, or joins the one in flight.
func (b *Breaker) healthy() bool {
	if b.check == nil {
		return false
	}
	v, _, _ := b.checks.Do("", func() (any, error) {
		b.Checks.Add(1)
		ctx, cancel := context.WithTimeout(context.Background(), HealthCheckTimeout)
		defer cancel()
		err := b.check(ctx)
		if err != nil {
			b.CheckFailures.Add(1)
		}
		return err == nil, nil
	})
	return v.(bool)
}

// State is "open" when either side is open, else "half-open" when either is
// half-open, else "closed".
func (b *Breaker) State() string {
	d, c := b.dial.State(), b.cmd.State()
	switch {
	case d == gobreaker.StateOpen || c == gobreaker.StateOpen:
		return "open"
	case d == gobreaker.StateHalfOpen || c == gobreaker.StateHalfOpen:
		return "half-open"
	}
	return "closed"
}

// isOpen reports whether State would be "open". While both sides are closed
// (their last change, kept by OnStateChange, was to closed) it takes neither
// side's mutex nor the time: a call path asks it on every call (2 lock pairs
// and 2 clock reads saved; an open side turns half-open only when asked, so
// only a closed one is trusted without asking).
func (b *Breaker) isOpen() bool {
	if gobreaker.State(b.dialState.Load()) == gobreaker.StateClosed && gobreaker.State(b.cmdState.Load()) == gobreaker.StateClosed {
		return false
	}
	return b.State() == "open"
}

// States are the dial side's and the command side's states, each "closed",
// "half-open" or "open" (gobreaker's names). Asking moves a side whose
// retry_interval has passed from open to half-open, as any operation would.
func (b *Breaker) States() (dial, command string) {
	return b.dial.State().String(), b.cmd.State().String()
}

func isDialError(err error) bool {
	if err == nil {
		return false
	}
	var de *DialError
	if errors.As(err, &de) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}
