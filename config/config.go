// Package config loads faed.cf: the original fae's "loose JSON" (HJSON) file.
//
// Load = parse (hjson-go) → apply defaults (each section's SetDefaults, before its
// keys are decoded, so an absent key keeps its default and a present one wins) →
// decode with mapstructure, refusing unknown keys and wrong types → validate every
// section → only then use. Every error names the file and the key path.
package config

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	hjson "github.com/hjson/hjson-go/v4"

	"github.com/fae-go/fae/engine"
	"github.com/fae-go/fae/peer"
	"github.com/fae-go/fae/pool"
	"github.com/fae-go/fae/servant"
)

// Default is the embedded config faed runs on when no -conf is given: RPC on
// 127.0.0.1:9001, HTTP on 127.0.0.1:9101, the dashboard on 127.0.0.1:9102, no
// ZooKeeper, no backends.
//
//go:embed default.cf
var Default []byte

// DefaultName is the name Default is reported under in messages.
const DefaultName = "(embedded default config)"

// Config mirrors faed.cf. Sections live beside the code they configure.
type Config struct {
	// EtcdServers (etcd_servers) are ZooKeeper host:port addresses (the original's
	// name). Empty = no cluster: this node owns every key.
	EtcdServers []string `cf:"etcd_servers"`
	// HTTPListenAddr (http_listen_addr) is the JSON/HTTP API address; "" = off.
	HTTPListenAddr string `cf:"http_listen_addr"`
	// HTTPAdminAllow (http_admin_allow) lists the CIDRs ("10.0.0.0/8",
	// "192.168.1.7/32") whose clients may use the HTTP API's state-changing
	// endpoints (POST /engine/reload, /engine/stop, /engine/loglevel) besides
	// loopback clients, which always may. Default empty: loopback only. New in this fae.
	HTTPAdminAllow []string `cf:"http_admin_allow"`
	// DashboardListenAddr (dashboard_listen_addr) is the dashboard address; "" = off.
	DashboardListenAddr string `cf:"dashboard_listen_addr"`
	// PprofListenAddr (pprof_listen_addr) is the net/http/pprof address; "" = off.
	PprofListenAddr string `cf:"pprof_listen_addr"`
	// ReloadWatchdogInterval (reload_watchdog_interval) is how often the file is checked
	// for changes. Default 1s; 0 = off.
	ReloadWatchdogInterval time.Duration `cf:"reload_watchdog_interval"`
	// ServerMode (server_mode): false = proxy only, never registers in ZooKeeper. Default true.
	ServerMode bool `cf:"server_mode"`
	// CPUNum (cpu_num) sets GOMAXPROCS: "auto" (CPUs/2+1, default), "max" (all CPUs) or a number.
	CPUNum CPUNum `cf:"cpu_num"`
	// MaxCPU (max_cpu) is accepted for compatibility; cpu_num decides.
	MaxCPU int `cf:"max_cpu"`
	// MetricsLogfile (metrics_logfile) is where metrics are dumped. Default metrics.log.
	MetricsLogfile string `cf:"metrics_logfile"`
	// MemoryLimit (memory_limit) is Go's soft memory limit for the whole
	// process, in bytes (runtime/debug.SetMemoryLimit): past it the garbage
	// collector works harder to stay under. 0 = none (default). New in this fae.
	MemoryLimit int64 `cf:"memory_limit"`
	// GCHeapFloor (gc_heap_floor) is the heap, in bytes, below which Go's
	// garbage collector does not start (internal/gcfloor): with faed's live
	// heap of a few MiB, Go's default pacing collected 20 to 40 times a
	// second under load, 6 to 10 % of faed's CPU. It costs up to this many
	// bytes of RSS, and nothing once the live heap is past half of it.
	// Default 33554432 (32 MiB); 0 = Go's own pacing (GOGC). The
	// environment's GOGC is the floor's base: GOGC=off turns it off. Under
	// memory_limit the floor in force is at most half the limit. New in
	// this fae.
	GCHeapFloor int64 `cf:"gc_heap_floor"`
	// Plugin (plugin) is the plugin chain every call goes through (see
	// servant.Plugin): the original's section, whose only plugin RateLimiter
	// did nothing; here RateLimiter limits each client host's call rate.
	// Changed by a reload.
	Plugin PluginConfig `cf:"plugin"`

	// Log (log) is the rotation and retention of the -log FILE (new in this fae).
	Log LogConfig `cf:"log"`

	// Peer (peer) is how this node takes part in the cluster: the ZooKeeper
	// root it registers under and the session timeout (new in this fae).
	Peer peer.Config `cf:"peer"`

	RPC      engine.Config  `cf:"rpc"`
	Servants servant.Config `cf:"servants"`
}

