package config

import (
	"reflect"
	"testing"
)

func TestRestartKeys(t *testing.T) {
	old, err := Parse("old", []byte(`{rpc: {listen_addr: "127.0.0.1:9001"}, servants: {}}`))
	if err != nil {
		t.Fatal(err)
	}
	new, err := Parse("new", []byte(`{
		etcd_servers: ["127.0.0.1:2181"]
		memory_limit: 134217728
		rpc: {listen_addr: "127.0.0.1:9002", io_timeout: "3s"}
		servants: {call_slow_threshold: "1s"}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	got := RestartKeys(old, new)
	want := []string{"etcd_servers", "rpc.listen_addr", "rpc.io_timeout"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("RestartKeys = %v, want %v (memory_limit is hot, servants are the servant's)", got, want)
	}
	if keys := RestartKeys(old, old); len(keys) != 0 {
		t.Fatalf("no change: %v", keys)
	}
}
