package engine_test

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/internal/testenv"
)

// TestThrottledHandler: records over the rate are dropped and counted; the next
// record written says how many were dropped before it; loggers derived with With
// and WithGroup share the one limit.
func TestThrottledHandler(t *testing.T) {
	out := new(testenv.SyncBuffer)
	h := engine.NewThrottledHandler(slog.NewTextHandler(out, nil), 20, 2) // a token every 50 ms
	log := slog.New(h)
	servantLog := log.With("component", "servant") // as main hands one logger to several parts
	grouped := log.WithGroup("g")

	log.Warn("one")
	servantLog.Error("two")
	grouped.Warn("three") // over the burst of 2
	servantLog.Warn("four")
	if got := lines(out); len(got) != 2 || !strings.Contains(got[0], "msg=one") || !strings.Contains(got[1], "msg=two component=servant") {
		t.Fatalf("after a burst of 4 with burst 2, wrote:\n%s", out)
	}
	if n := h.Suppressed(); n != 2 {
		t.Errorf("Suppressed = %d, want 2", n)
	}
	time.Sleep(60 * time.Millisecond) // wait out one token (time-based on purpose)
	log.Warn("five")
	got := lines(out)
	if len(got) != 3 || !strings.Contains(got[2], "msg=five suppressed=2") {
		t.Fatalf("the record after the drops does not report them:\n%s", out)
	}
	time.Sleep(60 * time.Millisecond) // the next token, time-based on purpose too
	log.Warn("six")
	if got := lines(out); len(got) != 4 || strings.Contains(got[3], "suppressed") {
		t.Errorf("a record with no drops before it reports some:\n%s", out)
	}
}

// TestThrottledHandlerDisabledLevel: a record below the wrapped handler's level
// takes no token.
func TestThrottledHandlerDisabledLevel(t *testing.T) {
	out := new(testenv.SyncBuffer)
	h := engine.NewThrottledHandler(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn}), 0, 1)
	log := slog.New(h)
	for i := 0; i < 10; i++ {
		log.Debug("off")
	}
	log.Warn("on")
	if got := lines(out); len(got) != 1 || !strings.Contains(got[0], "msg=on") {
		t.Errorf("disabled records used the burst:\n%s", out)
	}
	if n := h.Suppressed(); n != 0 {
		t.Errorf("Suppressed = %d, want 0", n)
	}
}

// TestThrottledHandlerConcurrent: under concurrent use the limit holds and every
// record is either written or counted.
func TestThrottledHandlerConcurrent(t *testing.T) {
	out := new(testenv.SyncBuffer)
	h := engine.NewThrottledHandler(slog.NewTextHandler(out, nil), 0, 25)
	log := slog.New(h)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := log.With("g", g)
			for i := 0; i < 100; i++ {
				l.Error("x")
			}
		}()
	}
	wg.Wait()
	if n := len(lines(out)); n != 25 {
		t.Errorf("%d lines written, want the burst of 25", n)
	}
	if n := h.Suppressed(); n != 800-25 {
		t.Errorf("Suppressed = %d, want %d", n, 800-25)
	}
}

func lines(b *testenv.SyncBuffer) []string {
	s := strings.TrimSpace(b.String())
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
