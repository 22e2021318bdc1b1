package servant

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fae-go/fae/idl/fun/rpc"
)

// Plugins: code compiled into faed that wraps every call of FunServant that
// carries a checked Context (every method but noop and id_decode). The
// plugins named in faed.cf's plugin.plugins see each call before its work, in
// config order, and may refuse it; those that let it through see it after,
// in reverse order. Plugins are registered by name (RegisterPlugin) and built
// per generation, so a reload changes the list and a call keeps the chain it
// started with. The original fae had a plugin skeleton whose only plugin,
// RateLimiter, did nothing (ORIGINAL-FAE.md §3.6); issue 11 makes it real.

// Plugin is one link of the chain. Before and After run on the call's
// goroutine, on every call: they must be fast (a few hundred ns at most, no
// I/O, no blocking) and safe for concurrent use. A panic in either fails the
// call with ErrPanic (logged, counted), never the process.
type Plugin interface {
	// Before sees a call before its work. A non-nil error objects to it:
	// with the entry's enforce the call is refused with a *RefusedError
	// wrapping it, else it goes on and the objection is counted as a
	// would-be refusal (PluginStat.WouldRefuse). The error's text is the
	// client's: it should name the limit, and must not carry keys or SQL.
	Before(c Call) error
	// After sees a call that Before let through when it has ended: its error
	// (nil on success; a declared exception such as TCacheMissed included)
	// and the time since the call started.
	After(c Call, err error, elapsed time.Duration)
}

// Statser is a Plugin with figures of its own, shown under its name in
// /svt/stat ("detail") and read by the Prometheus collector; Stats must be
// safe for concurrent use and bounded in size.
type Statser interface {
	Stats() any
}

// Call is what a plugin sees of one call.
type Call struct {
	Method  string       // the stats name: "lc.get", "my.query"… (see MethodNames)
	Context *rpc.Context // the caller's, checked: non-nil, rid ≠ 0, reason ≠ ""
	// Client is the client's IP address (engine.ClientAddr); the zero Addr
	// (!Client.IsValid()) for a unix-socket client or a call made outside an
	// engine session.
	Client netip.Addr
	// Peer is true when Client is the IP of a registered cluster member
	// other than this node (a forwarding peer, or a client on a peer's host).
	Peer bool
}

// PluginSpec is one entry of plugin.plugins in faed.cf, as
// {name: "RateLimiter", limit: 100, enforce: true}.
type PluginSpec struct {
	// Name (name) is the registered name, e.g. "RateLimiter". Required; a
	// name at most once in the list.
	Name string `cf:"name"`
	// Limit (limit) is the plugin's own number (the original's key);
	// RateLimiter: the burst. 0 = the plugin's default.
	Limit int `cf:"limit"`
	// Enforce (enforce): true = the calls the plugin objects to are refused;
	// false (default) = they go on and are only counted, so that a plugin
	// can be tried on live traffic first. New in this fae.
	Enforce bool `cf:"enforce"`
	// MaxHosts (max_hosts) is RateLimiter's bound on the client hosts it
	// tracks; 0 = its default (10000). New in this fae.
	MaxHosts int `cf:"max_hosts"`
	// Options are the entry's other keys, for plugins that need more; a
	// plugin refuses keys it does not know.
	Options map[string]any `cf:",remain"`
}

// PluginEnv is what a PluginFactory gets besides the entry.
type PluginEnv struct {
	// HostMaxCallPerMinute is rpc.host_max_call_per_minute (default 6000).
	HostMaxCallPerMinute int
	// Prev is the plugin of the same name in the running generation (nil at
	// start, when the name is newly listed, and when validating): a factory
	// may return it unchanged when the entry's settings are, or carry its
	// state (counters) over, so that a reload or a membership change does
	// not reset it. Prev keeps serving the calls that pinned the old chain.
	Prev Plugin
	// Logger is the servant's call logger.
	Logger *slog.Logger
}

// PluginFactory builds the plugin of one plugin.plugins entry, or returns
// an error (naming the key: "limit: must not be negative") when the entry
// or env does not suit it.
type PluginFactory func(spec PluginSpec, env PluginEnv) (Plugin, error)

var registry = struct {
	sync.RWMutex
	m map[string]PluginFactory
}{m: map[string]PluginFactory{}}

