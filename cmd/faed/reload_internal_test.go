package main

import (
	"errors"
	"log/slog"
	"testing"

	"github.com/fae-go/fae/config"
	"github.com/fae-go/fae/internal/testenv"
)

// TestReloadWithoutFile: on the embedded default config (no -conf) reload
// says there is no file, logs it and counts a failure; the watchdog does not
// run.
func TestReloadWithoutFile(t *testing.T) {
	cfg, err := config.Parse(config.DefaultName, config.Default)
	if err != nil {
		t.Fatal(err)
	}
	out := new(testenv.SyncBuffer)
	r := newReloader("", nil, cfg, nil, slog.New(slog.NewTextHandler(out, nil)))
	if _, err := r.reload(); !errors.Is(err, errNoConfigFile) {
		t.Fatalf("reload without a file: %v, want errNoConfigFile", err)
	}
	if r.counts.Failed.Load() != 1 || r.counts.OK.Load() != 0 {
		t.Errorf("counts ok %d failed %d, want 0 and 1", r.counts.OK.Load(), r.counts.Failed.Load())
	}
	stop := make(chan struct{})
	r.watch(1, stop) // returns at once without a file
}
