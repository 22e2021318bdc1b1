package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// originalSample is the original fae's faed.cf.sample, copied unchanged into
// testdata so that the tests read nothing outside the repository.
const originalSample = "testdata/original.cf.sample"

// TestOriginalSampleDefaults: the original sample loads unchanged, its values
// win, and keys it leaves out take the original defaults.
func TestOriginalSampleDefaults(t *testing.T) {
	c, err := Load(originalSample)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"rpc.listen_addr (a string in the file)", strings.Join(c.RPC.ListenAddrs, ","), ":9001"},
		{"rpc.advertise_addr (default)", c.RPC.AdvertiseAddr, ""},
		{"rpc.io_timeout", c.RPC.IOTimeout, 4 * time.Second},
		{"rpc.session_timeout", c.RPC.SessionTimeout, time.Duration(0)},
		{"rpc.max_outstanding_sessions", c.RPC.MaxOutstandingSessions, 50000},
		{"rpc.max_message_bytes (default)", c.RPC.MaxMessageBytes, 16 << 20},
		{"rpc.shutdown_timeout (default)", c.RPC.ShutdownTimeout, 10 * time.Second},
		{"cpu_num", string(c.CPUNum), "max"},
		{"etcd_servers", len(c.EtcdServers), 1},
		{"servants.call_slow_threshold", c.Servants.CallSlowThreshold, time.Second},
		{"servants.session_max_items", c.Servants.SessionMaxItems, 20000},
		{"servants.lcache.max_items", c.Servants.Lcache.MaxItems, 10485760},
		{"servants.lock.expires", c.Servants.Lock.Expires, 10 * time.Second},
		{"servants.proxy.pool_capacity", c.Servants.Proxy.PoolCapacity, 300},
		{"servants.proxy.io_timeout", c.Servants.Proxy.IOTimeout, time.Duration(0)},
		{"mysql.servers", len(c.Servants.Mysql.Servers), 6},
		{"mysql.servers[0].charset (default)", c.Servants.Mysql.Servers[0].Charset, "utf8"},
		{"mysql.breaker.failure_allowance", c.Servants.Mysql.Breaker.FailureAllowance, 10},
		{"mysql.max_conns_per_server", c.Servants.Mysql.MaxConnsPerServer, 50},
		{"mysql.lookup_tables", c.Servants.Mysql.LookupTables["WorldShard"], "WorldLookup"},
		{"mysql.default_lookup_table (default)", c.Servants.Mysql.DefaultLookupTable, ""},
		{"mongodb_offline is off", c.Servants.Mongodb == nil, true},
		{"couchbase_offline is off", c.Servants.Couchbase == nil, true},
		{"redis.pools[1].name", c.Servants.Redis.Pools[1].Name, "game"},
		{"redis.pools[0].servers[0].idle_timeout", c.Servants.Redis.Pools[0].Servers[0].IdleTimeout, time.Duration(0)},
		{"redis.breaker.retry_interval", c.Servants.Redis.Breaker.RetryInterval, 5 * time.Second},
		{"memcache.servers[0].port (a string in the file)", int(c.Servants.Memcache.Servers[0].Port), 11211},
		{"memcache.replica_num", c.Servants.Memcache.ReplicaNum, 2},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

// TestSectionDefaults: a section given with few keys gets the original defaults
// for the rest; an absent backend section is nil (off).
func TestSectionDefaults(t *testing.T) {
	c, err := Parse("test", []byte(`{
		rpc: { listen_addr: "127.0.0.1:1" }
		servants: {
			redis: { pools: [ { name: "a", servers: [ { addr: "127.0.0.1:1" } ] } ] }
			memcache: { servers: [ { host: "h", port: 11211 } ] }
			lcache: {}
		}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Servants.Redis.Pools[0].Servers[0]
	if s.MaxIdle != 10 || s.MaxActive != 20 || s.IdleTimeout != 10*time.Minute {
		t.Errorf("redis server defaults = %+v, want max_idle 10, max_active 20, idle_timeout 10m", s)
	}
	mc := c.Servants.Memcache
	if mc.Servers[0].Pool != "default" || mc.MaxConnsPerServer != 30 || mc.Timeout != 4*time.Second || mc.Breaker.FailureAllowance != 5 {
		t.Errorf("memcache defaults = %+v", mc)
	}
	if c.Servants.Lcache.MaxItems != 1<<30 {
		t.Errorf("lcache.max_items default = %d", c.Servants.Lcache.MaxItems)
	}
	if c.Servants.Mysql != nil || c.Servants.Lock != nil {
		t.Error("absent sections are not nil")
	}
	if c.RPC.SessionTimeout != 30*time.Second || c.RPC.IOTimeout != 2*time.Second || c.RPC.Protocol != "binary" {
		t.Errorf("rpc defaults = %+v", c.RPC)
	}
	if !c.ServerMode || c.CPUNum != "auto" || c.GoMaxProcs(8) != 5 || c.GCHeapFloor != 32<<20 {
		t.Errorf("top-level defaults: server_mode %v cpu_num %q gc_heap_floor %d", c.ServerMode, c.CPUNum, c.GCHeapFloor)
	}
}

// gc_heap_floor: 0 turns the floor off; a value under Go's 4 MiB minimum
// heap (or absurdly large) is refused, naming the key and the bounds.
func TestGCHeapFloorKey(t *testing.T) {
	for _, c := range []struct {
		value string
		want  int64
		err   string
	}{
		{"0", 0, ""},
		{"67108864", 64 << 20, ""},
		{"1048576", 0, "gc_heap_floor: must be 0 (Go's own pacing) or 4194304 (4 MiB) to 1099511627776 (1 TiB), got 1048576"},
		{"-1", 0, "gc_heap_floor: must be 0"},
	} {
		cfg, err := Parse("test", []byte("{\n gc_heap_floor: "+c.value+"\n rpc: { listen_addr: \"127.0.0.1:1\" }\n}"))
		switch {
		case c.err == "" && err != nil:
			t.Errorf("gc_heap_floor %s: %v", c.value, err)
		case c.err == "" && cfg.GCHeapFloor != c.want:
			t.Errorf("gc_heap_floor %s: %d", c.value, cfg.GCHeapFloor)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("gc_heap_floor %s: %v, want an error with %q", c.value, err, c.err)
		}
	}
}

func TestEmbeddedDefault(t *testing.T) {
	c, err := Parse(DefaultName, Default)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.RPC.Addrs(), []string{"127.0.0.1:9001"}) || c.HTTPListenAddr != "127.0.0.1:9101" || len(c.EtcdServers) != 0 ||
		c.DashboardListenAddr != "127.0.0.1:9102" {
		t.Errorf("embedded default: rpc %q http %s dashboard %s zk %v", c.RPC.Addrs(), c.HTTPListenAddr,
			c.DashboardListenAddr, c.EtcdServers)
	}
	if c.Servants.Mysql != nil || c.Servants.Lcache == nil || c.Servants.Lock == nil {
		t.Error("embedded default must have lcache and lock, and no backend")
	}
}

func TestProjectSample(t *testing.T) {
	if _, err := Load("../etc/faed.cf.sample"); err != nil {
		t.Fatal(err)
	}
}
