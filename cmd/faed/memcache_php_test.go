package main_test

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/fae-go/fae/internal/testenv"
)

// TestMemcacheSharedWithPHP: items are shared with PHP's own memcache
// extensions over the shared memcached pair. What PHP stores, faed reads (so
// PHP and faed pick the same server for every key), and what faed stores, PHP
// reads — for hash_strategy standard (pecl memcache) and consistent (pecl
// memcached, libketama compatible). Needs php-memcache and php-memcached
// (contrib/install-deps).
func TestMemcacheSharedWithPHP(t *testing.T) {
	testenv.RequireServer(t, "memcached", testenv.MemcacheAddr)
	testenv.RequireServer(t, "memcached2", testenv.Memcache2Addr)
	if out, err := exec.Command("php", "-m").Output(); err != nil ||
		!strings.Contains(string(out), "\nmemcache\n") || !strings.Contains(string(out), "\nmemcached\n") {
		t.Fatalf("php-memcache and php-memcached are needed (contrib/install-deps): %v", err)
	}
	for _, strategy := range []string{"standard", "consistent"} {
		t.Run(strategy, func(t *testing.T) { testSharedWithPHP(t, strategy) })
	}
}

// testSharedWithPHP shares items both ways with PHP for one hash strategy.
func testSharedWithPHP(t *testing.T, strategy string) {
	_, c := startFaedSession(t, mcSection(strategy, 1, "", mcSrv{"default", testenv.MemcacheAddr}, mcSrv{"default", testenv.Memcache2Addr}))
	const n = 50
	php := func(action, prefix string) string {
		out, err := exec.Command("php", "testdata/mc_share.php", strategy, action, prefix, fmt.Sprint(n),
			testenv.MemcacheAddr, testenv.Memcache2Addr).CombinedOutput()
		if err != nil {
			t.Fatalf("php mc_share.php %s: %v\n%s", action, err, out)
		}
		return string(out)
	}

	fromPHP := kvKey(t, "php") + "."
	php("set", fromPHP)
	for i := 0; i < n; i++ {
		k := fmt.Sprint(fromPHP, i)
		if v, err := c.McGet(bg, ctx(), "default", k); err != nil || string(v.Data) != fmt.Sprint("php:", i) {
			t.Errorf("%q stored by PHP: faed reads %v, %v", k, v, err)
		}
	}
	if strategy == "standard" {
		v, err := c.McGet(bg, ctx(), "default", fromPHP+"arr")
		if err != nil || v.Flags&1 != 1 || string(v.Data) != `a:1:{s:1:"x";i:1;}` {
			t.Errorf("array stored by PHP: faed reads %+v, %v; want PHP's serialized bytes with flag 1", v, err)
		}
	}
	faedToPHP(t, c, php, n)
}

// faedToPHP stores n items through faed and has php read them back.
func faedToPHP(t *testing.T, c *client, php func(action, prefix string) string, n int) {
	fromFae := kvKey(t, "fae") + "."
	var want strings.Builder
	for i := 0; i < n; i++ {
		k := fmt.Sprint(fromFae, i)
		if _, err := c.McSet(bg, ctx(), "default", k, mcData(fmt.Sprint("fae:", i), 0), 60); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&want, "%s fae:%d\n", k, i)
	}
	if got := php("get", fromFae); got != want.String() {
		t.Errorf("PHP reads what faed stored:\n%s\nwant:\n%s", got, want.String())
	}
}
