package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/fae-go/fae/config"
)

// Log writer bounds. A record that would take the queue past either is
// dropped and counted, never waited for: the original faed hung on a full
// disk. 4096 records or 4 MiB is a few seconds of the busiest debug logging
// (session end lines, ~200 bytes each) while the disk stalls.
const (
	logQueueRecords = 4096    // records waiting to be written
	logQueueBytes   = 4 << 20 // bytes waiting to be written
	// logDropReportEvery is how often, at most, the drops are reported on
	// stderr (the log itself is what fails): the first at once, then a
	// summary every 10 s while the count grows, and a last one at exit.
	logDropReportEvery = 10 * time.Second
	// logCloseWait bounds the wait at exit for the queue to be written: a
	// hung disk must not hang the exit either.
	logCloseWait = 2 * time.Second
)

// logLevels are the -level and POST /engine/loglevel names, the original's.
var logLevels = []struct {
	name  string
	level slog.Level
}{
	{"trace", slog.LevelDebug - 4}, {"debug", slog.LevelDebug}, {"info", slog.LevelInfo},
	{"warn", slog.LevelWarn}, {"error", slog.LevelError}, {"alarm", slog.LevelError + 4},
}

const logLevelNames = "trace, debug, info, warn, error or alarm"

// parseLevel returns the level named name (case-insensitive).
func parseLevel(name string) (slog.Level, bool) {
	for _, l := range logLevels {
		if strings.EqualFold(name, l.name) {
			return l.level, true
		}
	}
	return 0, false
}

// levelName is the -level name of lv, or slog's own name for a level between them.
func levelName(lv slog.Level) string {
	for _, l := range logLevels {
		if l.level == lv {
			return l.name
		}
	}
	return lv.String()
}

// logOutput is faed's log: the logger, its live level and the non-blocking
// writer under it.
type logOutput struct {
	Logger *slog.Logger
	// Level is the logger's minimum level; set it to change the level live
	// (logLevelHandler does).
	Level *slog.LevelVar
	// Trace is the trace stream's logger (log.trace_file; servant.Options.TraceLogger):
	// every record is written, whatever Level says.
	Trace *slog.Logger
	w     *asyncWriter
	tw    *asyncWriter // the trace stream's own queue
}

// activeLog is the process's log, once openLog has run: logDropped reads it.
var activeLog atomic.Pointer[asyncWriter]

// logDropped returns the log records and bytes dropped since start because
// the log could not take them (queue full, or the write failed: ENOSPC…);
// zeros before the log is open. For the HTTP API and metrics.
func logDropped() (records, bytes uint64) {
	if w := activeLog.Load(); w != nil {
		return w.Dropped()
	}
	return 0, 0
}

// openLog opens faed's log for -level (a logLevels name) and -log ("" or
// "stdout" = stdout; else a file, appended): a regular file, or one that does
// not exist yet, rotates and ages by cfg (lumberjack); another kind of file
// (/dev/full, a FIFO) is written as it is, never renamed. Every record goes
// through an asyncWriter, so that logging never blocks a call; its drops are
// reported on stderr. The errors name the flag at fault.
func openLog(level, file string, cfg config.LogConfig, stdout, stderr io.Writer) (*logOutput, error) {
	lv, ok := parseLevel(level)
	if !ok {
		return nil, fmt.Errorf("-level %q: want %s", level, logLevelNames)
	}
	dst, name := io.WriteCloser(nopCloser{stdout}), "stdout"
	if file != "" && file != "stdout" {
		var err error
		if dst, err = openLogFile(file, cfg); err != nil {
			return nil, fmt.Errorf("-log %s: %w", file, err)
		}
		name = file
	}
	lo := &logOutput{Level: new(slog.LevelVar), w: newAsyncWriter(dst, name, stderr)}
	lo.Level.Set(lv)
	lo.Logger = slog.New(slog.NewTextHandler(lo.w, &slog.HandlerOptions{Level: lo.Level}))
	activeLog.Store(lo.w)
	if err := lo.openTrace(cfg, stderr); err != nil {
		lo.w.Close()
		return nil, err
	}
	return lo, nil
}

