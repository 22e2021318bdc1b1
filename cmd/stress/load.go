package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Load is the shape of one run (one level of a sweep).
type Load struct {
	// Workers is how many sessions run at once: in closed loop each worker
	// starts its next session as soon as the last one ends; in open loop it
	// bounds the sessions outstanding (a late session waits for a worker,
	// and the wait counts in its latency).
	Workers int
	// Rate is the open loop's sessions per second, session i due at start +
	// i/Rate; calls/s is Rate × Loop × the mix's calls per round. The first
	// call of a session is due when the session is (a late start and the
	// connect count in its latency), each later one when the one before it
	// was answered. 0 = closed loop: a call is due when it is sent.
	Rate float64
	// Sessions bounds the sessions started; 0 = no bound (then Duration must be set).
	Sessions int64
	// Duration bounds the time sessions are started (closed loop) or due
	// (open loop); sessions under way then finish. 0 = no bound.
	Duration time.Duration
	// Loop is the rounds of the mix per session (the original's -loop).
	Loop int
	// KeepAlive keeps a worker's connection from one session to the next
	// (opened again after an error); otherwise every session connects and
	// closes, as a php-fpm request does.
	KeepAlive bool
	// Timeout bounds each connect, and each read and write of a call.
	Timeout time.Duration
}

// Progress is where and how the per-second progress line goes; W nil = none.
type Progress struct {
	W    io.Writer
	Neat bool // the original's -neatstat: "c:… calls/s:… sessions/s:… p99:… errs:…"
}

// loadRun is one Load in progress.
type loadRun struct {
	Load
	mix     *Mix
	calls   []call
	picker  *Picker
	rec     *Recorder
	start   time.Time
	end     time.Time     // zero = no Duration bound
	every   time.Duration // open loop: between two sessions' due times
	claimed atomic.Int64  // sessions claimed by workers so far

	mu   sync.Mutex
	open map[*conn]struct{} // connections open now, closed at once when ctx ends (at most Workers)
}

