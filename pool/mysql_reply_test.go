package pool

import (
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/fae-go/fae/internal/testenv"
)

// heapPeak samples the process's heap in use after a GC, every few ms, until
// stop is called; stop returns the largest sample and the first.
func heapPeak() (stop func() (peak, base uint64)) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapInuse, ms.HeapInuse
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-quit:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return func() (uint64, uint64) {
		close(quit)
		<-done
		return peak, base
	}
}

var tooLargeRE = regexp.MustCompile(`reply over max_reply_bytes: (\d+) rows read, (\d+) bytes > limit (\d+) bytes`)

// TestMysqlMaxReplyBytes: a SELECT of a real 60 MB table with a 16 MiB limit
// fails with KindTooLarge naming the rows read, the bytes and the limit; the
// process never holds anything near 60 MB (heap in use after GC, sampled
// during the call); the statement is stopped on the server; the next query on
// the pool works.
func TestMysqlMaxReplyBytes(t *testing.T) {
	const rows, width, limit = 60000, 1000, 16 << 20
	db := myCreateDB(t, "big", "CREATE TABLE big (id INT PRIMARY KEY, pad VARBINARY(1000)) ENGINE=InnoDB",
		fmt.Sprintf("INSERT INTO big SELECT seq, REPEAT('x', %d) FROM seq_1_to_%d", width, rows))
	c := myConfig(t, testenv.MySQLAddr, map[string]string{"Global": db}, "Global")
	c.MaxIdleConnsPerServer, c.MaxConnsPerServer = 1, 1 // the next query must reuse the pool's only slot
	obs := NewCounters()
	m := newMyTest(t, c, obs, Limits{MaxReplyBytes: limit})
	if _, r, err := m.Query(myBg, "Global", 0, "SELECT COUNT(*), SUM(LENGTH(pad)) FROM big", nil); err != nil || r[0][1] != strconv.Itoa(rows*width) {
		t.Fatalf("table: %v %v, want %d bytes", r, err, rows*width)
	}
	marker := fmt.Sprintf("big-%d", time.Now().UnixNano())

	stop := heapPeak()
	start := time.Now()
	_, got, err := m.Query(myBg, "Global", 0, "SELECT id, pad, '"+marker+"' FROM big", nil)
	peak, base := stop()
	t.Logf("%v after %s; heap in use %.1f MB at the start, at most %.1f MB during the call", err,
		time.Since(start).Round(time.Millisecond), float64(base)/1e6, float64(peak)/1e6)
	wantMyError(t, err, KindTooLarge, "query", "Global", "Global ("+testenv.MySQLAddr+")", "the statement was stopped")
	if got != nil {
		t.Errorf("%d rows returned with the error", len(got))
	}
	mm := tooLargeRE.FindStringSubmatch(fmt.Sprint(err))
	if mm == nil {
		t.Fatalf("error %q does not name rows, bytes and limit", err)
	}
	n, _ := strconv.Atoi(mm[1])
	b, _ := strconv.Atoi(mm[2])
	if n < limit/(width+200) || n > limit/width+1 || b <= limit || b > limit+width+200 || mm[3] != strconv.Itoa(limit) {
		t.Errorf("rows %d, bytes %d, limit %s: want the first row past %d bytes of %d-byte rows", n, b, mm[3], limit, width)
	}
	if held := int64(peak) - int64(base); held > 40e6 {
		t.Errorf("the heap grew by %.1f MB during the call, want far below the table's 60 MB", float64(held)/1e6)
	}
	admin := myAdmin(t, "")
	testenv.Eventually(t, 2*time.Second, "the statement to stop on the server", func() bool { return testenv.MySQLRunning(t, admin, marker) == 0 })
	if _, r, err := m.Query(myBg, "Global", 0, "SELECT id FROM big WHERE id = 60000", nil); err != nil || r[0][0] != "60000" {
		t.Errorf("the next query: %v %v", r, err)
	}
	if n := myCount(obs, "Global", "Global ("+testenv.MySQLAddr+")", "query", KindTooLarge); n != 1 {
		t.Errorf("%d too-large queries observed, want 1", n)
	}
}

// TestMysqlQueryShardsLimit: max_reply_bytes bounds the sum over the shards
// of QueryShards, each of which alone is under it.
func TestMysqlQueryShardsLimit(t *testing.T) {
	db := myCreateDB(t, "shards", "CREATE TABLE t (id INT PRIMARY KEY, pad VARBINARY(1000))",
		"INSERT INTO t SELECT seq, REPEAT('y', 1000) FROM seq_1_to_1000")
	servers := map[string]string{"S1": db, "S2": db, "S3": db}
	for _, tc := range []struct {
		limit int
		err   bool
	}{{2_000_000, true}, {4_000_000, false}} {
		m := newMyTest(t, myConfig(t, testenv.MySQLAddr, servers), nil, Limits{MaxReplyBytes: tc.limit})
		_, rows, err := m.QueryShards(myBg, "S", "SELECT id, pad FROM t", nil)
		if !tc.err {
			if err != nil || len(rows) != 3000 {
				t.Errorf("limit %d: %d rows, %v; want 3000", tc.limit, len(rows), err)
			}
			continue
		}
		if !errors.Is(err, KindTooLarge) {
			t.Fatalf("limit %d: %d rows, %v; want too large", tc.limit, len(rows), err)
		}
		wantMyError(t, err, KindTooLarge, "query", "S", err.(*Error).Server, "summed over 3 shards", fmt.Sprintf("limit %d bytes", tc.limit))
	}
	m := newMyTest(t, myConfig(t, testenv.MySQLAddr, servers), nil, Limits{})
	_, _, err := m.QueryShards(myBg, "Nope", "SELECT 1", nil)
	wantMyError(t, err, KindUnknownPool, "query", "Nope", "", "no shard servers Nope<n>")
	_, _, err = m.QueryShards(myBg, "S", "SELECT nosuch FROM t", nil)
	wantMyError(t, err, KindRefused, "query", "S", err.(*Error).Server, "Error 1054")
}