// openTrace opens the trace stream: a queue of its own (the same bounds as
// the log's, drops counted apart) onto log.trace_file, or onto the log itself
// when it is "" (records marked stream=trace). The error names the key.
func (lo *logOutput) openTrace(cfg config.LogConfig, stderr io.Writer) error {
	all := &slog.HandlerOptions{Level: slog.Level(math.MinInt)}
	if cfg.TraceFile == "" {
		lo.tw = newAsyncWriter(nopCloser{lo.w}, "trace stream", stderr)
		lo.Trace = slog.New(slog.NewTextHandler(lo.tw, all)).With("stream", "trace")
		return nil
	}
	dst, err := openLogFile(cfg.TraceFile, cfg)
	if err != nil {
		return fmt.Errorf("log.trace_file %s: %w", cfg.TraceFile, err)
	}
	lo.tw = newAsyncWriter(dst, cfg.TraceFile, stderr)
	lo.Trace = slog.New(slog.NewTextHandler(lo.tw, all))
	return nil
}

// Drops returns the records and bytes dropped so far by each stream: "log"
// and "trace".
func (lo *logOutput) Drops() map[string][2]uint64 {
	r, b := lo.w.Dropped()
	tr, tb := lo.tw.Dropped()
	return map[string][2]uint64{"log": {r, b}, "trace": {tr, tb}}
}

// Dropped returns the records and bytes dropped so far.
func (lo *logOutput) Dropped() (records, bytes uint64) { return lo.w.Dropped() }

// Close writes what is queued (waiting at most logCloseWait) and closes the file.
func (lo *logOutput) Close() {
	lo.tw.Close() // first: it may write into lo.w
	lo.w.Close()
}

// openLogFile opens file for appending: through lumberjack when it is a
// regular file or does not exist (lumberjack creates it, and its directory,
// mode 0600), else as it is.
func openLogFile(file string, cfg config.LogConfig) (io.WriteCloser, error) {
	if fi, err := os.Stat(file); err == nil && !fi.Mode().IsRegular() {
		return os.OpenFile(file, os.O_WRONLY|os.O_APPEND, 0)
	}
	lj := &lumberjack.Logger{Filename: file, MaxSize: cfg.MaxSizeMB, MaxBackups: cfg.MaxBackups,
		MaxAge: cfg.MaxAgeDays, Compress: cfg.Compress}
	if _, err := lj.Write(nil); err != nil { // opens it now: a bad path fails at start
		return nil, err
	}
	return lj, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// asyncWriter queues each Write (one log record: slog.TextHandler writes a
// record in one call) for one goroutine that writes it to dst. Write never
// waits on dst: a record the queue cannot take (logQueueRecords,
// logQueueBytes) is dropped, as is one whose write fails; both are counted.
type asyncWriter struct {
	dst    io.WriteCloser
	name   string    // for the drop reports
	stderr io.Writer // where drops are reported

	mu      sync.RWMutex // Write holds it shared; Close exclusive, to close queue
	closed  bool
	queue   chan []byte
	pending atomic.Int64 // bytes queued
	done    chan struct{}

	droppedRecords, droppedBytes atomic.Uint64
	lastErr                      atomic.Pointer[string]
}

func newAsyncWriter(dst io.WriteCloser, name string, stderr io.Writer) *asyncWriter {
	w := &asyncWriter{dst: dst, name: name, stderr: stderr, queue: make(chan []byte, logQueueRecords),
		done: make(chan struct{})}
	go w.drain()
	return w
}

// Write queues a copy of p, or drops it; it always reports success, since
// slog could do nothing better with an error.
func (w *asyncWriter) Write(p []byte) (int, error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		w.drop(len(p), "log closed")
		return len(p), nil
	}
	if w.pending.Add(int64(len(p))) > logQueueBytes {
		w.pending.Add(-int64(len(p)))
		w.drop(len(p), "queue full")
		return len(p), nil
	}
	select {
	case w.queue <- append([]byte(nil), p...):
	default:
		w.pending.Add(-int64(len(p)))
		w.drop(len(p), "queue full")
	}
	return len(p), nil
}

