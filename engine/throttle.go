package engine

import (
	"context"
	"log/slog"
	"sync/atomic"

	"golang.org/x/time/rate"
)

// ThrottledHandler is a slog.Handler that bounds the lines a client can cause once
// per call (a failing backend fails every call; the original fae hung when such
// lines filled its disk, REVIEW §2.B7). Every record it handles, at any level it
// is enabled for, takes a token from one rate limiter; a record over the rate is
// dropped and counted, and the next record written carries the number dropped
// since the previous one as the attribute "suppressed". Handlers derived with
// WithAttrs or WithGroup share the limiter and the count, so one ThrottledHandler
// bounds every logger built from it. Counters, not logs, are the complete record.
// Safe for concurrent use.
type ThrottledHandler struct {
	h slog.Handler
	t *throttle
}

type throttle struct {
	lim     *rate.Limiter
	pending atomic.Int64 // dropped since the last record written
	total   atomic.Int64 // dropped since the start
}

// NewThrottledHandler returns a handler that passes records to h at most
// perSecond a second on average, in bursts of up to burst records (see
// rate.NewLimiter). perSecond ≤ 0 with burst > 0 lets burst records through and
// then none.
func NewThrottledHandler(h slog.Handler, perSecond float64, burst int) *ThrottledHandler {
	return &ThrottledHandler{h: h, t: &throttle{lim: rate.NewLimiter(rate.Limit(perSecond), burst)}}
}

// Enabled reports whether the wrapped handler handles level; a disabled record
// takes no token.
func (t *ThrottledHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return t.h.Enabled(ctx, level)
}

// Handle writes r if the rate allows it, with the count of records dropped before
// it; otherwise it drops r and returns nil.
func (t *ThrottledHandler) Handle(ctx context.Context, r slog.Record) error {
	if !t.t.lim.Allow() {
		t.t.pending.Add(1)
		t.t.total.Add(1)
		return nil
	}
	if n := t.t.pending.Swap(0); n > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int64("suppressed", n))
	}
	return t.h.Handle(ctx, r)
}

// WithAttrs returns a handler with attrs that shares t's limiter.
func (t *ThrottledHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &ThrottledHandler{h: t.h.WithAttrs(attrs), t: t.t}
}

// WithGroup returns a handler with the group name that shares t's limiter.
func (t *ThrottledHandler) WithGroup(name string) slog.Handler {
	return &ThrottledHandler{h: t.h.WithGroup(name), t: t.t}
}

// Suppressed is the number of records dropped since the handler was made.
func (t *ThrottledHandler) Suppressed() int64 { return t.t.total.Load() }
