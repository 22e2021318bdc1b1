package config

import (
	"reflect"
	"strings"
)

// hotKeys are the keys outside servants that a reload applies without a
// restart. Every servants.* key is hot too, but for the few the servant's
// Reload reports (servants.idgen_worker_id, servants.lcache…).
var hotKeys = map[string]bool{
	"memory_limit":                 true,
	"gc_heap_floor":                true,
	"rpc.max_reply_bytes":          true,
	"plugin":                       true, // the servant's generation holds the plugin chain
	"rpc.host_max_call_per_minute": true, // read by the RateLimiter plugin only
}

// RestartKeys lists the keys outside the servants section whose values differ
// between old and new and that only a restart can apply (listeners, protocol,
// ZooKeeper, the HTTP addresses…), as "rpc.listen_addr", in file order.
func RestartKeys(old, new *Config) []string {
	var keys []string
	walk("", reflect.ValueOf(*old), reflect.ValueOf(*new), func(key string) {
		if !hotKeys[key] {
			keys = append(keys, key)
		}
	})
	return keys
}

// walk calls diff with the key path of every field of the struct values a and
// b that differs, descending into the rpc section; servants is skipped.
func walk(prefix string, a, b reflect.Value, diff func(string)) {
	t := a.Type()
	for i := range t.NumField() {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("cf"), ",")
		if tag == "" || tag == "-" || prefix == "" && tag == "servants" {
			continue
		}
		key := prefix + tag
		fa, fb := a.Field(i), b.Field(i)
		if prefix == "" && tag == "rpc" {
			walk(key+".", fa, fb, diff)
			continue
		}
		if !reflect.DeepEqual(fa.Interface(), fb.Interface()) {
			diff(key)
		}
	}
}
