package config

import (
	"reflect"
	"strings"
	"testing"

	"github.com/fae-go/fae/servant"
)

// TestPluginSection: plugin.plugins entries parse into servant.PluginSpecs
// (the original's {name, limit} and the new enforce and max_hosts), reach
// the servants section with rpc.host_max_call_per_minute, are hot at reload,
// and a bad entry is an error naming it.
func TestPluginSection(t *testing.T) {
	c, err := Parse("test", []byte(`{
    plugin: { plugins: [ { name: "RateLimiter", limit: 200, enforce: true, max_hosts: 500 } ] }
    rpc: { listen_addr: "127.0.0.1:1", host_max_call_per_minute: 1200 }
}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []servant.PluginSpec{{Name: "RateLimiter", Limit: 200, Enforce: true, MaxHosts: 500}}
	if !reflect.DeepEqual(c.Plugin.Plugins, want) || !reflect.DeepEqual(c.Servants.Plugins, want) ||
		c.Servants.HostMaxCallPerMinute != 1200 {
		t.Fatalf("plugins %+v, servants %+v %d", c.Plugin.Plugins, c.Servants.Plugins, c.Servants.HostMaxCallPerMinute)
	}
	d, err := Parse("test", []byte(`{rpc: {listen_addr: "127.0.0.1:1"}, plugin: {plugins: [{name: "RateLimiter", limit: 2000}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if d.Servants.HostMaxCallPerMinute != 6000 || d.Servants.Plugins[0].Enforce {
		t.Fatalf("defaults: host_max_call_per_minute %d, enforce %v; want 6000, false", d.Servants.HostMaxCallPerMinute, d.Servants.Plugins[0].Enforce)
	}
	if keys := RestartKeys(c, d); len(keys) != 0 {
		t.Errorf("restart keys %q: want none (plugin and host_max_call_per_minute are hot)", keys)
	}
	for conf, want := range map[string]string{
		`{rpc: {listen_addr: "127.0.0.1:1"}, plugin: {plugins: [{name: "Throttle"}]}}`:                                 `plugin.plugins[0].name: unknown plugin "Throttle" (known: RateLimiter)`,
		`{rpc: {listen_addr: "127.0.0.1:1"}, plugin: {plugins: [{name: "RateLimiter", enfoce: true}]}}`:                `plugin.plugins[0] (RateLimiter): unknown keys [enfoce]`,
		`{rpc: {listen_addr: "127.0.0.1:1"}, plugin: {plugins: [{name: "RateLimiter", max_hosts: -1}]}}`:               `plugin.plugins[0] (RateLimiter): max_hosts: must be 0`,
		`{rpc: {listen_addr: "127.0.0.1:1", host_max_call_per_minute: 0}, plugin: {plugins: [{name: "RateLimiter"}]}}`: `rpc.host_max_call_per_minute: must be at least 1`,
		`{rpc: {listen_addr: "127.0.0.1:1"}, plugin: {plugins: [{name: "RateLimiter", enforce: "yes"}]}}`:              `enforce`,
	} {
		if _, err := Parse("test", []byte(conf)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error containing %q", conf, err, want)
		}
	}
}
