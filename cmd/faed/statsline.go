package main

import (
	"log/slog"
	"math"
	"time"

	"github.com/fae-go/fae/engine"
)

// logStats writes the original fae's periodic stats line at INFO every
// interval (rpc.stats_output_interval) until stop is closed: sessions live
// now and accepted since start, calls and failed calls since start
// (engine.Stats: Calls, CallErrors), and qps, the calls per second over the
// last interval. It returns at once with interval 0 (off).
func logStats(st *engine.Stats, interval time.Duration, logger *slog.Logger, stop <-chan struct{}) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	last, lastAt := st.Calls.Load(), time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			calls := st.Calls.Load()
			qps := float64(calls-last) / now.Sub(lastAt).Seconds()
			last, lastAt = calls, now
			logger.Info("rpc stats", "sessions", st.SessionsActive.Load(), "sessions_total", st.Sessions.Load(),
				"calls", calls, "failures", st.CallErrors.Load(), "qps", math.Round(qps*10)/10)
		}
	}
}
