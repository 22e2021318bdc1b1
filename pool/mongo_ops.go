package pool

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The operations of a MongoCluster. Documents go in and come out as BSON
// bytes. Every error wraps one of the cluster's Err* values and names the
// pool, or the server once one is chosen; a malformed document argument is an
// ErrMongoBadArgument naming the argument and is refused before any server is
// contacted. Each operation is bounded by io_timeout and goes through the
// breaker of its server.

// FindOne returns the first document of t matching query (empty bytes: any),
// projected by fields (empty bytes or {}: all fields). No document: an
// ErrMongoNotFound error.
func (c *MongoCluster) FindOne(ctx context.Context, t MongoTarget, query, fields []byte) ([]byte, error) {
	q, p, err := c.queryFieldsArgs(query, fields)
	if err != nil {
		return nil, err
	}
	o := options.FindOne()
	if p != nil {
		o.SetProjection(p)
	}
	return c.findOne(ctx, t, "find_one", q, o)
}

// FindID returns the document of t whose _id is id (see idArg for its two
// forms), or the empty document when there is none.
func (c *MongoCluster) FindID(ctx context.Context, t MongoTarget, id []byte) ([]byte, error) {
	f, err := c.idArg(id)
	if err != nil {
		return nil, err
	}
	doc, err := c.findOne(ctx, t, "find_id", f, options.FindOne())
	if errors.Is(err, ErrMongoNotFound) {
		return MongoEmptyDocument(), nil
	}
	return doc, err
}

func (c *MongoCluster) findOne(ctx context.Context, t MongoTarget, op string, filter any, o *options.FindOneOptionsBuilder) ([]byte, error) {
	var doc bson.Raw
	err := c.do(ctx, t, op, func(ctx context.Context, coll *mongo.Collection) (err error) {
		doc, err = coll.FindOne(ctx, filter, o).Raw()
		return err
	})
	if errors.Is(err, mongo.ErrNoDocuments) {
		c.Stats.NotFound.Add(1)
		return nil, fmt.Errorf("mongodb: %s in pool %q collection %q: %w", op, t.Pool, t.Table, ErrMongoNotFound)
	}
	return slices.Clone(doc), err
}

// FindAll returns the documents of t matching query, projected by fields,
// sorted by orderBy ("-key" descending, in order), skipping skip and at most
// limit documents (each only when > 0). None: an empty list.
func (c *MongoCluster) FindAll(ctx context.Context, t MongoTarget, query, fields []byte, limit, skip int64, orderBy []string) ([][]byte, error) {
	q, p, err := c.queryFieldsArgs(query, fields)
	if err != nil {
		return nil, err
	}
	sort, err := c.sortArg(orderBy)
	if err != nil {
		return nil, err
	}
	o := options.Find()
	if p != nil {
		o.SetProjection(p)
	}
	if sort != nil {
		o.SetSort(sort)
	}
	if limit > 0 {
		o.SetLimit(limit)
	}
	if skip > 0 {
		o.SetSkip(skip)
	}
	docs := [][]byte{}
	err = c.do(ctx, t, "find_all", func(ctx context.Context, coll *mongo.Collection) error {
		cur, err := coll.Find(ctx, q, o)
		if err != nil {
			return err
		}
		defer cur.Close(ctx)
		for cur.Next(ctx) {
			docs = append(docs, slices.Clone(cur.Current))
		}
		return cur.Err()
	})
	return docs, err
}

// Count returns the number of documents of t matching query (empty bytes: all).
func (c *MongoCluster) Count(ctx context.Context, t MongoTarget, query []byte) (int64, error) {
	q, err := c.queryArg(query)
	if err != nil {
		return 0, err
	}
	var n int64
	err = c.do(ctx, t, "count", func(ctx context.Context, coll *mongo.Collection) (err error) {
		n, err = coll.CountDocuments(ctx, q)
		return err
	})
	return n, err
}

// Insert inserts docs into t in order (InsertOne for one, InsertMany for
// more); many names the arguments "docs[i]" instead of "doc". An empty docs is
// an ErrMongoBadArgument. A failure may leave the documents before it inserted.
func (c *MongoCluster) Insert(ctx context.Context, t MongoTarget, docs [][]byte, many bool) error {
	if len(docs) == 0 {
		return c.badArg(nil, "docs is empty: nothing to insert")
	}
	raws := make([]bson.Raw, len(docs))
	for i, b := range docs {
		name := "doc"
		if many {
			name = fmt.Sprintf("docs[%d]", i)
		}
		d, err := c.docArg(name, b)
		if err != nil {
			return err
		}
		raws[i] = d
	}
	return c.do(ctx, t, "insert", func(ctx context.Context, coll *mongo.Collection) (err error) {
		if len(raws) == 1 {
			_, err = coll.InsertOne(ctx, raws[0])
		} else {
			_, err = coll.InsertMany(ctx, raws)
		}
		return err
	})
}

// Delete deletes one document of t matching query; false when none matched.
func (c *MongoCluster) Delete(ctx context.Context, t MongoTarget, query []byte) (bool, error) {
	q, err := c.queryArg(query)
	if err != nil {
		return false, err
	}
	var n int64
	err = c.do(ctx, t, "delete", func(ctx context.Context, coll *mongo.Collection) error {
		r, err := coll.DeleteOne(ctx, q)
		if err == nil {
			n = r.DeletedCount
		}
		return err
	})
	return n > 0, err
}

// queryFieldsArgs checks the query and fields arguments of a find.
func (c *MongoCluster) queryFieldsArgs(query, fields []byte) (q any, p bson.Raw, err error) {
	if q, err = c.queryArg(query); err != nil {
		return nil, nil, err
	}
	if p, err = c.fieldsArg(fields); err != nil {
		return nil, nil, err
	}
	return q, p, nil
}
