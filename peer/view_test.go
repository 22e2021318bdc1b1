package peer

import (
	"reflect"
	"testing"
	"time"
)

func rec(addr string, leaving bool) seen {
	info := MemberInfo{Protocol: "binary", Leaving: leaving}
	return seen{info: info, raw: []byte(addr + map[bool]string{true: " leaving"}[leaving])}
}

func observed(recs ...seen) map[string]seen {
	m := map[string]seen{}
	for _, r := range recs {
		m[string(r.raw[:len("127.0.0.1:900x")])] = r
	}
	return m
}

func applied(v *view) []string {
	var out []string
	for _, m := range v.members() {
		out = append(out, m.Addr)
	}
	return out
}

// The view's delays, on a clock of the test's own.
func TestViewDelays(t *testing.T) {
	const removal = 4 * time.Second
	t0 := time.Unix(1e9, 0)
	v := newView(removal)
	a, b, c := rec("127.0.0.1:9001", false), rec("127.0.0.1:9002", false), rec("127.0.0.1:9003", false)

	// Additions wait SettleDelay from when each was first seen.
	v.observe(observed(a, b), t0)
	if v.apply(t0.Add(SettleDelay-time.Millisecond)) || len(applied(v)) != 0 {
		t.Fatalf("added before the settle delay: %v", applied(v))
	}
	if next := v.next(); !next.Equal(t0.Add(SettleDelay)) {
		t.Fatalf("next = %v, want t0+settle", next.Sub(t0))
	}
	if !v.apply(t0.Add(SettleDelay)) || !reflect.DeepEqual(applied(v), []string{"127.0.0.1:9001", "127.0.0.1:9002"}) {
		t.Fatalf("after the settle delay: %v", applied(v))
	}

	// A member that comes and goes within the settle delay is never applied.
	t1 := t0.Add(time.Second)
	v.observe(observed(a, b, c), t1)
	v.observe(observed(a, b), t1.Add(50*time.Millisecond))
	if v.apply(t1.Add(time.Second)) || len(applied(v)) != 2 {
		t.Fatalf("a flapping member was applied: %v", applied(v))
	}

	// A vanished member stays for the removal delay and comes back without a change.
	t2 := t0.Add(10 * time.Second)
	if v.observe(observed(a), t2) || v.apply(t2.Add(removal-time.Millisecond)) || len(applied(v)) != 2 {
		t.Fatalf("removed before the removal delay: %v", applied(v))
	}
	v.observe(observed(a, b), t2.Add(removal-time.Millisecond))
	if v.apply(t2.Add(2*removal)) || len(applied(v)) != 2 || !v.next().IsZero() {
		t.Fatalf("a member back within the removal delay was removed: %v", applied(v))
	}
	t3 := t0.Add(20 * time.Second)
	v.observe(observed(a), t3)
	if !v.apply(t3.Add(removal)) || !reflect.DeepEqual(applied(v), []string{"127.0.0.1:9001"}) {
		t.Fatalf("after the removal delay: %v", applied(v))
	}

	// A member marked leaving goes at once, and is not added while leaving.
	t4 := t0.Add(30 * time.Second)
	if !v.observe(observed(rec("127.0.0.1:9001", true)), t4) || len(applied(v)) != 0 {
		t.Fatalf("a leaving member stayed: %v", applied(v))
	}
	if v.apply(t4.Add(time.Minute)) || len(applied(v)) != 0 {
		t.Fatalf("a leaving member came back: %v", applied(v))
	}

	// A record that changes (the node restarted) is updated at once.
	v.observe(observed(a), t4.Add(time.Minute))
	v.apply(t4.Add(time.Minute + SettleDelay))
	a2 := a
	a2.raw = []byte("127.0.0.1:9001 restarted")
	if !v.observe(observed(a2), t4.Add(2*time.Minute)) || string(v.applied["127.0.0.1:9001"].raw) != string(a2.raw) {
		t.Fatalf("a changed record was not updated: %q", v.applied["127.0.0.1:9001"].raw)
	}
}
