package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fae-go/fae/config"
	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/internal/testenv"
)

// TestLogLevelHandler: POST /engine/loglevel on a real engine.API changes the
// live level (form body, query, JSON body, any case), answers the new and the
// previous level, and refuses an unknown or missing level with 400 naming the
// allowed ones; GET is refused.
func TestLogLevelHandler(t *testing.T) {
	lv := new(slog.LevelVar)
	api := engine.NewAPI(slog.New(slog.DiscardHandler))
	api.HandleJSON("/engine/loglevel", logLevelHandler(lv))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go api.Serve(l)
	t.Cleanup(func() { l.Close() })
	base := "http://" + l.Addr().String() + "/engine/loglevel"
	do := func(method, query, ctype, body string) (int, map[string]string) {
		t.Helper()
		req, err := http.NewRequest(method, base+query, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]string
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatalf("%s %s: %v", method, query, err)
		}
		return resp.StatusCode, m
	}
	form := "application/x-www-form-urlencoded"
	steps := []struct {
		method, query, ctype, body string
		status                     int
		want                       slog.Level
		answer                     string // "level" or the "error" text part
	}{
		{"POST", "", form, url.Values{"level": {"debug"}}.Encode(), 200, slog.LevelDebug, "debug"},
		{"POST", "?level=TRACE", "", "", 200, slog.LevelDebug - 4, "trace"},
		{"POST", "", "application/json", `{"level": "alarm"}`, 200, slog.LevelError + 4, "alarm"},
		{"POST", "", form, "level=loud", 400, slog.LevelError + 4, `level "loud": want trace, debug, info, warn, error or alarm`},
		{"POST", "", form, "", 400, slog.LevelError + 4, "no level given"},
		{"POST", "", "application/json", `{"level": 3}`, 400, slog.LevelError + 4, "JSON body"},
		{"GET", "?level=info", "", "", 405, slog.LevelError + 4, "only POST"},
		{"POST", "", form, "level=warn", 200, slog.LevelWarn, "warn"},
	}
	prev := "info"
	for _, s := range steps {
		status, m := do(s.method, s.query, s.ctype, s.body)
		if status != s.status {
			t.Errorf("%s %q %q: status %d, want %d (%v)", s.method, s.query, s.body, status, s.status, m)
		}
		if lv.Level() != s.want {
			t.Errorf("%s %q %q: level %v, want %v", s.method, s.query, s.body, lv.Level(), s.want)
		}
		if s.status == 200 {
			if m["level"] != s.answer || m["previous"] != prev {
				t.Errorf("%s %q %q: answer %v, want level %s previous %s", s.method, s.query, s.body, m, s.answer, prev)
			}
			prev = s.answer
		} else if !strings.Contains(m["error"], s.answer) {
			t.Errorf("%s %q %q: error %q, want it to contain %q", s.method, s.query, s.body, m["error"], s.answer)
		}
	}
}

// TestLevelVarIsLive: a logger from openLog follows its Level at once.
func TestLevelVarIsLive(t *testing.T) {
	out := new(testenv.SyncBuffer)
	lo, err := openLog("info", "stdout", defaultLogConfig(), out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	lo.Logger.Debug("hidden")
	lo.Level.Set(slog.LevelDebug)
	lo.Logger.Debug("shown")
	lo.Close()
	if s := out.String(); strings.Contains(s, "hidden") || !strings.Contains(s, "msg=shown") {
		t.Errorf("log after Close:\n%s\nwant msg=shown and not hidden", s)
	}
}

func defaultLogConfig() config.LogConfig {
	var lc config.LogConfig
	lc.SetDefaults()
	return lc
}

// TestOpenLogErrors: a bad -level or an unusable -log path fails at start,
// naming the flag.
func TestOpenLogErrors(t *testing.T) {
	if _, err := openLog("loud", "stdout", defaultLogConfig(), io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), `-level "loud": want trace, debug`) {
		t.Errorf("bad level: %v", err)
	}
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o644)
	if _, err := openLog("info", filepath.Join(file, "faed.log"), defaultLogConfig(), io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "-log "+file) {
		t.Errorf("path under a file: %v", err)
	}
}

