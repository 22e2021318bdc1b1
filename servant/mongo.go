package servant

import (
	"context"

	"github.com/fae-go/fae/idl/fun/rpc"
)

// mongoServant serves the mongo methods; built by initMongo when its section is present.
type mongoServant struct{}

// initMongo builds the mongo servant when its config section is present.
func (s *FunServant) initMongo() error { return nil }

// closeMongo releases its pools.
func (s *FunServant) closeMongo() {}

func (s *FunServant) mongo() backend {
	return s.backend("mongodb", "servants.mongodb", s.cfg.Mongodb != nil)
}

// MgFindOne finds one document; served from the MongoDB issue on.
func (s *FunServant) MgFindOne(_ context.Context, c *rpc.Context, pool, table string, shardID int32, query, fields []byte) ([]byte, error) {
	return nil, s.unserved("mg.findOne", c, s.mongo())
}

// MgFindAll finds documents.
func (s *FunServant) MgFindAll(_ context.Context, c *rpc.Context, pool, table string, shardID int32, query, fields []byte, limit, skip int32, orderBy []string) ([][]byte, error) {
	return nil, s.unserved("mg.findAll", c, s.mongo())
}

// MgFindID finds a document by _id.
func (s *FunServant) MgFindID(_ context.Context, c *rpc.Context, pool, table string, shardID int32, id []byte) ([]byte, error) {
	return nil, s.unserved("mg.findId", c, s.mongo())
}

// MgCount counts documents.
func (s *FunServant) MgCount(_ context.Context, c *rpc.Context, pool, table string, shardID int32, query []byte) (int32, error) {
	return 0, s.unserved("mg.count", c, s.mongo())
}

// MgUpdate updates one document.
func (s *FunServant) MgUpdate(_ context.Context, c *rpc.Context, pool, table string, shardID int32, query, change []byte) (bool, error) {
	return false, s.unserved("mg.update", c, s.mongo())
}

// MgUpdateID updates a document by _id.
func (s *FunServant) MgUpdateID(_ context.Context, c *rpc.Context, pool, table string, shardID int32, id int32, change []byte) (bool, error) {
	return false, s.unserved("mg.updateId", c, s.mongo())
}

// MgUpsert updates or inserts one document.
func (s *FunServant) MgUpsert(_ context.Context, c *rpc.Context, pool, table string, shardID int32, query, change []byte) (bool, error) {
	return false, s.unserved("mg.upsert", c, s.mongo())
}

// MgUpsertID updates or inserts a document by _id.
func (s *FunServant) MgUpsertID(_ context.Context, c *rpc.Context, pool, table string, shardID int32, id int32, change []byte) (bool, error) {
	return false, s.unserved("mg.upsertId", c, s.mongo())
}

// MgInsert inserts a document.
func (s *FunServant) MgInsert(_ context.Context, c *rpc.Context, pool, table string, shardID int32, doc []byte) (bool, error) {
	return false, s.unserved("mg.insert", c, s.mongo())
}

// MgInserts inserts documents.
func (s *FunServant) MgInserts(_ context.Context, c *rpc.Context, pool, table string, shardID int32, docs [][]byte) (bool, error) {
	return false, s.unserved("mg.inserts", c, s.mongo())
}

// MgDelete deletes one document.
func (s *FunServant) MgDelete(_ context.Context, c *rpc.Context, pool, table string, shardID int32, query []byte) (bool, error) {
	return false, s.unserved("mg.del", c, s.mongo())
}

// MgFindAndModify finds and updates or removes one document.
func (s *FunServant) MgFindAndModify(_ context.Context, c *rpc.Context, pool, table string, shardID int32, query, change []byte, upsert, remove, returnNew bool) ([]byte, error) {
	return nil, s.unserved("mg.findAndModify", c, s.mongo())
}
