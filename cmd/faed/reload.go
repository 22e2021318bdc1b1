package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fae-go/fae/config"
	"github.com/fae-go/fae/internal/gcfloor"
	"github.com/fae-go/fae/servant"
)

// errNoConfigFile is what reload returns when faed runs on the embedded
// default config (no -conf): there is no file to read again.
var errNoConfigFile = errors.New("no config file to reload: faed runs on the embedded default config (start it with -conf FILE)")

// ReloadCounts counts config reloads by result since start. Every call of
// reloader.reload counts once: by SIGHUP, by the watchdog, or by the HTTP API.
type ReloadCounts struct {
	OK     atomic.Int64 // reloads applied (keys that need a restart, if any, ignored)
	Failed atomic.Int64 // reloads refused: unreadable or bad file, no file, servant error; the running config stays
}

// reloader applies the config file to a running faed: the whole file is
// parsed and validated (config.Parse) before anything changes, then
// memory_limit is set and the servant swaps in a new generation. Reloads are
// serialised. Keys only a restart can apply keep their boot values and are
// logged as ignored at every reload that asks for a change of them.
type reloader struct {
	path   string         // the -conf file; "" = the embedded default config
	boot   *config.Config // the config faed started with (listeners, protocol… keep its values)
	svt    *servant.FunServant
	logger *slog.Logger
	counts ReloadCounts

	mu       sync.Mutex
	memLimit int64 // memory_limit in force, bytes; 0 = none
	gcFloor  int64 // gc_heap_floor in force, bytes; 0 = none
	floor    *gcfloor.Floor
	seen     []byte // the file's content at the last reload (or at start): the watchdog reloads when it differs
}

// newReloader returns the reloader of the running config boot, read from path
// ("" = embedded) whose content was data.
func newReloader(path string, data []byte, boot *config.Config, svt *servant.FunServant, logger *slog.Logger) *reloader {
	return &reloader{path: path, boot: boot, svt: svt, logger: logger, memLimit: boot.MemoryLimit, gcFloor: boot.GCHeapFloor, seen: data}
}

// reload reads the config file again and applies it. It returns the keys
// whose change was ignored because only a restart applies them (as
// "rpc.listen_addr", "servants.lcache"), and an error when nothing changed:
// errNoConfigFile without -conf, the file's read error, the config error
// naming the file and the key at fault, or the servant's error building the
// new pools. Safe for concurrent use; this is what POST /engine/reload calls.
func (r *reloader) reload() (restart []string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := time.Now()
	restart, err = r.apply()
	if err != nil {
		r.counts.Failed.Add(1)
		r.logger.Error("config reload failed; the running config stays", "err", err,
			"reloads_ok", r.counts.OK.Load(), "reloads_failed", r.counts.Failed.Load())
		return restart, err
	}
	r.counts.OK.Add(1)
	if len(restart) > 0 {
		r.logger.Warn("config keys changed that only a restart applies: ignored", "keys", strings.Join(restart, ", "))
	}
	r.logger.Info("config reloaded", "config", r.path, "took", time.Since(start).Round(time.Microsecond),
		"reloads_ok", r.counts.OK.Load(), "reloads_failed", r.counts.Failed.Load())
	return restart, nil
}

// apply is reload under r.mu, without the counting and logging.
func (r *reloader) apply() ([]string, error) {
	if r.path == "" {
		return nil, errNoConfigFile
	}
	data, err := os.ReadFile(r.path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", r.path, err)
	}
	r.seen = data // a bad file is reported once, not at every watchdog tick
	cfg, err := config.Parse(r.path, data)
	if err != nil {
		return nil, err
	}
	restart := config.RestartKeys(r.boot, cfg)
	more, err := r.svt.Reload(cfg.Servants)
	restart = append(restart, more...)
	if err != nil {
		return restart, fmt.Errorf("config %s: servants: %w", r.path, err)
	}
	if cfg.GCHeapFloor != r.gcFloor && r.floor != nil {
		r.floor.Set(uint64(cfg.GCHeapFloor))
		r.logger.Info("gc_heap_floor set", "bytes", cfg.GCHeapFloor, "was", r.gcFloor)
		r.gcFloor = cfg.GCHeapFloor
	}
	if cfg.MemoryLimit != r.memLimit {
		setMemoryLimit(cfg.MemoryLimit)
		r.logger.Info("memory_limit set", "bytes", cfg.MemoryLimit, "was", r.memLimit)
		r.memLimit = cfg.MemoryLimit
	}
	return restart, nil
}

// setMemoryLimit sets Go's soft memory limit to n bytes; 0 = none.
func setMemoryLimit(n int64) {
	if n <= 0 {
		n = math.MaxInt64 // runtime/debug: the value that means no limit
	}
	debug.SetMemoryLimit(n)
}

// changed reports whether the config file's content differs from what the
// last reload (or the start) read. A file that cannot be read counts as
// unchanged: a reload would fail the same way; the next readable content is
// compared as usual.
func (r *reloader) changed() bool {
	data, err := os.ReadFile(r.path)
	if err != nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return !bytes.Equal(data, r.seen)
}

// watch reloads the config whenever its file's content changes, checking
// every interval (reload_watchdog_interval), until stop is closed. Comparing
// the content, not mtime and size, sees an edit within the same second and of
// the same length. It returns at once without a file or with interval 0.
func (r *reloader) watch(interval time.Duration, stop <-chan struct{}) {
	if r.path == "" || interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if r.changed() {
				r.logger.Info("config file changed: reloading", "config", r.path)
				r.reload()
			}
		}
	}
}
