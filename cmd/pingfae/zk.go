package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"sort"
	"strconv"
	"time"

	"github.com/go-zookeeper/zk"
	"golang.org/x/sync/errgroup"

	"github.com/fae-go/fae/peer"
)

// discover reads the nodes registered under root: one session, a children
// read and a read of each child's record, all within timeout; it creates and
// watches nothing. A member is pinged in the protocol and transport its
// record advertises. A child that is not this implementation's record (an
// original fae registers with empty data) is still pinged, in protocol and
// framed, with a note saying why; one whose name is not a host:port is left
// out. Errors: ZooKeeper not answering in time, root missing.
func discover(ctx context.Context, servers []string, root string, timeout time.Duration, protocol string, framed bool) ([]target, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := peer.ValidateServers("-zk", servers); err != nil {
		return nil, err
	}
	c, events, err := zk.Connect(servers, timeout, zk.WithLogInfo(false), zk.WithLogger(log.New(io.Discard, "", 0)))
	if err != nil {
		return nil, fmt.Errorf("zookeeper %v: %w", servers, err)
	}
	defer c.Close()
	if err := waitSession(ctx, events); err != nil {
		return nil, fmt.Errorf("zookeeper %v: no session within %s: %w", servers, timeout, err)
	}
	names, err := within(ctx, func() ([]string, error) {
		names, _, err := c.Children(root)
		return names, err
	})
	if err != nil {
		return nil, fmt.Errorf("zookeeper children of %s: %w", root, err)
	}
	sort.Strings(names)
	targets := make([]*target, len(names))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(defaultParallel)
	for i, name := range names {
		g.Go(func() error {
			data, err := within(gctx, func() ([]byte, error) {
				data, _, err := c.Get(root + "/" + name)
				return data, err
			})
			switch {
			case errors.Is(err, zk.ErrNoNode): // gone meanwhile
				return nil
			case err != nil:
				return fmt.Errorf("zookeeper get %s/%s: %w", root, name, err)
			}
			targets[i] = toTarget(name, data, protocol, framed)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := []target{}
	for _, t := range targets {
		if t != nil {
			out = append(out, *t)
		}
	}
	return out, nil
}

// toTarget makes the target of child name with data; nil when name is not
// a host:port.
func toTarget(name string, data []byte, protocol string, framed bool) *target {
	host, port, err := net.SplitHostPort(name)
	if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
		return nil
	}
	t := &target{addr: name, protocol: protocol, framed: framed}
	var info peer.MemberInfo
	switch {
	case len(data) == 0:
		t.note = "empty record (an original fae?): pinged as -protocol/-framed say"
	case json.Unmarshal(data, &info) != nil || info.Impl != peer.Impl || info.Format != peer.Format:
		t.note = fmt.Sprintf("not a %s format %d record: pinged as -protocol/-framed say", peer.Impl, peer.Format)
	case info.Protocol != "binary" && info.Protocol != "compact":
		t.note = fmt.Sprintf("record with protocol %q: pinged as -protocol/-framed say", info.Protocol)
	default:
		t.protocol, t.framed = info.Protocol, info.Framed
		if info.Leaving {
			t.note = "leaving"
		}
	}
	return t
}

// waitSession waits for the first session of a new client.
func waitSession(ctx context.Context, events <-chan zk.Event) error {
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// within runs the ZooKeeper call f and gives up when ctx ends (go-zookeeper's
// calls have no deadline of their own).
func within[T any](ctx context.Context, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	res := make(chan result, 1)
	go func() {
		v, err := f()
		res <- result{v, err}
	}()
	select {
	case r := <-res:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}
