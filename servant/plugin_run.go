package servant

import (
	"context"
	"fmt"
	"net/netip"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/fae-go/fae/engine"
)

// The plugin chain in the call pipeline: built with each generation
// (buildChain), run by enter (pluginsBefore) and leave (pluginsAfter) only
// when the generation has plugins, so that without any a call pays one
// length check.

// buildChain gives g the plugin chain of its config, each plugin built with
// old's plugin of the same name as Prev, and the peer addresses the chain
// needs. On error g has none.
func (s *FunServant) buildChain(g, old *generation) error {
	if len(g.cfg.Plugins) == 0 {
		return nil
	}
	env := PluginEnv{HostMaxCallPerMinute: g.cfg.HostMaxCallPerMinute, Logger: s.log}
	chain, err := buildPlugins(g.cfg.Plugins, env, old.plugins, s.pluginCounts)
	if err != nil {
		return fmt.Errorf("plugin.plugins%w", err)
	}
	g.plugins = chain
	g.peerIPs = s.peerIPs()
	return nil
}

// pluginCounts returns the counters of the plugin called name, made on its
// first use; they live as long as the servant (a name is a registered one,
// so they are bounded by the registry).
func (s *FunServant) pluginCounts(name string) *PluginCounts {
	s.pluginMu.Lock()
	defer s.pluginMu.Unlock()
	if s.plugins == nil {
		s.plugins = map[string]*PluginCounts{}
	}
	pc := s.plugins[name]
	if pc == nil {
		pc = new(PluginCounts)
		s.plugins[name] = pc
	}
	return pc
}

// peerIPs are the IP addresses of the members known but this node, from
// their advertised host:port; a member advertised by host name is left out
// (no DNS lookup on a reload). Called under s.reload.
func (s *FunServant) peerIPs() map[netip.Addr]struct{} {
	ips := map[netip.Addr]struct{}{}
	for _, m := range s.members {
		if m.Addr == s.opts.Self {
			continue
		}
		if ap, err := netip.ParseAddrPort(m.Addr); err == nil {
			ips[ap.Addr().Unmap()] = struct{}{}
		}
	}
	return ips
}

// pluginCall is what enter noted for leave when the generation has plugins.
type pluginCall struct {
	client netip.Addr
	peer   bool
	ran    uint8 // plugins whose Before let the call through: they see After
}

func (cl *call) pluginView() Call {
	return Call{Method: cl.name, Context: cl.c, Client: cl.pc.client, Peer: cl.pc.peer}
}

// pluginsBefore runs the chain's Before in order. A refusal by an enforced
// plugin ends the call: the plugins before it see After with the refusal,
// and a *RefusedError is returned. A panic fails the call with ErrPanic.
func (s *FunServant) pluginsBefore(ctx context.Context, cl *call) (err error) {
	if addr, ok := engine.ClientAddr(ctx); ok {
		cl.pc.client = addr
		_, cl.pc.peer = cl.g.peerIPs[addr]
	}
	defer func() {
		if r := recover(); r != nil {
			err = s.pluginPanic(cl, r)
		}
		if err != nil {
			s.pluginsAfter(cl, err, time.Since(cl.start))
		}
	}()
	v := cl.pluginView()
	for i := range cl.g.plugins {
		pe := &cl.g.plugins[i]
		if perr := pe.p.Before(v); perr != nil {
			if !pe.enforce {
				pe.counts.WouldRefuse.Add(1)
			} else {
				pe.counts.Refused.Add(1)
				return &RefusedError{Plugin: pe.name, Err: perr}
			}
		}
		cl.pc.ran = uint8(i + 1)
	}
	return nil
}

// pluginsAfter runs After, in reverse order, of the plugins that let the call through.
func (s *FunServant) pluginsAfter(cl *call, err error, elapsed time.Duration) {
	defer func() {
		if r := recover(); r != nil {
			s.pluginPanic(cl, r)
		}
	}()
	v := cl.pluginView()
	for cl.pc.ran > 0 {
		cl.pc.ran-- // a panicking After is not called again
		cl.g.plugins[cl.pc.ran].p.After(v, err, elapsed)
	}
}

func (s *FunServant) pluginPanic(cl *call, r any) error {
	cl.stats.Panics.Add(1)
	s.log.Error("plugin panicked", "method", cl.name, "panic", r, "rid", rid(cl.c), "stack", string(debug.Stack()))
	return fmt.Errorf("%w: %s (in a plugin)", ErrPanic, cl.name)
}

// PluginStat is one plugin's line in /svt/stat.
type PluginStat struct {
	Name        string `json:"name"`
	Configured  bool   `json:"configured"`   // in the current plugin.plugins
	Enforce     bool   `json:"enforce"`      // its entry's enforce (false when not configured)
	Refused     int64  `json:"refused"`      // calls refused since start
	WouldRefuse int64  `json:"would_refuse"` // calls objected to but let through (enforce off) since start
	Detail      any    `json:"detail,omitempty"`
}

// Plugins returns the figures of every plugin configured now, in config
// order, then of those configured earlier (by a previous reload), by name:
// at most one line per registered name. Detail is the plugin's Stats() (a
// Statser) when configured.
func (s *FunServant) Plugins() []PluginStat {
	g := s.gen.Load()
	s.pluginMu.Lock()
	defer s.pluginMu.Unlock()
	out := []PluginStat{}
	for _, pe := range g.plugins {
		ps := PluginStat{Name: pe.name, Configured: true, Enforce: pe.enforce,
			Refused: pe.counts.Refused.Load(), WouldRefuse: pe.counts.WouldRefuse.Load()}
		if st, ok := pe.p.(Statser); ok {
			ps.Detail = st.Stats()
		}
		out = append(out, ps)
	}
	var gone []PluginStat
	for name, pc := range s.plugins {
		if !slices.ContainsFunc(g.plugins, func(pe pluginEntry) bool { return pe.name == name }) {
			gone = append(gone, PluginStat{Name: name, Refused: pc.Refused.Load(), WouldRefuse: pc.WouldRefuse.Load()})
		}
	}
	slices.SortFunc(gone, func(a, b PluginStat) int { return strings.Compare(a.Name, b.Name) })
	return append(out, gone...)
}
