package cache

import (
	"context"
	"testing"
	"time"
)

func TestMemStoreTTL(t *testing.T) {
	s := NewMemStore(10)
	now := time.Unix(1000, 0)
	s.now = func() time.Time { return now }
	ctx := context.Background()
	s.Set(ctx, "forever", []byte("a"), 0)
	s.Set(ctx, "short", []byte("b"), time.Second)
	now = now.Add(2 * time.Second)
	if v, ok, _ := s.Get(ctx, "forever"); !ok || string(v) != "a" {
		t.Errorf("forever = %q %v", v, ok)
	}
	if _, ok, _ := s.Get(ctx, "short"); ok {
		t.Error("short still there after its ttl")
	}
	s.Del(ctx, "forever")
	if _, ok, _ := s.Get(ctx, "forever"); ok {
		t.Error("forever still there after Del")
	}
}