// RegisterPlugin makes the plugin factory f known under name, which
// plugin.plugins entries then use. Call it from an init function of the
// package that defines the plugin (compiled in; Go .so plugins are not
// supported). It returns an error for an empty name, a nil f, or a name
// already registered.
func RegisterPlugin(name string, f PluginFactory) error {
	registry.Lock()
	defer registry.Unlock()
	switch {
	case name == "" || f == nil:
		return errors.New("servant: RegisterPlugin needs a name and a factory")
	case registry.m[name] != nil:
		return fmt.Errorf("servant: plugin %q is already registered", name)
	}
	registry.m[name] = f
	return nil
}

// PluginNames returns the registered plugin names, sorted.
func PluginNames() []string {
	registry.RLock()
	defer registry.RUnlock()
	names := make([]string, 0, len(registry.m))
	for n := range registry.m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func factory(name string) PluginFactory {
	registry.RLock()
	defer registry.RUnlock()
	return registry.m[name]
}

// ValidatePlugins checks the plugin.plugins entries specs, prefix being
// their key path ("plugin.plugins"), by building each once with
// hostMaxCallPerMinute: an unknown name (the error lists the known ones), a
// name twice, or an entry its factory refuses is an error naming the entry.
func ValidatePlugins(prefix string, specs []PluginSpec, hostMaxCallPerMinute int) error {
	_, err := buildPlugins(specs, PluginEnv{HostMaxCallPerMinute: hostMaxCallPerMinute, Logger: slog.Default()}, nil, nil)
	if err != nil {
		return fmt.Errorf("%s%w", prefix, err)
	}
	return nil
}

// MaxPlugins bounds plugin.plugins: a chain is a handful of plugins, each
// costing every call its Before and After.
const MaxPlugins = 32

// pluginEntry is one link of a generation's chain.
type pluginEntry struct {
	name    string
	p       Plugin
	enforce bool
	counts  *PluginCounts // the core's, by name: they outlive the generation
}

// PluginCounts count one plugin's objections since start (across reloads).
type PluginCounts struct {
	Refused     atomic.Int64 // calls refused (enforce on)
	WouldRefuse atomic.Int64 // calls objected to but let through (enforce off)
}

// buildPlugins builds the chain of specs; old is the running chain (its
// plugins are each factory's Prev), counts gives a name's counters (nil:
// none, when validating). An error starts with the entry's index.
func buildPlugins(specs []PluginSpec, env PluginEnv, old []pluginEntry, counts func(string) *PluginCounts) ([]pluginEntry, error) {
	if len(specs) > MaxPlugins {
		return nil, fmt.Errorf(": %d plugins, at most %d", len(specs), MaxPlugins)
	}
	var chain []pluginEntry
	for i, spec := range specs {
		f := factory(spec.Name)
		if f == nil {
			return nil, fmt.Errorf("[%d].name: unknown plugin %q (known: %s)", i, spec.Name, strings.Join(PluginNames(), ", "))
		}
		if slices.ContainsFunc(specs[:i], func(o PluginSpec) bool { return o.Name == spec.Name }) {
			return nil, fmt.Errorf("[%d].name: plugin %q is listed twice", i, spec.Name)
		}
		e := env
		if j := slices.IndexFunc(old, func(o pluginEntry) bool { return o.name == spec.Name }); j >= 0 {
			e.Prev = old[j].p
		}
		p, err := f(spec, e)
		if err != nil {
			return nil, fmt.Errorf("[%d] (%s): %w", i, spec.Name, err)
		}
		pe := pluginEntry{name: spec.Name, p: p, enforce: spec.Enforce}
		if counts != nil {
			pe.counts = counts(spec.Name)
		}
		chain = append(chain, pe)
	}
	return chain, nil
}

// RefusedError is the error of a call a plugin refused. The client sees a
// TApplicationException (INTERNAL_ERROR) "Internal error processing
// <method>: plugin <name> refused the call: <reason>".
type RefusedError struct {
	Plugin string // its registered name
	Err    error  // what its Before returned
}

func (e *RefusedError) Error() string {
	return "plugin " + e.Plugin + " refused the call: " + e.Err.Error()
}

func (e *RefusedError) Unwrap() error { return e.Err }