// Run runs l against the nodes of picker with the calls of mix, recording
// into rec, printing progress every second, until the bound of l or ctx's
// end (then calls in flight are cut off: their connections are closed and
// what follows is not counted). It returns the report of the run.
func Run(ctx context.Context, l Load, mix *Mix, picker *Picker, rec *Recorder, prog Progress) *Report {
	r := &loadRun{Load: l, mix: mix, calls: mix.calls(), picker: picker, rec: rec, start: time.Now(), open: map[*conn]struct{}{}}
	if l.Duration > 0 {
		r.end = r.start.Add(l.Duration)
	}
	if l.Rate > 0 {
		r.every = time.Duration(float64(time.Second) / l.Rate)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopCut := context.AfterFunc(ctx, r.closeAll)
	defer stopCut()
	var wg sync.WaitGroup
	for range l.Workers {
		wg.Go(func() { r.worker(ctx) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	r.progress(ctx, done, prog)
	elapsed := time.Since(r.start)
	return rec.Report(l.Workers, l.Rate, elapsed)
}

// worker runs sessions until the bound, one after another.
func (r *loadRun) worker(ctx context.Context) {
	var c *conn
	defer func() { r.drop(c) }()
	for {
		i := r.claimed.Add(1) - 1
		if r.Sessions > 0 && i >= r.Sessions {
			return
		}
		due := time.Now()
		if r.every > 0 {
			due = r.start.Add(time.Duration(i) * r.every)
			if !r.end.IsZero() && !due.Before(r.end) {
				return
			}
			if !sleepUntil(ctx, due) {
				return
			}
		} else if !r.end.IsZero() && !due.Before(r.end) {
			return
		}
		if ctx.Err() != nil {
			return
		}
		c = r.session(ctx, c, due)
	}
}

// sleepUntil waits until t; false when ctx ends first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// session runs one session due at due on c (nil: connect first) and
// returns the connection to keep (nil unless KeepAlive and no error).
func (r *loadRun) session(ctx context.Context, c *conn, due time.Time) *conn {
	if c == nil {
		var err error
		if c, err = r.connect(); err != nil {
			if ctx.Err() == nil {
				r.rec.Error(KindConnect, err)
			}
			return nil
		}
	}
	sent := due
	if r.every == 0 {
		sent = time.Now() // closed loop: a call is due when it is sent
	}
	ok := r.rounds(ctx, c, sent)
	if ctx.Err() == nil {
		r.rec.Session(time.Since(due))
	}
	if !ok || !r.KeepAlive {
		r.drop(c)
		return nil
	}
	return c
}

// rounds makes Loop rounds of the mix on c, the first call due at sent and
// each later one when the one before it was answered. A session ends at
// its first error, as the original's did; it reports whether none occurred.
func (r *loadRun) rounds(ctx context.Context, c *conn, sent time.Time) bool {
	fail := func(kind Kind, name string, err error) bool {
		r.rec.Error(kind, fmt.Errorf("%s: %s: %w", c.addr, name, err))
		return false
	}
	for range r.Loop {
		key := r.mix.randomKey()
		for _, call := range r.calls {
			if ctx.Err() != nil {
				return false
			}
			err := call.do(ctx, c.FunServantClient, key)
			now := time.Now()
			if ctx.Err() != nil {
				return false // cut off by the end of the run: not counted
			}
			kind := KindCall
			if err != nil {
				kind = classify(err)
			}
			if err == nil || kind == KindCall {
				r.rec.Call(now.Sub(sent))
			}
			if err != nil {
				return fail(kind, call.name, err)
			}
			sent = now
		}
	}
	return true
}

// connect opens a connection to the next node and notes it as open.
func (r *loadRun) connect() (*conn, error) {
	t := r.picker.Pick()
	c, err := dial(t, r.Timeout)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.Addr, err)
	}
	r.rec.conns.Add(1)
	r.rec.live.Add(1)
	r.mu.Lock()
	r.open[c] = struct{}{}
	r.mu.Unlock()
	return c, nil
}

// drop closes c (nil is ignored) unless closeAll already did.
func (r *loadRun) drop(c *conn) {
	if c == nil {
		return
	}
	r.mu.Lock()
	_, ok := r.open[c]
	delete(r.open, c)
	r.mu.Unlock()
	if ok {
		c.Close()
		r.rec.live.Add(-1)
	}
}

// closeAll closes every open connection: the calls in flight end at once.
func (r *loadRun) closeAll() {
	r.mu.Lock()
	open := r.open
	r.open = map[*conn]struct{}{}
	r.mu.Unlock()
	for c := range open {
		c.Close()
		r.rec.live.Add(-1)
	}
}

// progress prints a line every second until done.
func (r *loadRun) progress(ctx context.Context, done <-chan struct{}, prog Progress) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last, lastCalls, lastSess := r.start, int64(0), int64(0)
	for {
		select {
		case <-done:
			return
		case now := <-tick.C:
			calls, sess := r.rec.calls.Load(), r.rec.sessions.Load()
			s := now.Sub(last).Seconds()
			p99 := r.rec.Tick()
			if prog.W != nil && ctx.Err() == nil {
				fmt.Fprintln(prog.W, progressLine(prog.Neat, now.Sub(r.start), r.Workers,
					float64(calls-lastCalls)/s, float64(sess-lastSess)/s, p99, r.rec, runtime.NumGoroutine()))
			}
			last, lastCalls, lastSess = now, calls, sess
		}
	}
}

// runLevels runs every level of o and returns the report of them all (with
// each level's report in Levels when there are several).
func runLevels(ctx context.Context, o *options, mix *Mix, picker *Picker, errOut, info io.Writer) *Report {
	levels := o.levels()
	if !o.logoff {
		mode := fmt.Sprintf("closed loop, c %v", levelsText(levels))
		if o.rate > 0 {
			mode = fmt.Sprintf("open loop, %g sessions/s, at most %d outstanding", o.rate, levels[0])
		}
		conn := "a connection per session"
		if o.keepalive {
			conn = "kept connections"
		}
		fmt.Fprintf(info, "stress: %d node(s) %v; %s; %s; %d round(s) of [%s] per session\n",
			len(picker.Targets()), picker.Targets(), mode, conn, o.loop, mix.Names())
	}
	total := NewRecorder(nil)
	start := time.Now()
	var reps []*Report
	for _, c := range levels {
		if ctx.Err() != nil {
			break
		}
		rec := NewRecorder(errOut)
		rep := Run(ctx, o.load(c), mix, picker, rec, Progress{W: info, Neat: o.neatstat})
		total.merge(rec)
		if len(levels) > 1 && !o.logoff {
			fmt.Fprintf(info, "c:%d ", c)
			rep.WriteText(info)
		}
		reps = append(reps, rep)
	}
	if len(reps) == 1 {
		return reps[0]
	}
	rep := total.Report(levels[len(levels)-1], o.rate, time.Since(start))
	rep.Levels = reps
	return rep
}

// levelsText is "16" or "10..5000 by 10".
func levelsText(ls []int) string {
	if len(ls) == 1 {
		return fmt.Sprint(ls[0])
	}
	return fmt.Sprintf("%d..%d by %d", ls[0], ls[len(ls)-1], ls[1]-ls[0])
}