// DefaultGCHeapFloor is gc_heap_floor's default, 32 MiB: the heap goal that
// GOGC=1000 gave faed's live heap of about 3 MiB under make bench, which cut
// its CPU per proxied Redis GET by 9.5 % and per php-fpm session by 10 %.
const DefaultGCHeapFloor = 32 << 20

// CPUNum is the cpu_num key: "auto", "max" or a number, written as a string or a number.
type CPUNum string

// PluginConfig is the plugin section.
type PluginConfig struct {
	// Plugins (plugins) are the plugins that wrap every call, in order, as
	// [{name: "RateLimiter", limit: 100, enforce: true, max_hosts: 10000}]:
	// name a registered one (servant.PluginNames), the other keys the
	// plugin's (servant.PluginSpec). Default empty: none.
	Plugins []servant.PluginSpec `cf:"plugins"`
}

// SetDefaults fills in the top-level defaults.
func (c *Config) SetDefaults() {
	*c = Config{ReloadWatchdogInterval: time.Second, ServerMode: true, CPUNum: "auto", MetricsLogfile: "metrics.log", GCHeapFloor: DefaultGCHeapFloor}
	c.Peer.SetDefaults()
	c.Log.SetDefaults()
}

// LogConfig is the log section: size-based rotation and retention of the file
// given by faed's -log FILE (gopkg.in/natefinch/lumberjack.v2). It does not
// apply to -log stdout nor to a file that is not a regular one (/dev/full, a
// FIFO): those are never rotated. Read at start only: a change needs a restart.
type LogConfig struct {
	// MaxSizeMB (max_size_mb) is the size in megabytes (MiB) past which the
	// file is rotated: renamed to NAME-<UTC time>.EXT and a new one started.
	// Default 100; at least 1.
	MaxSizeMB int `cf:"max_size_mb"`
	// MaxBackups (max_backups) is how many rotated files are kept; 0 = all
	// (max_age_days still applies). Default 10.
	MaxBackups int `cf:"max_backups"`
	// MaxAgeDays (max_age_days) is how many days (24 h) a rotated file is kept,
	// by the time in its name; 0 = no age limit. Default 30.
	MaxAgeDays int `cf:"max_age_days"`
	// Compress (compress) gzips rotated files (in the background). Default false.
	Compress bool `cf:"compress"`
	// TraceFile (trace_file) is the file of the trace stream (request tracing:
	// every call of a rid sampled by servants.profiler_rate, and every slow
	// call), appended and rotated by the settings above; "" (the default) =
	// into the main log, its records marked stream=trace. Either way the
	// stream has a bounded queue of its own: a flood of traced calls drops
	// trace records (counted), never main log records.
	TraceFile string `cf:"trace_file"`
}

// SetDefaults fills in the log section's defaults: 100 MiB files, 10 backups, 30 days.
func (l *LogConfig) SetDefaults() {
	*l = LogConfig{MaxSizeMB: 100, MaxBackups: 10, MaxAgeDays: 30}
}

// Validate checks the log section; prefix is its key path ("log").
func (l *LogConfig) Validate(prefix string) error {
	if l.MaxSizeMB < 1 {
		return fmt.Errorf("%s.max_size_mb: must be at least 1 (MiB), got %d", prefix, l.MaxSizeMB)
	}
	if l.MaxBackups < 0 {
		return fmt.Errorf("%s.max_backups: must be 0 (keep all) or more, got %d", prefix, l.MaxBackups)
	}
	if l.MaxAgeDays < 0 {
		return fmt.Errorf("%s.max_age_days: must be 0 (no age limit) or more, got %d", prefix, l.MaxAgeDays)
	}
	return nil
}

