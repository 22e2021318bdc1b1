package servant

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/pool"
)

// The mg_* methods: MongoDB through pool.Mongo (servants.mongodb).
//
// Documents travel as raw BSON both ways (PHP bson_encode /
// MongoDB\BSON\fromPHP): query, fields, change, doc, docs[i] and a document id
// must each be exactly one valid BSON document, checked at every level of
// nesting (at most 100), else the call fails with "<argument> is not a valid
// BSON document: …", naming the path of the bad element ("query.a.b: …"),
// before any server is contacted. Empty query bytes match every document;
// empty fields bytes or the empty document {} mean no projection. A returned
// document is BSON bytes.
//
// change (mg_update, mg_update_id, mg_upsert, mg_upsert_id,
// mg_find_and_modify) is either an update document whose keys are all
// operators ({$set: …, $inc: …}) or a replacement whose keys are all plain
// fields: the whole new document, as the original (mgo) did with such a
// change. A change mixing both, or {}, is refused as a bad argument.
//
// A pool switched to read_only or degraded (modes.go) answers TMongoReadOnly
// or TMongoDegrade, declared in the IDL.
//
// Errors (TApplicationException INTERNAL_ERROR) are *pool.Error texts naming
// the operation, the pool and, once one is chosen, the server; their kind
// (see pool.Mongo) says what happened: unknown pool, bad argument, server
// failure (unreachable within connect_timeout, network error, connections
// dropped after another call failed), busy, timeout (io_timeout), circuit
// open, refused (duplicate key, authentication failed, refused by the
// server), too large (max_reply_bytes), closed. No error is answered as
// false: false only means "matched nothing".

var errMongoOff = &NotConfiguredError{Name: "mongodb", Key: "servants.mongodb"}

// mgCall is what the pool's mode (modes.go) reads of a mongo call: where it
// goes, its pool.Op name and whether it writes.
type mgCall struct {
	t     pool.MongoTarget
	op    string
	write bool
}

// mg runs the call pipeline of a backend call for the mongo method name: body
// gets the watched ctx and the cluster, or the call fails with "mongodb is
// not configured (servants.mongodb)", or with TMongoDegrade or TMongoReadOnly
// when the mode of mc's server entry refuses it.
func mg[T any](s *FunServant, name string, mc mgCall, ctx context.Context, c *rpc.Context, args func() string, body func(context.Context, *pool.Mongo) (T, error)) (T, error) {
	return runBackend(s, name, ctx, c, args, func(ctx context.Context, g *generation) (T, error) {
		var zero T
		if g.mg == nil {
			return zero, errMongoOff
		}
		if err := s.mongoRefusal(g, g.mg, mc.t, mc.op, mc.write); err != nil {
			return zero, err
		}
		return body(ctx, g.mg)
	})
}

// MgFindOne returns the first document matching query, projected by fields.
// Throws TMongoNotFound ("not found") when none matches.
func (s *FunServant) MgFindOne(ctx context.Context, c *rpc.Context, poolName, table string, shardID int32, query, fields []byte) ([]byte, error) {
	return mg(s, "mg.findOne", mgCall{pool.MongoTarget{Pool: poolName, Table: table, ShardID: shardID}, "find_one", false}, ctx, c, func() string {
		return targs("pool", poolName, "table", table, "shard", shardID, "query", bsonArg(query), "fields", bsonArg(fields))
	}, func(ctx context.Context, m *pool.Mongo) ([]byte, error) {
		doc, err := m.FindOne(ctx, pool.MongoTarget{Pool: poolName, Table: table, ShardID: shardID}, query, fields)
		if errors.Is(err, pool.KindMiss) {
			msg := "not found"
			return nil, &rpc.TMongoNotFound{Message: &msg}
		}
		return doc, err
	})
}

// MgFindAll returns the documents matching query, projected by fields, sorted
// by orderBy ("-key" descending, "key" or "+key" ascending, in order), skipping
// skip and at most limit of them (each only when > 0).
func (s *FunServant) MgFindAll(ctx context.Context, c *rpc.Context, poolName, table string, shardID int32, query, fields []byte, limit, skip int32, orderBy []string) ([][]byte, error) {
	return mg(s, "mg.findAll", mgCall{pool.MongoTarget{Pool: poolName, Table: table, ShardID: shardID}, "find_all", false}, ctx, c, func() string {
		return targs("pool", poolName, "table", table, "shard", shardID, "query", bsonArg(query), "fields", bsonArg(fields), "limit", limit, "skip", skip, "orderBy", orderBy)
	}, func(ctx context.Context, m *pool.Mongo) ([][]byte, error) {
		return m.FindAll(ctx, pool.MongoTarget{Pool: poolName, Table: table, ShardID: shardID}, query, fields, int64(limit), int64(skip), orderBy)
	})
}

