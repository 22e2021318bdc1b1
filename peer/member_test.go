package peer

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func sampleInfo(worker int) MemberInfo {
	return MemberInfo{Version: "1.2.3", Pid: 4242, Started: time.Date(2026, 11, 30, 12, 0, 0, 123456789, time.UTC),
		Protocol: "compact", Framed: true, HTTPAddr: "127.0.0.1:9101", DashboardAddr: "127.0.0.1:9102",
		IdgenWorkerID: worker}
}

func TestMemberInfoRoundTrip(t *testing.T) {
	in := sampleInfo(7)
	data := in.encode()
	var fields map[string]any
	if err := json.Unmarshal(data, &fields); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]any{"impl": "fae-go", "format": 1.0, "version": "1.2.3", "pid": 4242.0,
		"started": "2026-11-30T12:00:00.123456789Z", "protocol": "compact", "framed": true,
		"http_addr": "127.0.0.1:9101", "dashboard_addr": "127.0.0.1:9102", "idgen_worker_id": 7.0, "leaving": false} {
		if fields[key] != want {
			t.Errorf("JSON field %q = %v, want %v (record %s)", key, fields[key], want, data)
		}
	}
	out, reason := decodeMember("127.0.0.1:9001", data)
	in.Impl, in.Format = Impl, Format
	if reason != "" || !out.Started.Equal(in.Started) {
		t.Fatalf("decode: %+v, reason %q", out, reason)
	}
	out.Started = in.Started
	if out != in {
		t.Fatalf("round trip: got %+v, want %+v", out, in)
	}
}

func TestDecodeForeign(t *testing.T) {
	ours := string(sampleInfo(1).encode())
	for _, tc := range []struct{ name, data, want string }{
		{"127.0.0.1:9001", "", "empty data: not this implementation's record"},
		{"127.0.0.1:9001", "10.0.0.1:9001", "not a JSON object"},
		{"127.0.0.1:9001", `{"version":"0.1"}`, "another implementation (impl none"},
		{"127.0.0.1:9001", `{"impl":"fae-java","format":1}`, `another implementation (impl "fae-java"`},
		{"127.0.0.1:9001", `{"impl":"fae-go","format":2}`, "record format 2, this node reads format 1"},
		{"127.0.0.1:9001", `{"impl":"fae-go"}`, "record format none"},
		{"127.0.0.1:9001", `{"impl":"fae-go","format":1,"protocol":"json","idgen_worker_id":1}`, `malformed record: protocol must be`},
		{"127.0.0.1:9001", `{"impl":"fae-go","format":1,"protocol":"binary","idgen_worker_id":32}`, "idgen_worker_id must be 0..31"},
		{"127.0.0.1:9001", `{"impl":"fae-go","format":1,"pid":"x"}`, "malformed record"},
		{"maintenance", ours, "name is not a host:port"},
	} {
		_, reason := decodeMember(tc.name, []byte(tc.data))
		if !strings.Contains(reason, tc.want) {
			t.Errorf("%s = %q: reason %q, want one containing %q", tc.name, tc.data, reason, tc.want)
		}
	}
	// Unknown fields (added later without a new format) are fine.
	if _, reason := decodeMember("127.0.0.1:9001", []byte(ours[:len(ours)-1]+`,"zone":"b"}`)); reason != "" {
		t.Fatalf("a record with an extra field is foreign: %s", reason)
	}
}

func TestIDConflictErrorNamesBoth(t *testing.T) {
	err := &IDConflictError{WorkerID: 3, Self: "127.0.0.1:9002", Holder: "127.0.0.1:9001"}
	for _, want := range []string{"idgen_worker_id 3", "127.0.0.1:9002", "127.0.0.1:9001", "0..31"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
}

func TestConflictHolder(t *testing.T) {
	w := &registration{addr: "a:1", info: MemberInfo{IdgenWorkerID: 3}}
	rec := func(worker int, czxid int64) seen { return seen{info: MemberInfo{IdgenWorkerID: worker}, czxid: czxid} }
	children := map[string]seen{"c:1": rec(3, 20), "b:1": rec(4, 5), "x:1": {reason: "foreign"}}
	// Not registered yet: any other holder of the id blocks.
	if got := conflictHolder(w, seen{}, false, children); got != "c:1" {
		t.Fatalf("unregistered: holder %q, want c:1", got)
	}
	// Registered before c:1 (lower zxid): c:1 is the one to step back.
	own := rec(3, 10)
	children["a:1"] = own
	if got := conflictHolder(w, own, true, children); got != "" {
		t.Fatalf("older registration: holder %q, want none", got)
	}
	// Registered after it: this node steps back.
	own = rec(3, 30)
	children["a:1"] = own
	if got := conflictHolder(w, own, true, children); got != "c:1" {
		t.Fatalf("younger registration: holder %q, want c:1", got)
	}
	// A stale znode of this node's own address never conflicts.
	w.info.IdgenWorkerID = 4
	delete(children, "b:1")
	if got := conflictHolder(w, seen{}, false, map[string]seen{"a:1": rec(4, 1)}); got != "" {
		t.Fatalf("own stale znode counted as a conflict: %q", got)
	}
}
