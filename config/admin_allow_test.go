package config

import (
	"slices"
	"strings"
	"testing"
)

const adminBase = `{rpc: {listen_addr: "127.0.0.1:1"}, servants: {}`

func TestHTTPAdminAllow(t *testing.T) {
	c, err := Parse("test", []byte(adminBase+`, http_admin_allow: ["10.0.0.0/8", "2001:db8::/32"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.HTTPAdminAllow, []string{"10.0.0.0/8", "2001:db8::/32"}) {
		t.Fatalf("http_admin_allow = %q", c.HTTPAdminAllow)
	}
	if c, err = Parse("test", []byte(adminBase+"}")); err != nil || len(c.HTTPAdminAllow) != 0 {
		t.Fatalf("default: %q, %v; want empty (loopback only)", c.HTTPAdminAllow, err)
	}
	_, err = Parse("test", []byte(adminBase+`, http_admin_allow: ["10.0.0.0/8", "10.0.0.1"]}`))
	if err == nil || !strings.Contains(err.Error(), `http_admin_allow[1]`) || !strings.Contains(err.Error(), `"10.0.0.1"`) {
		t.Fatalf("a bad CIDR: %v, want an error naming http_admin_allow[1]", err)
	}
}
