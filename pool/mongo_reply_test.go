package pool

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// fillMongo inserts n documents {_id: i, pad: <size bytes>} into target, in
// batches; each document is a little over size bytes.
func fillMongo(t *testing.T, c *Mongo, target MongoTarget, n, size int) {
	t.Helper()
	pad := strings.Repeat("x", size)
	for i := 0; i < n; {
		var batch [][]byte
		for ; i < n && len(batch) < 8; i++ {
			batch = append(batch, mustBSON(t, bson.D{{Key: "_id", Value: i}, {Key: "pad", Value: pad}}))
		}
		if err := c.Insert(context.Background(), target, batch, true); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMongoReplyLimit: a find_all over a 24 MiB collection (1200 documents
// of 20 KiB) with max_reply_bytes 2 MiB fails with KindTooLarge naming the
// documents read, their bytes and the limit. It allocates a small multiple of
// the limit, not the collection: the documents held stay within the limit and
// the driver's batches past the first (101 documents, about the limit here;
// FerretDB's next would be 250) are sized to what still fits. The next calls
// work, and a single document over the limit is refused too.
func TestMongoReplyLimit(t *testing.T) {
	const docs, size, limit = 1200, 20 << 10, 2 << 20
	cfg := mongoConfig(t, "legacy", server("default", "fae_pool_test", mongoPort(t)))
	setup, _ := newMongo(t, cfg, Limits{})
	target := mongoTable(t, setup, "default")
	start := time.Now()
	fillMongo(t, setup, target, docs, size)
	t.Logf("filled %d MiB in %s", docs*size>>20, time.Since(start))
	docBytes := len(mustBSON(t, bson.D{{Key: "_id", Value: 0}, {Key: "pad", Value: strings.Repeat("x", size)}}))
	wantDocs := limit/docBytes + 1 // the one that goes over included

	c, obs := newMongo(t, cfg, Limits{MaxReplyBytes: limit})
	ctx := context.Background()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	got, err := c.FindAll(ctx, target, nil, nil, 0, 0, []string{"_id"})
	runtime.ReadMemStats(&after)
	allocated := int(after.TotalAlloc - before.TotalAlloc)
	t.Logf("find_all allocated %.1f MiB", float64(allocated)/(1<<20))
	label := fmt.Sprintf("default (127.0.0.1:%d)", cfg.Servers[0].Port)
	wantMongoError(t, "find_all over the limit", err, KindTooLarge, label, fmt.Sprintf(
		`mongodb find_all: pool "default", server %s: too large: reply over max_reply_bytes %d: %d bytes in the first %d documents read`,
		label, limit, wantDocs*docBytes, wantDocs))
	var tooLarge *ReplyTooLargeError
	if !errors.As(err, &tooLarge) || tooLarge.Docs != wantDocs || tooLarge.Limit != limit || got != nil {
		t.Errorf("cause %+v, %d documents returned; want %d documents read, limit %d, none returned", tooLarge, len(got), wantDocs, limit)
	}
	if allocated > 3*limit {
		t.Errorf("find_all allocated %d bytes, over 3 × max_reply_bytes (the collection is %d)", allocated, docs*size)
	}

	got, err = c.FindAll(ctx, target, nil, nil, 2, 0, []string{"-_id"})
	if err != nil || len(got) != 2 {
		t.Fatalf("find_all of 2 documents after the refusal: %d, %v", len(got), err)
	}
	if n, err := c.Count(ctx, target, nil); n != docs || err != nil {
		t.Errorf("count after the refusal = %d, %v", n, err)
	}
	small, _ := newMongo(t, cfg, Limits{MaxReplyBytes: size / 2})
	_, err = small.FindOne(ctx, target, nil, nil)
	wantMongoError(t, "find_one over the limit", err, KindTooLarge, label, fmt.Sprintf(
		`mongodb find_one: pool "default", server %s: too large: reply over max_reply_bytes %d: %d bytes in the first 1 documents read`,
		label, size/2, docBytes))
	if s := c.BreakerState("default"); s != "closed" {
		t.Errorf("breaker %s, want closed (a reply too large is the server's answer)", s)
	}
	if opCount(obs, "find_all", label, KindTooLarge) != 1 || opCount(obs, "find_all", label, KindOK) != 1 {
		t.Errorf("observed %+v", obs.Snapshot())
	}
}

// TestMongoReplyBatches: the size of the batch asked for next is what still
// fits by the average document so far, plus one.
func TestMongoReplyBatches(t *testing.T) {
	for _, tc := range []struct {
		limit, docs, bytes int
		want               int32
	}{
		{1000, 0, 0, 1}, {1000, 2, 200, 9}, {1000, 4, 200, 17}, {1000, 10, 1000, 1}, {100, 3, 99, 1}, {1 << 40, 1, 1, math.MaxInt32},
	} {
		b := replyBudget{limit: tc.limit, docs: tc.docs, bytes: tc.bytes}
		if got := b.nextBatch(); got != tc.want {
			t.Errorf("%+v: next batch %d, want %d", tc, got, tc.want)
		}
	}
}
