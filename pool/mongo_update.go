package pool

import (
	"context"
	"errors"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The updating operations. change is a BSON document: either only update
// operators ({$set: …, $inc: …}), applied with UpdateOne, or only plain fields,
// the whole new document (keeping _id), applied with ReplaceOne; see changeArg.

// Update applies change to one document of t matching query (empty bytes:
// any). Without upsert it reports whether a document matched; with upsert it
// inserts one when none matches and reports true.
func (c *Mongo) Update(ctx context.Context, t MongoTarget, query, change []byte, upsert bool) (bool, error) {
	return c.update(ctx, t, func() (any, error) { return queryArg(query) }, change, upsert)
}

// UpdateID is Update with the filter {_id: id} (id an int32).
func (c *Mongo) UpdateID(ctx context.Context, t MongoTarget, id int32, change []byte, upsert bool) (bool, error) {
	return c.update(ctx, t, func() (any, error) { return bson.D{{Key: "_id", Value: id}}, nil }, change, upsert)
}

// update runs an update or upsert with the filter filterArg returns.
func (c *Mongo) update(ctx context.Context, t MongoTarget, filterArg func() (any, error), change []byte, upsert bool) (bool, error) {
	op := "update"
	if upsert {
		op = "upsert"
	}
	var filter any
	var ch bson.Raw
	var replace bool
	var r *mongo.UpdateResult
	err := c.do(ctx, t, op, func() (err error) {
		if filter, err = filterArg(); err != nil {
			return err
		}
		ch, replace, err = changeArg(change)
		return err
	}, func(ctx context.Context, coll *mongo.Collection) (err error) {
		if replace {
			r, err = coll.ReplaceOne(ctx, filter, ch, options.Replace().SetUpsert(upsert))
		} else {
			r, err = coll.UpdateOne(ctx, filter, ch, options.UpdateOne().SetUpsert(upsert))
		}
		return err
	})
	if err != nil {
		return false, err
	}
	return upsert || r.MatchedCount > 0, nil
}

// FindAndModify finds one document of t matching query and, with remove,
// deletes it (change and upsert are then ignored), otherwise applies change
// to it, inserting one when none matches and upsert is set. It returns the
// document as it was before, or as it is after with returnNew (not with
// remove); the empty document when there is none (nothing matched, or an
// upsert inserted and returnNew is off).
func (c *Mongo) FindAndModify(ctx context.Context, t MongoTarget, query, change []byte, upsert, remove, returnNew bool) ([]byte, error) {
	var run func(context.Context, *mongo.Collection) *mongo.SingleResult
	var doc []byte
	err := c.do(ctx, t, "find_and_modify", func() error {
		q, err := queryArg(query)
		if err != nil {
			return err
		}
		if remove {
			run = func(ctx context.Context, coll *mongo.Collection) *mongo.SingleResult {
				return coll.FindOneAndDelete(ctx, q)
			}
			return nil
		}
		run, err = modifier(q, change, upsert, returnNew)
		return err
	}, func(ctx context.Context, coll *mongo.Collection) (err error) {
		doc, err = c.oneDoc(run(ctx, coll))
		return err
	})
	if errors.Is(err, KindMiss) {
		return MongoEmptyDocument(), nil
	}
	return doc, err
}

// modifier is the FindOneAndUpdate or FindOneAndReplace of FindAndModify.
func modifier(q any, change []byte, upsert, returnNew bool) (func(context.Context, *mongo.Collection) *mongo.SingleResult, error) {
	ch, replace, err := changeArg(change)
	if err != nil {
		return nil, err
	}
	ret := options.Before
	if returnNew {
		ret = options.After
	}
	if replace {
		o := options.FindOneAndReplace().SetUpsert(upsert).SetReturnDocument(ret)
		return func(ctx context.Context, coll *mongo.Collection) *mongo.SingleResult {
			return coll.FindOneAndReplace(ctx, q, ch, o)
		}, nil
	}
	o := options.FindOneAndUpdate().SetUpsert(upsert).SetReturnDocument(ret)
	return func(ctx context.Context, coll *mongo.Collection) *mongo.SingleResult {
		return coll.FindOneAndUpdate(ctx, q, ch, o)
	}, nil
}