// MgFindID returns the document whose _id is id, or the empty document {}
// when there is none. id is either a BSON document with the single key _id,
// {_id: <any BSON value>} (PHP: bson_encode(['_id' => $id])), or the 12 raw
// bytes of an ObjectId; anything else is a bad argument.
func (s *FunServant) MgFindID(ctx context.Context, c *rpc.Context, poolName, table string, shardID int32, id []byte) ([]byte, error) {
	return mg(s, "mg.findId", mgCall{pool.MongoTarget{Pool: poolName, Table: table, ShardID: shardID}, "find_id", false}, ctx, c, func() string { return targs("pool", poolName, "table", table, "shard", shardID, "id", bsonArg(id)) }, func(ctx context.Context, m *pool.Mongo) ([]byte, error) {
		return m.FindID(ctx, pool.MongoTarget{Pool: poolName, Table: table, ShardID: shardID}, id)
	})
}

// MgCount returns the number of documents matching query (empty: all). A
// count beyond the IDL's i32 is an error.
func (s *FunServant) MgCount(ctx context.Context, c *rpc.Context, poolName, table string, shardID int32, query []byte) (int32, error) {
	return mg(s, "mg.count", mgCall{pool.MongoTarget{Pool: poolName, Table: table, ShardID: shardID}, "count", false}, ctx, c, func() string {
		return targs("pool", poolName, "table", table, "shard", shardID, "query", bsonArg(query))
	}, func(ctx context.Context, m *pool.Mongo) (int32, error) {
		n, err := m.Count(ctx, pool.MongoTarget{Pool: poolName, Table: table, ShardID: shardID}, query)
		if err == nil && n > math.MaxInt32 {
			return 0, fmt.Errorf("mongodb: count of pool %q collection %q is %d, beyond i32", poolName, table, n)
		}
		return int32(n), err
	})
}

// MgUpdate applies change to one document matching query; false when none matched.
func (s *FunServant) MgUpdate(ctx context.Context, c *rpc.Context, poolName, table string, shardID int32, query, change []byte) (bool, error) {
	return mg(s, "mg.update", mgCall{pool.MongoTarget{Pool: poolName, Table: table, ShardID: shardID}, "update", true}, ctx, c, func() string {
		return targs("pool", poolName, "table", table, "shard", shardID, "query", bsonArg(query), "change", bsonArg(change))
	}, func(ctx context.Context, m *pool.Mongo) (bool, error) {
		return m.Update(ctx, pool.MongoTarget{Pool: poolName, Table: table, ShardID: shardID}, query, change, false)
	})
}

// MgUpdateID applies change to the document whose _id is the integer id; false when there is none.
func (s *FunServant) MgUpdateID(ctx context.Context, c *rpc.Context, poolName, table string, shardID int32, id int32, change []byte) (bool, error) {
	return mg(s, "mg.updateId", mgCall{pool.MongoTarget{Pool: poolName, Table: table, ShardID: shardID}, "update", true}, ctx, c, func() string {
		return targs("pool", poolName, "table", table, "shard", shardID, "id", id, "change", bsonArg(change))
	}, func(ctx context.Context, m *pool.Mongo) (bool, error) {
		return m.UpdateID(ctx, pool.MongoTarget{Pool: poolName, Table: table, ShardID: shardID}, id, change, false)
	})
}

// MgUpsert applies change to one document matching query, inserting one when
// none matches; true on success.
func (s *FunServant) MgUpsert(ctx context.Context, c *rpc.Context, poolName, table string, shardID int32, query, change []byte) (bool, error) {
	return mg(s, "mg.upsert", mgCall{pool.MongoTarget{Pool: poolName, Table: table, ShardID: shardID}, "upsert", true}, ctx, c, func() string {
		return targs("pool", poolName, "table", table, "shard", shardID, "query", bsonArg(query), "change", bsonArg(change))
	}, func(ctx context.Context, m *pool.Mongo) (bool, error) {
		return m.Update(ctx, pool.MongoTarget{Pool: poolName, Table: table, ShardID: shardID}, query, change, true)
	})
}

