package peer

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/go-zookeeper/zk"
)

// The zk_* passthrough: plain ZooKeeper operations on the node's session,
// for clients. Each is bounded by the session timeout and ctx, and refuses
// the registration root and everything under it (a client could otherwise
// delete a node's registration, as with the original).

// ErrReservedPath is wrapped by the error of a zk_* operation on the
// registration root (peer.root) or below it.
var ErrReservedPath = errors.New("path is the cluster's registration root or under it")

// Create creates a persistent znode at path with data (world-all ACL), as
// zk_create. Its parent must exist. Errors name the path and ZooKeeper's
// reason (zk.ErrNodeExists, zk.ErrNoNode for a missing parent, …), or wrap
// ErrReservedPath, context.DeadlineExceeded or ErrClosed.
func (r *Registry) Create(ctx context.Context, path string, data []byte) error {
	if err := r.guard("create", path); err != nil {
		return err
	}
	_, err := call(ctx, r.cfg.SessionTimeout, func() (string, error) {
		return r.client().Create(path, data, 0, zk.WorldACL(zk.PermAll))
	})
	return wrap("create", path, err)
}

// Children lists the names of path's children, sorted, as zk_children.
// Errors as Create (zk.ErrNoNode when path does not exist).
func (r *Registry) Children(ctx context.Context, path string) ([]string, error) {
	if err := r.guard("children", path); err != nil {
		return nil, err
	}
	names, err := call(ctx, r.cfg.SessionTimeout, func() ([]string, error) {
		names, _, err := r.client().Children(path)
		return names, err
	})
	if err != nil {
		return nil, wrap("children", path, err)
	}
	sort.Strings(names)
	return names, nil
}

// Delete deletes the znode at path whatever its version, as zk_del. Errors
// as Create (zk.ErrNoNode, zk.ErrNotEmpty when it has children).
func (r *Registry) Delete(ctx context.Context, path string) error {
	if err := r.guard("delete", path); err != nil {
		return err
	}
	_, err := call(ctx, r.cfg.SessionTimeout, func() (struct{}, error) {
		return struct{}{}, r.client().Delete(path, -1)
	})
	return wrap("delete", path, err)
}

// guard refuses a closed registry, a malformed path and the registration root.
func (r *Registry) guard(op, path string) error {
	if r.ctx.Err() != nil {
		return wrap(op, path, ErrClosed)
	}
	if err := validatePath(path); err != nil {
		return fmt.Errorf("zookeeper %s: %v", op, err)
	}
	if underRoot(r.cfg.Root, path) {
		return fmt.Errorf("zookeeper %s %s: refused: %w (%s, peer.root); zk_* may not touch it",
			op, path, ErrReservedPath, r.cfg.Root)
	}
	return nil
}
