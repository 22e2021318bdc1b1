package servant

import (
	"context"

	"github.com/fae-go/fae/idl/fun/rpc"
)

// mysqlServant serves the mysql methods; built by initMysql when its section is present.
type mysqlServant struct{}

// initMysql builds the mysql servant when its config section is present.
func (s *FunServant) initMysql() error { return nil }

// closeMysql releases its pools.
func (s *FunServant) closeMysql() {}

func (s *FunServant) mysql() backend {
	return s.backend("mysql", "servants.mysql", s.cfg.Mysql != nil)
}

// MyBulkExec runs several my_query statements in order; served from the MySQL issue on.
func (s *FunServant) MyBulkExec(_ context.Context, c *rpc.Context, pool, table []string, hintID []int64, sql []string, argv [][]string, cacheKey []string) (int64, error) {
	return 0, s.unserved("my.bexec", c, s.mysql())
}

// MyQuery runs one statement on the server of (pool, table, hintID).
func (s *FunServant) MyQuery(_ context.Context, c *rpc.Context, pool, table string, hintID int64, sql string, argv []string, cacheKey string) (*rpc.MysqlResult_, error) {
	return nil, s.unserved("my.query", c, s.mysql())
}

// MyQueryShards runs a SELECT on every shard of pool.
func (s *FunServant) MyQueryShards(_ context.Context, c *rpc.Context, pool, table, sql string, argv []string) (*rpc.MysqlResult_, error) {
	return nil, s.unserved("my.qshards", c, s.mysql())
}

// MyMerge deep-merges a JSON object into one column of one row.
func (s *FunServant) MyMerge(_ context.Context, c *rpc.Context, pool, table string, hintID int64, where, key, column, jsonValue string) (*rpc.MysqlMergeResult_, error) {
	return nil, s.unserved("my.merge", c, s.mysql())
}

// MyEvict deletes a key from the query cache.
func (s *FunServant) MyEvict(_ context.Context, c *rpc.Context, cacheKey string) error {
	return s.unserved("my.evict", c, s.mysql())
}