// MgUpsertID applies change to the document whose _id is the integer id,
// inserting it when absent; true on success.
func (s *FunServant) MgUpsertID(ctx context.Context, c *rpc.Context, poolName, table string, shardID int32, id int32, change []byte) (bool, error) {
	return mg(s, "mg.upsertId", mgCall{pool.MongoTarget{Pool: poolName, Table: table, ShardID: shardID}, "upsert", true}, ctx, c, func() string {
		return targs("pool", poolName, "table", table, "shard", shardID, "id", id, "change", bsonArg(change))
	}, func(ctx context.Context, m *pool.Mongo) (bool, error) {
		return m.UpdateID(ctx, pool.MongoTarget{Pool: poolName, Table: table, ShardID: shardID}, id, change, true)
	})
}

// MgInsert inserts doc (an _id is added when it has none); true on success. A
// duplicate _id is an error.
func (s *FunServant) MgInsert(ctx context.Context, c *rpc.Context, poolName, table string, shardID int32, doc []byte) (bool, error) {
	return mg(s, "mg.insert", mgCall{pool.MongoTarget{Pool: poolName, Table: table, ShardID: shardID}, "insert", true}, ctx, c, func() string { return targs("pool", poolName, "table", table, "shard", shardID, "doc", bsonArg(doc)) }, func(ctx context.Context, m *pool.Mongo) (bool, error) {
		err := m.Insert(ctx, pool.MongoTarget{Pool: poolName, Table: table, ShardID: shardID}, [][]byte{doc}, false)
		return err == nil, err
	})
}

// MgInserts inserts docs in order; true on success. An empty docs is an error;
// on a failure the documents before the failing one stay inserted.
func (s *FunServant) MgInserts(ctx context.Context, c *rpc.Context, poolName, table string, shardID int32, docs [][]byte) (bool, error) {
	return mg(s, "mg.inserts", mgCall{pool.MongoTarget{Pool: poolName, Table: table, ShardID: shardID}, "insert", true}, ctx, c, func() string { return targs("pool", poolName, "table", table, "shard", shardID, "docs", len(docs)) }, func(ctx context.Context, m *pool.Mongo) (bool, error) {
		err := m.Insert(ctx, pool.MongoTarget{Pool: poolName, Table: table, ShardID: shardID}, docs, true)
		return err == nil, err
	})
}

// MgDelete deletes one document matching query; false when none matched.
func (s *FunServant) MgDelete(ctx context.Context, c *rpc.Context, poolName, table string, shardID int32, query []byte) (bool, error) {
	return mg(s, "mg.del", mgCall{pool.MongoTarget{Pool: poolName, Table: table, ShardID: shardID}, "delete", true}, ctx, c, func() string {
		return targs("pool", poolName, "table", table, "shard", shardID, "query", bsonArg(query))
	}, func(ctx context.Context, m *pool.Mongo) (bool, error) {
		return m.Delete(ctx, pool.MongoTarget{Pool: poolName, Table: table, ShardID: shardID}, query)
	})
}

// MgFindAndModify finds one document matching query and deletes it (remove;
// change and upsert ignored) or applies change to it (inserting one when none
// matches and upsert is set). It returns the document before the change, or
// after it with returnNew (not with remove); the empty document {} when there
// is none.
func (s *FunServant) MgFindAndModify(ctx context.Context, c *rpc.Context, poolName, table string, shardID int32, query, change []byte, upsert, remove, returnNew bool) ([]byte, error) {
	return mg(s, "mg.findAndModify", mgCall{pool.MongoTarget{Pool: poolName, Table: table, ShardID: shardID}, "find_and_modify", true}, ctx, c, func() string {
		return targs("pool", poolName, "table", table, "shard", shardID, "query", bsonArg(query), "change", bsonArg(change), "upsert", upsert, "remove", remove, "returnNew", returnNew)
	}, func(ctx context.Context, m *pool.Mongo) ([]byte, error) {
		return m.FindAndModify(ctx, pool.MongoTarget{Pool: poolName, Table: table, ShardID: shardID}, query, change, upsert, remove, returnNew)
	})
}
