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

// bigMongo is a collection of 1200 documents {_id: i, pad: <20 KiB>}, 24 MiB,
// on the shared FerretDB, and one document's bytes.
type bigMongo struct {
	cfg      MongoConfig
	target   MongoTarget
	label    string
	docs     int
	docBytes int
}

// TestMongoBigCollection fills one big collection for the tests of replies
// and slow operations (filling takes seconds).
func TestMongoBigCollection(t *testing.T) {
	const docs, size = 1200, 20 << 10
	cfg := mongoConfig(t, "legacy", server("default", "fae_pool_test", mongoPort(t)))
	setup, _ := newMongo(t, cfg, Limits{})
	target := mongoTable(t, setup, "default")
	start := time.Now()
	fillMongo(t, setup, target, docs, size)
	t.Logf("filled %d MiB in %s", docs*size>>20, time.Since(start))
	big := &bigMongo{cfg: cfg, target: target, label: fmt.Sprintf("default (127.0.0.1:%d)", cfg.Servers[0].Port), docs: docs,
		docBytes: len(mustBSON(t, bson.D{{Key: "_id", Value: 0}, {Key: "pad", Value: strings.Repeat("x", size)}}))}
	t.Run("max_reply_bytes", func(t *testing.T) { testMongoReplyLimit(t, big) })
	t.Run("slow finds keep the breaker closed", func(t *testing.T) { testMongoSlowFinds(t, big) })
}

// testMongoReplyLimit: a find_all of the whole collection with
// max_reply_bytes 2 MiB fails with KindTooLarge naming the documents read,
// their bytes and the limit. It allocates a small multiple of the limit, not
// the collection: the documents held stay within the limit and the driver's
// batches past the first (101 documents, about the limit here; FerretDB's
// next would be 250) are sized to what still fits. The next calls work, and a
// single document over the limit is refused too.
func testMongoReplyLimit(t *testing.T, big *bigMongo) {
	const limit = 2 << 20
	wantDocs := limit/big.docBytes + 1 // the one that goes over included
	c, obs := newMongo(t, big.cfg, Limits{MaxReplyBytes: limit})
	ctx, label := context.Background(), big.label
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	got, err := c.FindAll(ctx, big.target, nil, nil, 0, 0, []string{"_id"})
	runtime.ReadMemStats(&after)
	allocated := int(after.TotalAlloc - before.TotalAlloc)
	t.Logf("find_all allocated %.1f MiB", float64(allocated)/(1<<20))
	wantMongoError(t, "find_all over the limit", err, KindTooLarge, label, fmt.Sprintf(
		`mongodb find_all: pool "default", server %s: too large: reply over max_reply_bytes %d: %d bytes in the first %d documents read`,
		label, limit, wantDocs*big.docBytes, wantDocs))
	var tooLarge *mgTooLargeError
	if !errors.As(err, &tooLarge) || tooLarge.Docs != wantDocs || tooLarge.Limit != limit || got != nil {
		t.Errorf("cause %+v, %d documents returned; want %d documents read, limit %d, none returned", tooLarge, len(got), wantDocs, limit)
	}
	if allocated > 3*limit {
		t.Errorf("find_all allocated %d bytes, over 3 × max_reply_bytes (the collection is %d)", allocated, big.docs*big.docBytes)
	}
	got, err = c.FindAll(ctx, big.target, nil, nil, 2, 0, []string{"-_id"})
	if err != nil || len(got) != 2 {
		t.Fatalf("find_all of 2 documents after the refusal: %d, %v", len(got), err)
	}
	if n, err := c.Count(ctx, big.target, nil); n != int64(big.docs) || err != nil {
		t.Errorf("count after the refusal = %d, %v", n, err)
	}
	small, _ := newMongo(t, big.cfg, Limits{MaxReplyBytes: big.docBytes - 1})
	_, err = small.FindOne(ctx, big.target, nil, nil)
	wantMongoError(t, "find_one over the limit", err, KindTooLarge, label, fmt.Sprintf(
		`mongodb find_one: pool "default", server %s: too large: reply over max_reply_bytes %d: %d bytes in the first 1 documents read`,
		label, big.docBytes-1, big.docBytes))
	if s := c.BreakerState("default"); s != "closed" {
		t.Errorf("breaker %s, want closed (a reply too large is the server's answer)", s)
	}
	if opCount(obs, "find_all", label, KindTooLarge) != 1 || opCount(obs, "find_all", label, KindOK) != 1 {
		t.Errorf("observed %+v", obs.Snapshot())
	}
}

// testMongoSlowFinds (REVIEW §2.A2): finds of the whole collection that
// outlast io_timeout, four at a time on a pool of one connection, time out or
// wait for the connection, yet never open the breaker (failure_allowance 1):
// each timeout runs the health check, which succeeds on its own connection
// although the pool is taken. Once they are over, the next call works.
func testMongoSlowFinds(t *testing.T, big *bigMongo) {
	cfg := big.cfg
	cfg.IOTimeout, cfg.MaxConnsPerServer = 100*time.Millisecond, 1
	cfg.Breaker = BreakerConfig{FailureAllowance: 1, RetryInterval: time.Minute}
	c, obs := newMongo(t, cfg, Limits{})
	ctx := context.Background()
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		go func() {
			_, err := c.FindAll(ctx, big.target, nil, nil, 0, 0, nil)
			errs <- err
		}()
	}
	for i := 0; i < 4; i++ {
		if err := <-errs; !errors.Is(err, KindTimeout) && !errors.Is(err, KindBusy) {
			t.Errorf("slow find_all: %v, want a timeout or busy", err)
		}
	}
	b := c.servers["default"].breaker
	if s := b.State(); s != "closed" || b.Checks.Load() == 0 || b.CheckFailures.Load() != 0 {
		t.Errorf("breaker %s after %d health checks, %d failed; want closed, checked, none failed", s, b.Checks.Load(), b.CheckFailures.Load())
	}
	if n := opCount(obs, "find_all", big.label, KindTimeout) + opCount(obs, "find_all", big.label, KindBusy); n != 4 {
		t.Errorf("observed %d find_all timeouts or busy, want 4: %+v", n, obs.Snapshot())
	}
	q := mustBSON(t, bson.D{{Key: "_id", Value: 7}})
	var last error // the late replies are read before the connection is reused
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, last = c.FindOne(ctx, big.target, q, nil); last == nil || time.Now().After(deadline) {
			break
		}
	}
	if last != nil {
		t.Errorf("find_one after the slow finds: %v", last)
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
		b := mgReplyBudget{limit: tc.limit, docs: tc.docs, bytes: tc.bytes}
		if got := b.nextBatch(); got != tc.want {
			t.Errorf("%+v: next batch %d, want %d", tc, got, tc.want)
		}
	}
}
