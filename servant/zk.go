package servant

import (
	"context"

	"github.com/fae-go/fae/idl/fun/rpc"
)

// The zk_* methods pass through to the node's ZooKeeper session; they come with
// the cluster issue. Until then they answer that ZooKeeper is not available:
// "not configured" without etcd_servers, "not implemented" with it.

func (s *FunServant) zkErr() error {
	if !s.opts.ZooKeeper {
		return &NotConfiguredError{Name: "zookeeper", Key: "etcd_servers"}
	}
	return &NotBuiltError{Name: "zookeeper", Key: "etcd_servers"}
}

// ZkCreate creates a persistent node at path with data.
func (s *FunServant) ZkCreate(_ context.Context, c *rpc.Context, path, data string) (bool, error) {
	return run(s, "zk.create", c, true, func(*generation) (bool, error) { return false, s.zkErr() })
}

// ZkChildren lists the children of path.
func (s *FunServant) ZkChildren(_ context.Context, c *rpc.Context, path string) ([]string, error) {
	return run(s, "zk.children", c, true, func(*generation) ([]string, error) { return nil, s.zkErr() })
}

// ZkDel deletes the node at path.
func (s *FunServant) ZkDel(_ context.Context, c *rpc.Context, path string) (bool, error) {
	return run(s, "zk.del", c, true, func(*generation) (bool, error) { return false, s.zkErr() })
}
