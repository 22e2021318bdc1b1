package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/apache/thrift/lib/go/thrift"
)

// Kind is the kind of a failed call or connect, as the report counts them.
type Kind int

// The kinds of errors. The original counted conn, io and call; timeout is
// split from io here.
const (
	KindConnect Kind = iota // the connect failed (refused, unreachable, its timeout)
	KindIO                  // the connection broke: reset, EOF, broken pipe, a garbled reply
	KindTimeout             // no reply within -timeout
	KindCall                // faed answered with an error (an exception: unknown pool, a miss, …)
	numKinds
)

var kindNames = [numKinds]string{"connect", "io", "timeout", "call"}

func (k Kind) String() string { return kindNames[k] }

// classify is the kind of err, an error of a call on an open connection.
func classify(err error) Kind {
	var ne net.Error
	var te thrift.TTransportException
	switch {
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, os.ErrDeadlineExceeded):
		return KindTimeout
	case errors.As(err, &te):
		if te.TypeId() == thrift.TIMED_OUT {
			return KindTimeout
		}
		return KindIO
	case errors.As(err, new(thrift.TProtocolException)):
		return KindIO
	}
	return KindCall // a TApplicationException or an exception of the IDL (TCacheMissed, …)
}

// Latency histograms hold microseconds from 1 µs to an hour (the original
// tool's io timeout), to 3 significant digits (HdrHistogram's usual setting).
const (
	histMin     = 1
	histMax     = int64(time.Hour / time.Microsecond)
	histSigFigs = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histSigFigs) }

// Recorder collects the counts, latencies and errors of a run. It is safe
// for concurrent use: counters are atomic, the histograms sit under one mutex.
type Recorder struct {
	calls    atomic.Int64 // calls answered by faed (ok or with an error)
	sessions atomic.Int64 // sessions ended, whether they ran every round or stopped at an error
	conns    atomic.Int64 // connections opened
	live     atomic.Int64 // connections open now
	errs     [numKinds]atomic.Int64

	mu       sync.Mutex
	total    *hdrhistogram.Histogram // every call's latency, µs
	interval *hdrhistogram.Histogram // since the last Tick
	sessLat  *hdrhistogram.Histogram // every session's latency (due to end), µs
	first    [numKinds]string        // the first message of each kind

	errOut io.Writer // per-error lines (nil = none: -erroff)
}

// NewRecorder is an empty Recorder; errOut (nil for none) receives one line per error.
func NewRecorder(errOut io.Writer) *Recorder {
	return &Recorder{total: newHist(), interval: newHist(), sessLat: newHist(), errOut: errOut}
}

func micros(d time.Duration) int64 { return min(max(d.Microseconds(), histMin), histMax) }

// Call records one call that faed answered, d from when it was due.
func (r *Recorder) Call(d time.Duration) {
	r.calls.Add(1)
	us := micros(d)
	r.mu.Lock()
	r.total.RecordValue(us)
	r.interval.RecordValue(us)
	r.mu.Unlock()
}

// Session records the end of a session that took d from when it was due.
func (r *Recorder) Session(d time.Duration) {
	r.sessions.Add(1)
	r.mu.Lock()
	r.sessLat.RecordValue(micros(d))
	r.mu.Unlock()
}

// Error counts err of kind k, keeps its message if it is the first of its
// kind, and prints it unless -erroff.
func (r *Recorder) Error(k Kind, err error) {
	r.errs[k].Add(1)
	msg := err.Error()
	r.mu.Lock()
	if r.first[k] == "" {
		r.first[k] = msg
	}
	r.mu.Unlock()
	if r.errOut != nil {
		fmt.Fprintf(r.errOut, "%s error: %s\n", k, msg)
	}
}

// Errors is the number of errors of every kind.
func (r *Recorder) Errors() int64 {
	var n int64
	for i := range r.errs {
		n += r.errs[i].Load()
	}
	return n
}

// Tick is the p99 of the calls since the last Tick, and resets it.
func (r *Recorder) Tick() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.interval.ValueAtQuantile(99)
	r.interval.Reset()
	return time.Duration(p) * time.Microsecond
}

// Latency is the percentiles of a latency histogram, in milliseconds.
type Latency struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p99_9_ms"`
	Max  float64 `json:"max_ms"`
}

func latencyOf(h *hdrhistogram.Histogram) Latency {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Latency{P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)), P99: ms(h.ValueAtQuantile(99)),
		P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max())}
}

// ErrorCount is the errors of one kind and the message of the first.
type ErrorCount struct {
	Count int64  `json:"count"`
	First string `json:"first,omitempty"`
}

