package pool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// The checks of the operations' arguments. Each returns the cause of a
// KindBadArgument error, naming the argument; every document argument is
// checked at every level (checkBSON) before any server is asked.

// MongoEmptyDocument returns the empty BSON document {} (5 bytes), the answer
// of a find that matched nothing where the IDL says "an empty document".
func MongoEmptyDocument() []byte { return []byte{5, 0, 0, 0, 0} }

// docArg checks that b is exactly one valid BSON document; name is the
// argument's name for the message ("query", "docs[2]", …).
func docArg(name string, b []byte) (bson.Raw, error) {
	if err := checkBSON(name, b); err != nil {
		return nil, err
	}
	return bson.Raw(b), nil
}

// queryArg is a filter: empty bytes match every document.
func queryArg(b []byte) (any, error) {
	if len(b) == 0 {
		return bson.D{}, nil
	}
	return docArg("query", b)
}

// fieldsArg is a projection; nil (none) for empty bytes or the empty document.
func fieldsArg(b []byte) (bson.Raw, error) {
	if len(b) == 0 {
		return nil, nil
	}
	d, err := docArg("fields", b)
	if err != nil || len(d) == 5 {
		return nil, err
	}
	return d, nil
}

// queryFieldsArgs checks the query and fields arguments of a find.
func queryFieldsArgs(query, fields []byte) (q any, p bson.Raw, err error) {
	if q, err = queryArg(query); err != nil {
		return nil, nil, err
	}
	if p, err = fieldsArg(fields); err != nil {
		return nil, nil, err
	}
	return q, p, nil
}

// changeArg is the change of an update: replace is false when every top-level
// key is an update operator ($set, $inc, …) and true when none is, in which
// case the change is the whole new document (what the original's mgo
// Update/Upsert did with such a change). A change mixing both, or the empty
// document, is refused: the server would reject the first, and the second
// would wipe the document.
func changeArg(b []byte) (doc bson.Raw, replace bool, err error) {
	if doc, err = docArg("change", b); err != nil {
		return nil, false, err
	}
	elems, err := doc.Elements()
	if err != nil { // checked already; kept so that a failure is never silent
		return nil, false, fmt.Errorf("change is not a valid BSON document: %w", err)
	}
	ops := 0
	for _, e := range elems {
		if strings.HasPrefix(e.Key(), "$") {
			ops++
		}
	}
	switch {
	case len(elems) == 0:
		return nil, false, errors.New("change is an empty document (it would replace the document with {})")
	case ops != 0 && ops != len(elems):
		return nil, false, errors.New("change mixes update operators ($…) and plain fields")
	}
	return doc, ops == 0, nil
}

// docsArg checks the documents of an insert; many names them "docs[i]"
// instead of "doc". An empty docs is refused.
func docsArg(docs [][]byte, many bool) ([]bson.Raw, error) {
	if len(docs) == 0 {
		return nil, errors.New("docs is empty: nothing to insert")
	}
	raws := make([]bson.Raw, len(docs))
	for i, b := range docs {
		name := "doc"
		if many {
			name = fmt.Sprintf("docs[%d]", i)
		}
		d, err := docArg(name, b)
		if err != nil {
			return nil, err
		}
		raws[i] = d
	}
	return raws, nil
}

// idArg is the filter of find_id: id is either a BSON document whose only key
// is _id ({_id: <any value>}, e.g. PHP bson_encode(['_id' => $id])), used as
// the filter, or the 12 raw bytes of an ObjectId. Bytes framed as a document
// (their first 4 bytes, little-endian, are their length, and the last is 0)
// are taken as a document and checked at every level; no ObjectId made after
// 1976 is framed so (its first 4 bytes, the big-endian timestamp, would have
// to read as length 12).
func idArg(b []byte) (any, error) {
	if len(b) >= 5 && int(binary.LittleEndian.Uint32(b)) == len(b) && b[len(b)-1] == 0 {
		d, err := docArg("id", b)
		if err != nil {
			return nil, err
		}
		if elems, err := d.Elements(); err == nil && len(elems) == 1 && elems[0].Key() == "_id" {
			return d, nil
		}
		return nil, errors.New("id is a BSON document but not {_id: <value>}")
	}
	if len(b) == 12 {
		return bson.D{{Key: "_id", Value: bson.ObjectID(b)}}, nil
	}
	return nil, fmt.Errorf("id is neither a BSON document {_id: <value>} nor a 12-byte ObjectId (got %d bytes)", len(b))
}

// sortArg turns orderBy keys into a sort document, in order: "-key" sorts
// descending, "key" or "+key" ascending.
func sortArg(orderBy []string) (bson.D, error) {
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
			return nil, fmt.Errorf("orderBy[%d] %q names no field", i, orderBy[i])
		}
		sort = append(sort, bson.E{Key: k, Value: dir})
	}
	return sort, nil
}