func (w *asyncWriter) drop(n int, why string) {
	w.droppedRecords.Add(1)
	w.droppedBytes.Add(uint64(n))
	w.lastErr.Store(&why)
}

// Dropped returns the records and bytes dropped so far.
func (w *asyncWriter) Dropped() (records, bytes uint64) {
	return w.droppedRecords.Load(), w.droppedBytes.Load()
}

// drain writes the queue to dst until Close, reporting drops on stderr.
func (w *asyncWriter) drain() {
	defer close(w.done)
	tick := time.NewTicker(logDropReportEvery)
	defer tick.Stop()
	var reported uint64
	var lastReport time.Time
	report := func(force bool) {
		n, _ := w.Dropped()
		if n != reported && (force || reported == 0 || time.Since(lastReport) >= logDropReportEvery) {
			reported, lastReport = n, time.Now()
			w.reportDrops()
		}
	}
	for {
		select {
		case p, ok := <-w.queue:
			if !ok {
				report(true)
				return
			}
			w.pending.Add(-int64(len(p)))
			if _, err := w.dst.Write(p); err != nil {
				w.drop(len(p), err.Error())
			}
			report(false)
		case <-tick.C:
			report(false)
		}
	}
}

// reportDrops writes one line on stderr:
//
//	faed: log stdout: 12 records (2400 bytes) dropped since start; last cause: queue full
func (w *asyncWriter) reportDrops() {
	n, b := w.Dropped()
	cause := ""
	if e := w.lastErr.Load(); e != nil {
		cause = *e
	}
	fmt.Fprintf(w.stderr, "faed: log %s: %d records (%d bytes) dropped since start; last cause: %s\n",
		w.name, n, b, cause)
}

// Close stops the queue, waits at most logCloseWait for it to be written and
// closes dst; records written after Close are dropped and counted.
func (w *asyncWriter) Close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	close(w.queue)
	w.mu.Unlock()
	select {
	case <-w.done:
		w.dst.Close()
	case <-time.After(logCloseWait):
		// dst is stuck in a write: leave it to the process exit.
	}
}

// logLevelHandler is POST /engine/loglevel: it sets lv to the level named by
// the form value level (URL query or form body: level=debug) or by a JSON
// body {"level": "debug"}, and answers {"level": "debug", "previous": "info"}
// with 200; an unknown or missing level gets 400 and
// {"error": "...want trace, debug, info, warn, error or alarm"}, another method 405.
func logLevelHandler(lv *slog.LevelVar) func(*http.Request) (any, int) {
	return func(r *http.Request) (any, int) {
		if r.Method != http.MethodPost {
			return map[string]string{"error": "method " + r.Method + ": only POST changes the log level"},
				http.StatusMethodNotAllowed
		}
		name, err := requestedLevel(r)
		if err != nil {
			return map[string]string{"error": err.Error()}, http.StatusBadRequest
		}
		level, ok := parseLevel(name)
		if !ok {
			return map[string]string{"error": fmt.Sprintf("level %q: want %s", name, logLevelNames)},
				http.StatusBadRequest
		}
		prev := lv.Level()
		lv.Set(level)
		slog.Info("log level changed", "level", levelName(level), "previous", levelName(prev))
		return map[string]string{"level": levelName(level), "previous": levelName(prev)}, http.StatusOK
	}
}

// maxLevelBody bounds a JSON body of POST /engine/loglevel (bytes).
const maxLevelBody = 1 << 10

// requestedLevel is the level name a POST /engine/loglevel asks for.
func requestedLevel(r *http.Request) (string, error) {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var body struct {
			Level string `json:"level"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, maxLevelBody)).Decode(&body); err != nil {
			return "", fmt.Errorf("JSON body: %v (want {\"level\": \"debug\"})", err)
		}
		if body.Level == "" {
			return "", errors.New("JSON body has no level: want {\"level\": \"debug\"}, one of " + logLevelNames)
		}
		return body.Level, nil
	}
	if err := r.ParseForm(); err != nil {
		return "", fmt.Errorf("form: %v", err)
	}
	name := r.Form.Get("level")
	if name == "" {
		return "", errors.New("no level given: want level=NAME, one of " + logLevelNames)
	}
	return name, nil
}
