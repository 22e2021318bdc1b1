package engine

import (
	"context"
	"log/slog"
	"sync/atomic"

	"golang.org/x/time/rate"
)

// logThrottle bounds a log line that can repeat once per call (a failing
// backend fails every call): at most 10 lines a second, bursts of 20; the lines
// left out are counted and the next line written says how many. Counters, not
// logs, are the complete record. Safe for concurrent use.
type logThrottle struct {
	lim        *rate.Limiter
	suppressed atomic.Int64
}

func newLogThrottle() *logThrottle { return &logThrottle{lim: rate.NewLimiter(10, 20)} }

// log writes msg at level with args, unless the rate is exceeded.
func (t *logThrottle) log(l *slog.Logger, level slog.Level, msg string, args ...any) {
	if !t.lim.Allow() {
		t.suppressed.Add(1)
		return
	}
	if n := t.suppressed.Swap(0); n > 0 {
		args = append(args, "suppressed_before", n)
	}
	l.Log(context.Background(), level, msg, args...)
}
