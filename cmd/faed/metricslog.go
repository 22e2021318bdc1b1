package main

import (
	"fmt"
	"io"
	"time"

	"github.com/fae-go/fae/config"
)

// writeMetricsLog appends line() to w every interval (rpc.stats_output_interval)
// until stop is closed, and once more at stop, so the last figures of a run
// are kept. With interval 0 it returns at once.
func writeMetricsLog(w io.Writer, line func() []byte, interval time.Duration, stop <-chan struct{}) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			w.Write(line())
			return
		case <-t.C:
			w.Write(line())
		}
	}
}

// openMetricsLog opens metrics_logfile (appended; rotated and aged as the main
// log, by the log section, through lumberjack) behind its own non-blocking
// writer: a full or stalled disk drops lines, counted and reported on stderr,
// and never holds anything up. path "" = off (nil, nil). The error names the
// key.
func openMetricsLog(path string, cfg config.LogConfig, stderr io.Writer) (*asyncWriter, error) {
	if path == "" {
		return nil, nil
	}
	dst, err := openLogFile(path, cfg)
	if err != nil {
		return nil, fmt.Errorf("metrics_logfile %s: %w", path, err)
	}
	return newAsyncWriter(dst, path, stderr), nil
}

// startMetricsLog writes a line() to w every interval until the returned
// function is called; that function writes a last line, waits for it to be
// queued and closes w. With w nil or interval 0 it writes nothing (and still
// closes w).
func startMetricsLog(w *asyncWriter, interval time.Duration, line func() []byte) (stop func()) {
	if w == nil {
		return func() {}
	}
	if interval <= 0 {
		return func() { w.Close() }
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		writeMetricsLog(w, line, interval, quit)
	}()
	return func() {
		close(quit)
		<-done
		w.Close()
	}
}
