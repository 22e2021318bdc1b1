package servant

import (
	"context"

	"github.com/fae-go/fae/idl/fun/rpc"
)

// The zk_* methods pass through to the node's ZooKeeper session; they come with
// the cluster issue. Until then they answer that ZooKeeper is not available.

func (s *FunServant) zk() backend { return s.backend("zookeeper", "etcd_servers", s.opts.ZooKeeper) }

// ZkCreate creates a persistent node at path with data.
func (s *FunServant) ZkCreate(_ context.Context, c *rpc.Context, path, data string) (bool, error) {
	return false, s.unserved("zk.create", c, s.zk())
}

// ZkChildren lists the children of path.
func (s *FunServant) ZkChildren(_ context.Context, c *rpc.Context, path string) ([]string, error) {
	return nil, s.unserved("zk.children", c, s.zk())
}

// ZkDel deletes the node at path.
func (s *FunServant) ZkDel(_ context.Context, c *rpc.Context, path string) (bool, error) {
	return false, s.unserved("zk.del", c, s.zk())
}