// Report is the outcome of a run (or of one level of a sweep).
type Report struct {
	Concurrency  int     `json:"concurrency"`    // workers (-c, or the sweep's level)
	Rate         float64 `json:"rate,omitempty"` // open loop: sessions due per second; 0 = closed loop
	ElapsedS     float64 `json:"elapsed_s"`      // seconds
	Calls        int64   `json:"calls"`          // calls answered by faed (ok or with an error)
	CallsPerS    float64 `json:"calls_per_s"`
	Sessions     int64   `json:"sessions"` // sessions ended
	SessionsPerS float64 `json:"sessions_per_s"`
	Conns        int64   `json:"conns"` // connections opened
	// Latency is per call, from when the call was due (open loop) or sent
	// (closed loop) to its reply.
	Latency Latency `json:"latency"`
	// SessionLatency is per session, from when it was due (or started) to
	// its end.
	SessionLatency Latency               `json:"session_latency"`
	Errors         map[string]ErrorCount `json:"errors"`           // by kind: connect, io, timeout, call
	Levels         []*Report             `json:"levels,omitempty"` // a sweep's levels
}

// Report is what r has recorded, over elapsed.
func (r *Recorder) Report(c int, rate float64, elapsed time.Duration) *Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := &Report{Concurrency: c, Rate: rate, ElapsedS: elapsed.Seconds(), Calls: r.calls.Load(),
		Sessions: r.sessions.Load(), Conns: r.conns.Load(), Latency: latencyOf(r.total),
		SessionLatency: latencyOf(r.sessLat), Errors: map[string]ErrorCount{}}
	if s := elapsed.Seconds(); s > 0 {
		rep.CallsPerS, rep.SessionsPerS = float64(rep.Calls)/s, float64(rep.Sessions)/s
	}
	for k := range numKinds {
		rep.Errors[k.String()] = ErrorCount{r.errs[k].Load(), r.first[k]}
	}
	return rep
}

// merge adds o's histograms and counts into r (a sweep's total).
func (r *Recorder) merge(o *Recorder) {
	r.calls.Add(o.calls.Load())
	r.sessions.Add(o.sessions.Load())
	r.conns.Add(o.conns.Load())
	o.mu.Lock()
	defer o.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total.Merge(o.total)
	r.sessLat.Merge(o.sessLat)
	for k := range numKinds {
		r.errs[k].Add(o.errs[k].Load())
		if r.first[k] == "" {
			r.first[k] = o.first[k]
		}
	}
}

// WriteText writes the report as the original's closing line, extended:
//
//	Elapsed: 10.002s, calls: {412345, 41226.3/s}, sessions: {412345, 41226.3/s}, conns: 412345, errors: {conn:0, io:0, timeout:0, call:0}
//	Latency per call (ms): p50 0.312 p90 0.498 p99 0.901 p99.9 2.113 max 12.345
//	Latency per session (ms): p50 …
//	First call error: …   (one line per kind that occurred)
func (rep *Report) WriteText(w io.Writer) {
	e := rep.Errors
	fmt.Fprintf(w, "Elapsed: %s, calls: {%d, %.1f/s}, sessions: {%d, %.1f/s}, conns: %d, errors: {conn:%d, io:%d, timeout:%d, call:%d}\n",
		time.Duration(rep.ElapsedS*float64(time.Second)).Round(time.Millisecond), rep.Calls, rep.CallsPerS,
		rep.Sessions, rep.SessionsPerS, rep.Conns, e["connect"].Count, e["io"].Count, e["timeout"].Count, e["call"].Count)
	fmt.Fprintf(w, "Latency per call (ms): %s\n", rep.Latency)
	fmt.Fprintf(w, "Latency per session (ms): %s\n", rep.SessionLatency)
	for k := range numKinds {
		if ec := e[k.String()]; ec.Count > 0 {
			fmt.Fprintf(w, "First %s error: %s\n", k, ec.First)
		}
	}
}

func (l Latency) String() string {
	return fmt.Sprintf("p50 %.3f p90 %.3f p99 %.3f p99.9 %.3f max %.3f", l.P50, l.P90, l.P99, l.P999, l.Max)
}

// progressLine is the line printed every second: neat (the original's
// -neatstat, extended) or full (with totals, live connections and goroutines).
func progressLine(neat bool, elapsed time.Duration, c int, callsPS, sessPS float64, p99 time.Duration, r *Recorder, goroutines int) string {
	p := fmt.Sprintf("%.3f", float64(p99.Microseconds())/1000)
	if neat {
		return fmt.Sprintf("c:%d calls/s:%.0f sessions/s:%.0f p99:%sms errs:%d", c, callsPS, sessPS, p, r.Errors())
	}
	return fmt.Sprintf("%s c:%d sessions:%d calls:%d calls/s:%.0f sessions/s:%.0f p99:%sms errs:%d conns:%d go:%d",
		elapsed.Round(time.Second), c, r.sessions.Load(), r.calls.Load(), callsPS, sessPS, p, r.Errors(), r.live.Load(), goroutines)
}
