package servant

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
)

// The classification cache answers as classify does, remembers at most
// classifyCacheMax statements of at most classifyCacheMaxBytes, and counts
// the statements it could not remember for want of room.
func TestClassifyCache(t *testing.T) {
	var c classifyCache
	var overflow atomic.Int64
	for _, sql := range []string{"SELECT 1", "UPDATE t SET a=1 WHERE id=?", "BEGIN", "SELECT 1; SELECT 2"} {
		wantKind, wantErr := classify(sql)
		for range 2 { // lexed, then remembered
			kind, err := c.classify(sql, &overflow)
			if kind != wantKind || !errors.Is(err, wantErr) && fmt.Sprint(err) != fmt.Sprint(wantErr) {
				t.Fatalf("%q: (%v, %v), want (%v, %v)", sql, kind, err, wantKind, wantErr)
			}
		}
	}
	if long := "SELECT " + strings.Repeat("a", classifyCacheMaxBytes); true {
		if kind, err := c.classify(long, &overflow); err != nil || kind != kindRows {
			t.Fatalf("long SELECT: %v, %v", kind, err)
		}
		if _, ok := c.m.Load(long); ok {
			t.Fatal("a statement over classifyCacheMaxBytes was remembered")
		}
	}
	for i := c.n.Load(); i < classifyCacheMax+10; i++ {
		c.classify(fmt.Sprintf("SELECT %d", i), &overflow)
	}
	if n := c.n.Load(); n != classifyCacheMax {
		t.Errorf("%d statements remembered, want the cap %d", n, classifyCacheMax)
	}
	if o := overflow.Load(); o != 10 {
		t.Errorf("overflow counted %d, want 10", o)
	}
}
