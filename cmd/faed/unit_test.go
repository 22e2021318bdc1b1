package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/fae-go/fae/engine"
)

// TestSystemdUnit: contrib/faed.service reloads by SIGHUP, stops by faed -k
// on the lock file faed runs with, allows more descriptors than the default
// rpc.max_outstanding_sessions, and passes systemd-analyze verify (with the
// binary under test in place of /usr/local/bin/faed) where systemd is installed.
func TestSystemdUnit(t *testing.T) {
	data, err := os.ReadFile("../../contrib/faed.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(data)
	for _, re := range []string{`(?m)^ExecReload=/bin/kill -HUP \$MAINPID$`,
		`(?m)^ExecStart=/usr/local/bin/faed .*-lockfile /run/faed/faed\.lock`,
		`(?m)^ExecStop=/usr/local/bin/faed -k -lockfile /run/faed/faed\.lock `} {
		if !regexp.MustCompile(re).MatchString(unit) {
			t.Errorf("unit lacks %s", re)
		}
	}
	m := regexp.MustCompile(`(?m)^LimitNOFILE=(\d+)$`).FindStringSubmatch(unit)
	if m == nil {
		t.Fatal("unit lacks LimitNOFILE")
	}
	if n, _ := strconv.Atoi(m[1]); n <= engine.DefaultMaxOutstandingSessions {
		t.Errorf("LimitNOFILE %d, want above %d (rpc.max_outstanding_sessions)", n, engine.DefaultMaxOutstandingSessions)
	}
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: unit not verified")
	}
	path := filepath.Join(t.TempDir(), "faed.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/faed", faedBin)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sa, "verify", path).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