// TestLogConfigKeys: the log section's keys, defaults and checks.
func TestLogConfigKeys(t *testing.T) {
	c, err := config.Parse("t.cf", []byte(`{rpc: {listen_addr: "127.0.0.1:0"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := (config.LogConfig{MaxSizeMB: 100, MaxBackups: 10, MaxAgeDays: 30}); c.Log != want {
		t.Errorf("defaults %+v, want %+v", c.Log, want)
	}
	c, err = config.Parse("t.cf", []byte(`{rpc: {listen_addr: "127.0.0.1:0"}, log: {max_size_mb: 5, compress: true}}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := (config.LogConfig{MaxSizeMB: 5, MaxBackups: 10, MaxAgeDays: 30, Compress: true}); c.Log != want {
		t.Errorf("partial section %+v, want %+v", c.Log, want)
	}
	for conf, want := range map[string]string{
		`log: {max_size_mb: 0}`:   "log.max_size_mb: must be at least 1 (MiB), got 0",
		`log: {max_backups: -1}`:  "log.max_backups: must be 0 (keep all) or more, got -1",
		`log: {max_age_days: -2}`: "log.max_age_days: must be 0 (no age limit) or more, got -2",
		`log: {max_size: 5}`:      "max_size",
	} {
		_, err := config.Parse("t.cf", []byte(`{rpc: {listen_addr: "127.0.0.1:0"}, `+conf+`}`))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", conf, err, want)
		}
	}
}

// TestLogRotation: -log FILE rotates past max_size_mb through lumberjack and
// keeps max_backups rotated files.
func TestLogRotation(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "faed.log")
	lc := config.LogConfig{MaxSizeMB: 1, MaxBackups: 2}
	lo, err := openLog("info", file, lc, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer lo.Close()
	line := strings.Repeat("x", 1000)
	backups := func() []string {
		m, _ := filepath.Glob(filepath.Join(dir, "faed-*.log"))
		return m
	}
	// 4.5 MiB in 1 MiB files: 4 rotations, of which 2 backups are kept.
	// Written in steps so that the queue never overflows (it is 4 MiB).
	for i := range 4700 {
		lo.Logger.Info("filler", "i", i, "pad", line)
		if i%500 == 499 {
			testenv.Eventually(t, 10*time.Second, "queue written", func() bool { return lo.w.pending.Load() == 0 })
		}
	}
	testenv.Eventually(t, 10*time.Second, "2 backups kept", func() bool { return len(backups()) == 2 })
	if r, _ := lo.Dropped(); r != 0 {
		t.Errorf("%d records dropped on a healthy disk", r)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Size() > 1<<20 {
		t.Errorf("current file: %v, size %d, want at most 1 MiB", err, fi.Size())
	}
}

// TestLogDevFullDropsAndCounts: on /dev/full (a real ENOSPC on every write)
// every record is dropped and counted, Write returns at once, the drops are
// reported on stderr, and /dev/full is written as it is (no lumberjack, which
// would try to rename it).
func TestLogDevFullDropsAndCounts(t *testing.T) {
	stderr := new(testenv.SyncBuffer)
	lo, err := openLog("info", "/dev/full", defaultLogConfig(), io.Discard, stderr)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := lo.w.dst.(*os.File); !ok {
		t.Errorf("/dev/full opened as %T, want a plain *os.File", lo.w.dst)
	}
	const n = 1000
	var slowest time.Duration
	for i := range n {
		start := time.Now()
		lo.Logger.Info("to a full disk", "i", i)
		slowest = max(slowest, time.Since(start))
	}
	testenv.Eventually(t, 10*time.Second, "all records counted as dropped", func() bool {
		r, _ := lo.Dropped()
		return r == n
	})
	lo.Close()
	r, b := lo.Dropped()
	if r != n || b < n*30 {
		t.Errorf("dropped %d records, %d bytes; want %d records of 30+ bytes", r, b, n)
	}
	if slowest > 100*time.Millisecond {
		t.Errorf("slowest log call took %s", slowest)
	}
	want := fmt.Sprintf("faed: log /dev/full: %d records (%d bytes) dropped since start; last cause: write /dev/full: no space left on device", r, b)
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr:\n%s\nwant the last line %q", stderr, want)
	}
	if rr, bb := logDropped(); rr != r || bb != b {
		t.Errorf("logDropped() = %d, %d; want the active log's %d, %d", rr, bb, r, b)
	}
}

// TestLogStalledWriterNeverBlocks: a log file that stops taking writes (a FIFO
// whose reader reads nothing: the write blocks, as on a hung disk) never
// blocks a log call; what the queue cannot hold is dropped and counted, and
// every record is either written or counted once the reader reads again.
func TestLogStalledWriterNeverBlocks(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "log.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	rfd, err := syscall.Open(fifo, syscall.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	lo, err := openLog("info", fifo, defaultLogConfig(), io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("p", 200)
	const n = 30000 // ~7 MiB: past the pipe (64 KiB) and the queue (4096 records)
	var slowest time.Duration
	for i := range n {
		start := time.Now()
		lo.Logger.Info("stalled", "i", i, "pad", pad)
		slowest = max(slowest, time.Since(start))
	}
	dropped, _ := lo.Dropped()
	if dropped == 0 {
		t.Errorf("nothing dropped with the reader stalled")
	}
	if slowest > 500*time.Millisecond {
		t.Errorf("slowest log call took %s with the reader stalled", slowest)
	}
	// The reader reads again: the queue drains, and written + dropped = n.
	syscall.SetNonblock(rfd, false)
	r := os.NewFile(uintptr(rfd), fifo)
	lines := make(chan int)
	go func() {
		c := 0
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 4096), 1<<20)
		for sc.Scan() {
			if bytes.Contains(sc.Bytes(), []byte("msg=stalled")) {
				c++
			}
		}
		lines <- c
	}()
	lo.Close() // the queue is written, then the FIFO closed: the reader sees EOF
	select {
	case written := <-lines:
		dropped, _ = lo.Dropped()
		if uint64(written)+dropped != n {
			t.Errorf("written %d + dropped %d = %d, want %d", written, dropped, uint64(written)+dropped, n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reader did not see the end of the log")
	}
	r.Close()
}
