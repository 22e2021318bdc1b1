package pool

import (
	"context"
	"errors"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The operations of a Mongo cluster. Documents go in and come out as BSON
// bytes. Every error is a *Error (see Mongo for the kinds); a malformed
// document argument is a KindBadArgument error naming the argument and the
// path of the bad element, refused before any server is asked. Each operation
// is bounded by io_timeout, goes through the breaker of its server and is
// reported once to the observer. The documents a reply brings back are
// bounded by Limits.MaxReplyBytes (KindTooLarge past it).

// FindOne returns the first document of t matching query (empty bytes: any),
// projected by fields (empty bytes or {}: all fields). No document: KindMiss.
func (c *Mongo) FindOne(ctx context.Context, t MongoTarget, query, fields []byte) ([]byte, error) {
	var q any
	var p bson.Raw
	var doc []byte
	err := c.do(ctx, t, "find_one", func() (err error) {
		q, p, err = queryFieldsArgs(query, fields)
		return err
	}, func(ctx context.Context, coll *mongo.Collection) (err error) {
		o := options.FindOne()
		if p != nil {
			o.SetProjection(p)
		}
		doc, err = c.oneDoc(coll.FindOne(ctx, q, o))
		return err
	})
	return doc, err
}

// FindID returns the document of t whose _id is id (see idArg for its two
// forms), or the empty document when there is none.
func (c *Mongo) FindID(ctx context.Context, t MongoTarget, id []byte) ([]byte, error) {
	var f any
	var doc []byte
	err := c.do(ctx, t, "find_id", func() (err error) {
		f, err = idArg(id)
		return err
	}, func(ctx context.Context, coll *mongo.Collection) (err error) {
		doc, err = c.oneDoc(coll.FindOne(ctx, f))
		return err
	})
	if errors.Is(err, KindMiss) {
		return MongoEmptyDocument(), nil
	}
	return doc, err
}

// oneDoc is the document of r, copied; an *mgTooLargeError when it is over
// max_reply_bytes.
func (c *Mongo) oneDoc(r *mongo.SingleResult) ([]byte, error) {
	raw, err := r.Raw()
	if err != nil {
		return nil, err
	}
	budget := mgReplyBudget{limit: c.limits.MaxReplyBytes}
	if err := budget.add(len(raw)); err != nil {
		return nil, err
	}
	return slices.Clone(raw), nil
}

// FindAll returns the documents of t matching query, projected by fields,
// sorted by orderBy ("-key" descending, in order), skipping skip and at most
// limit documents (each only when > 0). None: an empty list. Once the
// documents read are over max_reply_bytes it stops, closes the cursor and
// fails with KindTooLarge (an *mgTooLargeError cause naming the documents read, their bytes and the limit).
func (c *Mongo) FindAll(ctx context.Context, t MongoTarget, query, fields []byte, limit, skip int64, orderBy []string) ([][]byte, error) {
	var q any
	var o *options.FindOptionsBuilder
	var docs [][]byte
	err := c.do(ctx, t, "find_all", func() (err error) {
		q, o, err = findArgs(query, fields, limit, skip, orderBy)
		return err
	}, func(ctx context.Context, coll *mongo.Collection) error {
		cur, err := coll.Find(ctx, q, o)
		if err != nil {
			return err
		}
		defer cur.Close(ctx)
		docs, err = c.readAll(ctx, cur)
		return err
	})
	return docs, err
}

// readAll copies the documents of cur, within max_reply_bytes. Past the first
// batch (the server's: 101 documents, at most 16 MiB on MongoDB) it asks for
// batches of about what still fits, so the driver never holds much more than
// the limit either.
func (c *Mongo) readAll(ctx context.Context, cur *mongo.Cursor) ([][]byte, error) {
	docs := [][]byte{}
	budget := mgReplyBudget{limit: c.limits.MaxReplyBytes}
	for cur.Next(ctx) {
		if err := budget.add(len(cur.Current)); err != nil {
			return nil, err
		}
		docs = append(docs, slices.Clone(cur.Current))
		if budget.limit > 0 && cur.RemainingBatchLength() == 0 {
			cur.SetBatchSize(budget.nextBatch())
		}
	}
	if err := cur.Err(); err != nil {
		return nil, err
	}
	return docs, nil
}

// findArgs checks the arguments of FindAll and makes its options.
func findArgs(query, fields []byte, limit, skip int64, orderBy []string) (any, *options.FindOptionsBuilder, error) {
	q, p, err := queryFieldsArgs(query, fields)
	if err != nil {
		return nil, nil, err
	}
	sort, err := sortArg(orderBy)
	if err != nil {
		return nil, nil, err
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
	return q, o, nil
}

// Count returns the number of documents of t matching query (empty bytes: all).
func (c *Mongo) Count(ctx context.Context, t MongoTarget, query []byte) (int64, error) {
	var q any
	var n int64
	err := c.do(ctx, t, "count", func() (err error) {
		q, err = queryArg(query)
		return err
	}, func(ctx context.Context, coll *mongo.Collection) (err error) {
		n, err = coll.CountDocuments(ctx, q)
		return err
	})
	return n, err
}

// Insert inserts docs into t in order (InsertOne for one, InsertMany for
// more); many names the arguments "docs[i]" instead of "doc". An empty docs is
// a bad argument. A failure may leave the documents before it inserted.
func (c *Mongo) Insert(ctx context.Context, t MongoTarget, docs [][]byte, many bool) error {
	var raws []bson.Raw
	return c.do(ctx, t, "insert", func() (err error) {
		raws, err = docsArg(docs, many)
		return err
	}, func(ctx context.Context, coll *mongo.Collection) (err error) {
		if len(raws) == 1 {
			_, err = coll.InsertOne(ctx, raws[0])
		} else {
			_, err = coll.InsertMany(ctx, raws)
		}
		return err
	})
}

// Delete deletes one document of t matching query; false when none matched.
func (c *Mongo) Delete(ctx context.Context, t MongoTarget, query []byte) (bool, error) {
	var q any
	var n int64
	err := c.do(ctx, t, "delete", func() (err error) {
		q, err = queryArg(query)
		return err
	}, func(ctx context.Context, coll *mongo.Collection) error {
		r, err := coll.DeleteOne(ctx, q)
		if err == nil {
			n = r.DeletedCount
		}
		return err
	})
	return n > 0, err
}