// GoMaxProcs is the GOMAXPROCS that cpu_num asks for, given ncpu CPUs.
func (c *Config) GoMaxProcs(ncpu int) int {
	switch c.CPUNum {
	case "auto":
		return ncpu/2 + 1
	case "max":
		return ncpu
	}
	n, _ := strconv.Atoi(string(c.CPUNum))
	return n
}

// Load reads and checks the config file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return Parse(path, data)
}

// Parse checks data, the contents of the file name, and returns its config.
func Parse(name string, data []byte) (*Config, error) {
	c, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", name, err)
	}
	return c, nil
}

func parse(data []byte) (*Config, error) {
	var raw map[string]any
	opts := hjson.DecoderOptions{UseJSONNumber: true, DisallowDuplicateKeys: true}
	if err := hjson.UnmarshalWithOptions(data, &raw, opts); err != nil {
		return nil, fmt.Errorf("syntax: %s", syntaxMessage(err))
	}
	if raw == nil {
		return nil, errors.New("empty file: the rpc section is required")
	}
	dropOffline(raw)
	if sv, ok := raw["servants"].(map[string]any); ok {
		dropOffline(sv)
	}
	if _, ok := raw["rpc"]; !ok {
		return nil, errors.New("rpc: required section is missing")
	}
	if _, ok := raw["servants"]; !ok {
		raw["servants"] = map[string]any{}
	}
	c := new(Config)
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		TagName:     "cf",
		ErrorUnused: true,
		DecodeHook:  hook,
		Result:      c,
	})
	if err != nil {
		return nil, err
	}
	if err := dec.Decode(raw); err != nil {
		return nil, cleanDecodeError(err)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	c.Servants.MaxReplyBytes = c.RPC.MaxReplyBytes // enforced by the servants' pools
	c.Servants.Plugins = c.Plugin.Plugins          // the servant's call pipeline runs them
	c.Servants.HostMaxCallPerMinute = c.RPC.HostMaxCallPerMinute
	return c, nil
}

func (c *Config) validate() error {
	switch c.CPUNum {
	case "auto", "max":
	default:
		if n, err := strconv.Atoi(string(c.CPUNum)); err != nil || n < 1 {
			return fmt.Errorf("cpu_num: must be \"auto\", \"max\" or a number ≥ 1, got %q", c.CPUNum)
		}
	}
	if c.MemoryLimit != 0 && c.MemoryLimit < 64<<20 {
		return fmt.Errorf("memory_limit: must be 0 (none) or at least 67108864 (64 MiB), got %d", c.MemoryLimit)
	}
	if c.GCHeapFloor != 0 && (c.GCHeapFloor < 4<<20 || c.GCHeapFloor > 1<<40) {
		return fmt.Errorf("gc_heap_floor: must be 0 (Go's own pacing) or 4194304 (4 MiB) to 1099511627776 (1 TiB), got %d", c.GCHeapFloor)
	}
	if c.ReloadWatchdogInterval < 0 {
		return fmt.Errorf("reload_watchdog_interval: must not be negative, got %s", c.ReloadWatchdogInterval)
	}
	if err := servant.ValidatePlugins("plugin.plugins", c.Plugin.Plugins, c.RPC.HostMaxCallPerMinute); err != nil {
		return err
	}
	for i, cidr := range c.HTTPAdminAllow {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			return fmt.Errorf("http_admin_allow[%d]: not a CIDR such as 10.0.0.0/8: %q", i, cidr)
		}
	}
	if err := c.Log.Validate("log"); err != nil {
		return err
	}
	if err := peer.ValidateServers("etcd_servers", c.EtcdServers); err != nil {
		return err
	}
	if err := c.Peer.Validate("peer"); err != nil {
		return err
	}
	if err := c.RPC.Validate("rpc"); err != nil {
		return err
	}
	if c.ServerMode && len(c.EtcdServers) > 0 && c.RPC.AdvertiseAddr == "" &&
		!slices.ContainsFunc(c.RPC.Addrs(), func(a string) bool { return !engine.IsUnixAddr(a) }) {
		return errors.New("rpc.listen_addr: a node that registers in the cluster needs a TCP address for its peers, or rpc.advertise_addr")
	}
	return c.Servants.Validate("servants")
}

