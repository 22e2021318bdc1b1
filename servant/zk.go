package servant

import (
	"context"

	"github.com/fae-go/fae/idl/fun/rpc"
)

var errZkOff = &NotConfiguredError{Name: "zookeeper", Key: "etcd_servers"}

// ZkCreate creates a persistent node at path with data, on the node's
// ZooKeeper session; true on success. Errors name the path and ZooKeeper's
// reason; paths under the registration root (peer.root) are refused.
func (s *FunServant) ZkCreate(ctx context.Context, c *rpc.Context, path, data string) (bool, error) {
	return runBackend(s, "zk.create", ctx, c, func() string { return targs("path", path, "data", data) }, func(ctx context.Context, _ *generation) (bool, error) {
		if s.opts.ZK == nil {
			return false, errZkOff
		}
		err := s.opts.ZK.Create(ctx, path, []byte(data))
		return err == nil, err
	})
}

// ZkChildren lists the children of path, sorted.
func (s *FunServant) ZkChildren(ctx context.Context, c *rpc.Context, path string) ([]string, error) {
	return runBackend(s, "zk.children", ctx, c, func() string { return targs("path", path) }, func(ctx context.Context, _ *generation) ([]string, error) {
		if s.opts.ZK == nil {
			return nil, errZkOff
		}
		return s.opts.ZK.Children(ctx, path)
	})
}

// ZkDel deletes the node at path, whatever its version; true on success.
func (s *FunServant) ZkDel(ctx context.Context, c *rpc.Context, path string) (bool, error) {
	return runBackend(s, "zk.del", ctx, c, func() string { return targs("path", path) }, func(ctx context.Context, _ *generation) (bool, error) {
		if s.opts.ZK == nil {
			return false, errZkOff
		}
		err := s.opts.ZK.Delete(ctx, path)
		return err == nil, err
	})
}
