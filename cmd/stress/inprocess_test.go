package main

import (
	"context"
	"io"
	"testing"
)

// TestRunInProcess runs the library in the test process (so that -race
// sees the workers, the recorder and the picker): a sweep of three closed-
// loop levels over kept connections spread over TCP and the unix socket,
// then an open-loop level, each counted exactly.
func TestRunInProcess(t *testing.T) {
	n := startNode(t, "faed", "", "", "")
	o, err := parseFlags([]string{"-c1", "2", "-c2", "6", "-step", "2", "-n", "20", "-x", "11", "-keepalive"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	mix, err := NewMix(o.x, o.targets)
	if err != nil {
		t.Fatal(err)
	}
	picker := NewPicker([]Target{{Addr: n.Addr(), Protocol: "binary"}, {Addr: n.Sock, Protocol: "binary"}})
	before := n.stat(t)
	rep := runLevels(context.Background(), o, mix, picker, io.Discard, io.Discard)
	if len(rep.Levels) != 3 || rep.Sessions != 20*(2+4+6) || rep.Calls != 4*rep.Sessions || rep.Conns != 2+4+6 {
		t.Errorf("sweep: %d levels, %d sessions, %d calls, %d conns; want 3, 240, 960, 12", len(rep.Levels), rep.Sessions, rep.Calls, rep.Conns)
	}
	for i, l := range rep.Levels {
		if c := 2 * (i + 1); l.Concurrency != c || l.Sessions != int64(20*c) {
			t.Errorf("level %d: c %d, %d sessions; want %d, %d", i, l.Concurrency, l.Sessions, c, 20*c)
		}
	}
	wantErrors(t, rep, nil)
	wantStat(t, n, before, stat{960, 12})

	before = n.stat(t)
	rec := NewRecorder(io.Discard)
	open := Run(context.Background(), Load{Workers: 4, Rate: 400, Sessions: 100, Loop: 2, Timeout: o.timeout}, mix, picker, rec, Progress{})
	if open.Sessions != 100 || open.Calls != 800 || open.Rate != 400 || open.ElapsedS < 0.24 {
		t.Errorf("open loop: %d sessions, %d calls, rate %g, %.3f s; want 100, 800, 400, ≥ 0.24 s (the last due at 99/400 s)",
			open.Sessions, open.Calls, open.Rate, open.ElapsedS)
	}
	wantStat(t, n, before, stat{800, 100})
}
