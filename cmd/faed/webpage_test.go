package main_test

import (
	"os"
	"os/exec"
	"regexp"
	"testing"

	"github.com/fae-go/fae/internal/testenv"
)

var webpageLines = []*regexp.Regexp{
	regexp.MustCompile(`(?m)^mc_get: miss: memcache: cache miss: kvtest:php:\w+:user:42$`),
	regexp.MustCompile(`(?m)^mc_set: true$`),
	regexp.MustCompile(`(?m)^mc_get: flags=1 same user$`),
	regexp.MustCompile(`(?m)^mc_add existing: false$`),
	regexp.MustCompile(`(?m)^mc_increment: 5$`),
	regexp.MustCompile(`(?m)^mc_delete: true$`),
	regexp.MustCompile(`(?m)^rd_call INCR: 1$`),
	regexp.MustCompile(`(?m)^rd_call SET: OK$`),
	regexp.MustCompile(`(?m)^rd_call GET: same user$`),
	regexp.MustCompile(`(?m)^rd_call LRANGE: \["home","profile"\]$`),
	regexp.MustCompile(`(?m)^rd_call GET missing: Internal error processing rd_call: redis GET "kvtest:php:\w+:nosession": pool "web": key not exists$`),
}

// TestPHPWebPage runs contrib/php/webpage.php, a page doing what web pages do
// with memcache and Redis through FaeClient.php (php-cli, php-thrift), against
// faed with both backends on the shared servers.
func TestPHPWebPage(t *testing.T) {
	if _, err := os.Stat("/usr/lib/php/Transport/TSocket.php"); err != nil {
		t.Fatalf("Debian php-thrift is not installed (make test installs it): %v", err)
	}
	for _, a := range []string{testenv.MemcacheAddr, testenv.Memcache2Addr} {
		testenv.RequireServer(t, "memcached", a)
	}
	for _, a := range []string{testenv.RedisAddr, testenv.Redis2Addr} {
		testenv.RequireServer(t, "redis", a)
	}
	f, _ := startFaedSession(t, mcSection("standard", 1, "", mcSrv{"web", testenv.MemcacheAddr}, mcSrv{"web", testenv.Memcache2Addr})+"\n"+
		rdSection("", rdPool{"web", []string{testenv.RedisAddr, testenv.Redis2Addr}}))
	out, err := exec.Command("php", "../../contrib/php/webpage.php", f.rpcAddr, "web", "web").CombinedOutput()
	if err != nil {
		t.Fatalf("php webpage.php: %v\n%s", err, out)
	}
	t.Logf("webpage.php:\n%s", out)
	for _, re := range webpageLines {
		if !re.Match(out) {
			t.Errorf("output lacks a line matching %s:\n%s", re, out)
		}
	}
}
