package metrics

import (
	"encoding/json"
	"testing"
	"time"
)

func TestMaskAnySecretKey(t *testing.T) {
	type inner struct {
		Passwd string `cf:"db_passwd"`
		Name   string `cf:"name"`
		Hidden string // untagged in a tagged struct: not a key, not shown
	}
	type conf struct {
		Timeout time.Duration  `cf:"timeout"`
		Inner   *inner         `cf:"inner"`
		Extra   map[string]any `cf:"couchbase"`
		Empty   string         `cf:"password"`
	}
	got, err := json.Marshal(Mask(&conf{Timeout: 1500 * time.Millisecond, Inner: &inner{"p1", "n", "h"},
		Extra: map[string]any{"API_Secret": "s1", "nested": map[string]any{"passphrase": "s2", "user": "u"}}}))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"couchbase":{"API_Secret":"***","nested":{"passphrase":"***","user":"u"}},` +
		`"inner":{"db_passwd":"***","name":"n"},"password":"","timeout":"1.5s"}`
	if string(got) != want {
		t.Fatalf("Mask:\n got %s\nwant %s", got, want)
	}
}
