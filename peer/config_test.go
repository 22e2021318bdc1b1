package peer

import (
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	var c Config
	c.SetDefaults()
	if c.Root != "/fae" || c.SessionTimeout != 4*time.Second {
		t.Fatalf("defaults: %+v, want root /fae and session_timeout 4s (the original's)", c)
	}
	if err := c.Validate("peer"); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		root    string
		timeout time.Duration
		want    string // "" = valid
	}{
		{"/fae", time.Second, ""},
		{"/apps/fae/nodes", 20 * time.Second, ""},
		{"fae", 4 * time.Second, `peer.root: "fae" is not an absolute ZooKeeper path`},
		{"/", 4 * time.Second, `peer.root: must not be "/"`},
		{"", 4 * time.Second, `peer.root: "" is not an absolute`},
		{"/fae/", 4 * time.Second, `peer.root: "/fae/" has an empty component`},
		{"/a//b", 4 * time.Second, `has an empty component`},
		{"/a/../b", 4 * time.Second, `has a relative component ".."`},
		{"/zookeeper/fae", 4 * time.Second, `ZooKeeper's own tree`},
		{"/fae", 500 * time.Millisecond, "peer.session_timeout: must be 1s..5m0s, got 500ms"},
		{"/fae", 6 * time.Minute, "peer.session_timeout: must be 1s..5m0s, got 6m0s"},
	} {
		c := Config{Root: tc.root, SessionTimeout: tc.timeout}
		err := c.Validate("peer")
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", c, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: error %v, want one containing %q", c, err, tc.want)
		}
	}
}

func TestValidateServers(t *testing.T) {
	if err := ValidateServers("etcd_servers", []string{"127.0.0.1:2181", "zk1.example:2181", "[::1]:2181"}); err != nil {
		t.Fatal(err)
	}
	if err := ValidateServers("etcd_servers", nil); err != nil {
		t.Fatalf("no servers (no cluster) must be valid: %v", err)
	}
	for _, bad := range []string{"127.0.0.1", ":2181", "zk:0", "zk:http", "zk:70000"} {
		err := ValidateServers("etcd_servers", []string{"127.0.0.1:2181", bad})
		if err == nil || !strings.Contains(err.Error(), "etcd_servers[1]") {
			t.Errorf("%q: error %v, want one naming etcd_servers[1]", bad, err)
		}
	}
}