// dropOffline removes the sections whose name ends in "_offline": the original
// sample switches sections off that way (mongodb_offline, couchbase_offline).
func dropOffline(m map[string]any) {
	for k := range m {
		if strings.HasSuffix(k, "_offline") {
			delete(m, k)
		}
	}
}

type defaulter interface{ SetDefaults() }

var (
	durationType = reflect.TypeOf(time.Duration(0))
	numberType   = reflect.TypeOf(json.Number(""))
	portType     = reflect.TypeOf(pool.Port(0))
	cpuNumType   = reflect.TypeOf(CPUNum(""))
	addrListType = reflect.TypeOf(engine.AddrList(nil))
)

// hook runs before mapstructure decodes a value into to. It fills in a section's
// defaults before its keys are decoded, and converts durations, numbers and ports
// strictly: "4s" is a duration, 4 is not; 1.5 is not an int. rpc.listen_addr
// takes a string or a list of strings.
func hook(from, to reflect.Value) (any, error) {
	data := from.Interface()
	if to.CanAddr() {
		if d, ok := to.Addr().Interface().(defaulter); ok {
			if _, isMap := data.(map[string]any); isMap {
				d.SetDefaults()
			}
		}
	}
	t := to.Type()
	switch {
	case t == durationType:
		s, ok := data.(string)
		if !ok {
			return nil, fmt.Errorf("want a duration string like \"4s\", got %v", data)
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("bad duration %q (want like \"500ms\", \"4s\", \"1m\")", s)
		}
		return d, nil
	case t == portType:
		// The original sample writes memcache ports as strings, mysql ports as numbers.
		switch v := data.(type) {
		case json.Number:
			p, err := strconv.Atoi(v.String())
			if err != nil {
				return nil, fmt.Errorf("want a port number, got %s", v)
			}
			return p, nil
		case string:
			p, err := strconv.Atoi(v)
			if err != nil {
				return nil, fmt.Errorf("want a port number, got %q", v)
			}
			return p, nil
		}
	case t == addrListType:
		// rpc.listen_addr: one address as a string, or a list of them.
		switch v := data.(type) {
		case string:
			return []string{v}, nil
		case []any:
			return v, nil
		}
		return nil, fmt.Errorf("want an address string or a list of them, got %v", data)
	case t == cpuNumType:
		if n, ok := data.(json.Number); ok {
			return n.String(), nil
		}
	case from.Type() == numberType:
		n := data.(json.Number)
		switch to.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			i, err := strconv.ParseInt(n.String(), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("want a whole number, got %s", n)
			}
			return i, nil
		case reflect.Float32, reflect.Float64:
			return n.Float64()
		}
	}
	return data, nil
}

// cleanDecodeError turns mapstructure's multi-line report into one line that
// starts with the key path.
func cleanDecodeError(err error) error {
	msg := err.Error()
	if i := strings.Index(msg, "\n\n"); i >= 0 {
		msg = msg[i+2:]
	}
	msg = strings.ReplaceAll(msg, "\n", "; ")
	msg = strings.TrimPrefix(msg, "* ")
	msg = strings.ReplaceAll(msg, "; * ", "; ")
	return errors.New(msg)
}

var duplicateRE = regexp.MustCompile(`Found duplicate values .* for key '([^']*)' at line (\d+),(\d+)`)

// syntaxMessage shortens hjson's duplicate-key report, which prints whole values.
func syntaxMessage(err error) string {
	if m := duplicateRE.FindStringSubmatch(err.Error()); m != nil {
		return fmt.Sprintf("duplicate key %q at line %s, column %s", m[1], m[2], m[3])
	}
	return err.Error()
}
