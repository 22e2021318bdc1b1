package engine

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// MaxFailureMessages bounds the distinct messages Failures keeps; the calls
// failing with any other message are counted under FailureOther. 200 is far
// more than the distinct failures of a healthy config (a few per backend,
// pool and kind once digits are folded) and small enough to read in
// /engine/stat; the original fae kept every message in a map and emptied it
// at 20,480 distinct ones, losing every count at once (ORIGINAL-FAE.md
// §3.4), so a storm of distinct texts hid the steady failures. Here the first
// MaxFailureMessages messages keep their counts for the process's life.
const MaxFailureMessages = 200

// MaxFailureMessageBytes cuts a normalised message, so that the memory held
// is bounded by MaxFailureMessages × MaxFailureMessageBytes (about 50 KB)
// whatever the errors say (a refused statement's text comes back in its
// error).
const MaxFailureMessageBytes = 256

// FailureOther is the message under which failures past MaxFailureMessages
// distinct messages are counted.
const FailureOther = "(other)"

// Failures count failed calls by error message, normalised as the original
// fae normalised its call reasons: each run of ASCII digits becomes "?", so
// that ids, ports, sizes and durations collapse into one message; then cut
// at MaxFailureMessageBytes. At most MaxFailureMessages distinct messages
// plus FailureOther. Only failures pay for it (a lock and the
// normalisation); the zero value is ready. Safe for concurrent use.
type Failures struct {
	mu sync.Mutex
	m  map[string]int64
}

// Add counts one failure with message msg.
func (f *Failures) Add(msg string) {
	msg = NormaliseMessage(foldClientText(msg))
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = make(map[string]int64)
	}
	if _, ok := f.m[msg]; !ok && len(f.m) >= MaxFailureMessages {
		msg = FailureOther
	}
	f.m[msg]++
}

// FailureCount is one message's count.
type FailureCount struct {
	Message string `json:"message"`
	Count   int64  `json:"count"`
}

// Snapshot returns the counts, most frequent first (then by message); at
// most MaxFailureMessages+1 rows.
func (f *Failures) Snapshot() []FailureCount {
	f.mu.Lock()
	out := make([]FailureCount, 0, len(f.m))
	for msg, n := range f.m {
		out = append(out, FailureCount{msg, n})
	}
	f.mu.Unlock()
	slices.SortFunc(out, func(a, b FailureCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Message, b.Message))
	})
	return out
}

// foldClientText replaces what a client chose in a failure's message with
// "?": each double-quoted span (keys, pool names, commands: `redis GET
// "user:abc"`) and the name after "Unknown function " (an unknown method),
// so that a client sending many distinct names or keys cannot fill the
// table's MaxFailureMessages with them and hide the failures that follow
// under FailureOther (found by a hostile client's review: 230 unknown method
// names did).
func foldClientText(msg string) string {
	const unknown = "Unknown function "
	if i := strings.Index(msg, unknown); i >= 0 {
		msg = msg[:i+len(unknown)] + "?"
	}
	if strings.IndexByte(msg, '"') < 0 {
		return msg
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(msg, '"')
		if i < 0 {
			break
		}
		j := closingQuote(msg[i+1:])
		if j < 0 {
			break
		}
		b.WriteString(msg[:i])
		b.WriteString(`"?"`)
		msg = msg[i+1+j+1:]
	}
	b.WriteString(msg)
	return b.String()
}

// closingQuote is the index in s of the '"' that ends a quoted span begun
// before s, past the escaped ones (\", \\: a key with a quote in it, as %q
// writes it; found by review); -1 if none.
func closingQuote(s string) int {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

// NormaliseMessage replaces each run of ASCII digits in msg with "?" and
// cuts the result at MaxFailureMessageBytes (on a UTF-8 boundary).
func NormaliseMessage(msg string) string {
	b := make([]byte, 0, min(len(msg), MaxFailureMessageBytes))
	inDigits := false
	i := 0
	for ; i < len(msg) && len(b) < MaxFailureMessageBytes; i++ {
		c := msg[i]
		if c >= '0' && c <= '9' {
			if !inDigits {
				b = append(b, '?')
			}
			inDigits = true
			continue
		}
		b = append(b, c)
		inDigits = false
	}
	if i < len(msg) { // cut: drop a rune cut in the middle (at most UTFMax-1 bytes)
		for n := 0; n < utf8.UTFMax-1 && len(b) > 0; n++ {
			if r, size := utf8.DecodeLastRune(b); r != utf8.RuneError || size != 1 {
				break
			}
			b = b[:len(b)-1]
		}
	}
	return string(b)
}
