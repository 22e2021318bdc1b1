package engine

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestNormaliseMessage(t *testing.T) {
	for in, want := range map[string]string{
		"":                         "",
		"no digits":                "no digits",
		"dial tcp 127.0.0.1:13306": "dial tcp ?.?.?.?:?",
		"timeout after 4000ms, rid 12345678901234567890": "timeout after ?ms, rid ?",
		"a1b22c333": "a?b?c?",
		"9":         "?",
	} {
		if got := NormaliseMessage(in); got != want {
			t.Errorf("NormaliseMessage(%q) = %q, want %q", in, got, want)
		}
	}
	long := strings.Repeat("x", MaxFailureMessageBytes-1) + "é" // the 2-byte rune crosses the cut
	if got := NormaliseMessage(long); got != strings.Repeat("x", MaxFailureMessageBytes-1) {
		t.Errorf("cut message: %d bytes %q…", len(got), got[len(got)-4:])
	}
}

// Past MaxFailureMessages distinct messages, failures go to FailureOther;
// the messages already held keep counting, and messages differing only in
// digits are one.
func TestFailuresCap(t *testing.T) {
	var f Failures
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range MaxFailureMessages + 50 {
				f.Add(fmt.Sprintf("error %c%d", 'a'+rune(i%26), i/26+g*1000)) // 26 letters × runs of digits
				f.Add(fmt.Sprintf("user %d not found", i))
			}
		})
	}
	wg.Wait()
	counts := map[string]int64{}
	for _, fc := range f.Snapshot() {
		counts[fc.Message] = fc.Count
	}
	if len(counts) != 27 || counts["user ? not found"] != 4*(MaxFailureMessages+50) || counts["error a?"] == 0 {
		t.Fatalf("digits not folded: %d messages %v", len(counts), counts)
	}
	for i := range MaxFailureMessages + 50 {
		f.Add(fmt.Sprintf("distinct message %s", strings.Repeat("z", i+1)))
	}
	snap := f.Snapshot()
	if len(snap) != MaxFailureMessages+1 {
		t.Fatalf("%d rows, want %d and %q", len(snap), MaxFailureMessages, FailureOther)
	}
	counts = map[string]int64{}
	for _, fc := range snap {
		counts[fc.Message] = fc.Count
	}
	// 27 held before, so MaxFailureMessages-27 of the new ones fit.
	if want := int64(MaxFailureMessages + 50 - (MaxFailureMessages - 27)); counts[FailureOther] != want {
		t.Errorf("%s = %d, want %d", FailureOther, counts[FailureOther], want)
	}
	f.Add("user 7 not found")
	for _, fc := range f.Snapshot() {
		if fc.Message == "user ? not found" && fc.Count != 4*(MaxFailureMessages+50)+1 {
			t.Errorf("a held message stopped counting past the cap: %d", fc.Count)
		}
	}
	if snap[0].Message != "user ? not found" {
		t.Errorf("not most frequent first: %v", snap[:3])
	}
}

// TestFailuresFoldClientText: the names and keys a client chose (quoted, or
// an unknown method's name) fold into one message, so that a client sending
// many distinct ones does not fill the table: 300 unknown methods and 300
// distinct keys make two messages, and a later failure still gets its own.
func TestFailuresFoldClientText(t *testing.T) {
	var f Failures
	for i := range 300 {
		f.Add(fmt.Sprintf("Unknown function m%c%c", 'a'+rune(i%26), 'a'+rune(i/26)))
		f.Add(fmt.Sprintf(`redis GET "user:%c%c" pool "p%c": refused`, 'a'+rune(i%26), 'a'+rune(i/26), 'a'+rune(i%7)))
	}
	f.Add(`memcache get pool "x": unknown pool`)
	counts := map[string]int64{}
	for _, fc := range f.Snapshot() {
		counts[fc.Message] = fc.Count
	}
	want := map[string]int64{"Unknown function ?": 300, `redis GET "?" pool "?": refused`: 300, `memcache get pool "?": unknown pool`: 1}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Fatalf("failures %v, want %v", counts, want)
	}
	// A key with quotes in it, as %q writes it (found by review: the text
	// between its escaped quotes stayed, and 300 such keys filled the table).
	if got := foldClientText(fmt.Sprintf("redis GET %q: pool %q: timeout", `k" abc "k\`, "default")); got != `redis GET "?": pool "?": timeout` {
		t.Errorf("escaped quotes: %q", got)
	}
	if got := foldClientText(`an "unterminated quote`); got != `an "unterminated quote` {
		t.Errorf("unterminated quote: %q", got)
	}
}
