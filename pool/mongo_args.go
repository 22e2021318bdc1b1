package pool

import (
	"encoding/binary"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// MongoEmptyDocument returns the empty BSON document {} (5 bytes), the answer
// of a find that matched nothing where the IDL says "an empty document".
func MongoEmptyDocument() []byte { return []byte{5, 0, 0, 0, 0} }

// badArgError is an ErrMongoBadArgument whose text is only its own message,
// e.g. "mongodb: query is not a valid BSON document: …".
type badArgError struct {
	msg string
	err error
}

func (e *badArgError) Error() string        { return e.msg }
func (e *badArgError) Unwrap() error        { return e.err }
func (e *badArgError) Is(target error) bool { return target == ErrMongoBadArgument }

// badArg counts and returns an ErrMongoBadArgument with the text "mongodb: " + fmt.Sprintf(format, args…).
func (c *MongoCluster) badArg(err error, format string, args ...any) error {
	c.Stats.BadArgument.Add(1)
	msg := "mongodb: " + fmt.Sprintf(format, args...)
	if err != nil {
		msg += ": " + err.Error()
	}
	return &badArgError{msg: msg, err: err}
}

// docArg checks that b is exactly one valid BSON document; name is the
// argument's name for the message ("query", "docs[2]", …).
func (c *MongoCluster) docArg(name string, b []byte) (bson.Raw, error) {
	if err := bson.Raw(b).Validate(); err != nil {
		return nil, c.badArg(err, "%s is not a valid BSON document", name)
	}
	if n := int(binary.LittleEndian.Uint32(b)); n != len(b) {
		return nil, c.badArg(nil, "%s is not a valid BSON document: %d bytes after its end", name, len(b)-n)
	}
	return bson.Raw(b), nil
}

// queryArg is a filter: empty bytes match every document.
func (c *MongoCluster) queryArg(b []byte) (any, error) {
	if len(b) == 0 {
		return bson.D{}, nil
	}
	return c.docArg("query", b)
}

// fieldsArg is a projection; nil (none) for empty bytes or the empty document.
func (c *MongoCluster) fieldsArg(b []byte) (bson.Raw, error) {
	if len(b) == 0 {
		return nil, nil
	}
	d, err := c.docArg("fields", b)
	if err != nil || len(d) == 5 {
		return nil, err
	}
	return d, nil
}

// changeArg is the change of an update: replace is false when every top-level
// key is an update operator ($set, $inc, …) and true when none is, in which
// case the change is the whole new document (what the original's mgo
// Update/Upsert did with such a change). A change mixing both, or the empty
// document, is refused: the server would reject the first, and the second
// would wipe the document.
func (c *MongoCluster) changeArg(b []byte) (doc bson.Raw, replace bool, err error) {
	if doc, err = c.docArg("change", b); err != nil {
		return nil, false, err
	}
	elems, err := doc.Elements()
	if err != nil {
		return nil, false, c.badArg(err, "change is not a valid BSON document")
	}
	ops := 0
	for _, e := range elems {
		if strings.HasPrefix(e.Key(), "$") {
			ops++
		}
	}
	switch {
	case len(elems) == 0:
		return nil, false, c.badArg(nil, "change is an empty document (it would replace the document with {})")
	case ops != 0 && ops != len(elems):
		return nil, false, c.badArg(nil, "change mixes update operators ($…) and plain fields")
	}
	return doc, ops == 0, nil
}

// idArg is the filter of find_id: id is either a BSON document whose only key
// is _id ({_id: <any value>}, e.g. PHP bson_encode(['_id' => $id])), used as
// the filter, or the 12 raw bytes of an ObjectId. Bytes that form a valid BSON
// document are taken as a document; no ObjectId made after 1976 does (its
// first 4 bytes, the big-endian timestamp, would have to read as length 12).
func (c *MongoCluster) idArg(b []byte) (any, error) {
	if bson.Raw(b).Validate() == nil && int(binary.LittleEndian.Uint32(b)) == len(b) {
		if elems, err := bson.Raw(b).Elements(); err == nil && len(elems) == 1 && elems[0].Key() == "_id" {
			return bson.Raw(b), nil
		}
		return nil, c.badArg(nil, "id is a BSON document but not {_id: <value>}")
	}
	if len(b) == 12 {
		return bson.D{{Key: "_id", Value: bson.ObjectID(b)}}, nil
	}
	return nil, c.badArg(nil, "id is neither a BSON document {_id: <value>} nor a 12-byte ObjectId (got %d bytes)", len(b))
}

// sortArg turns orderBy keys into a sort document, in order: "-key" sorts
// descending, "key" or "+key" ascending.
func (c *MongoCluster) sortArg(orderBy []string) (bson.D, error) {
	if len(orderBy) == 0 {
		return nil, nil
	}
	sort := make(bson.D, 0, len(orderBy))
	for i, k := range orderBy {
		dir := 1
		switch {
		case strings.HasPrefix(k, "-"):
			k, dir = k[1:], -1
		case strings.HasPrefix(k, "+"):
			k = k[1:]
		}
		if k == "" {
			return nil, c.badArg(nil, "orderBy[%d] %q names no field", i, orderBy[i])
		}
		sort = append(sort, bson.E{Key: k, Value: dir})
	}
	return sort, nil
}
