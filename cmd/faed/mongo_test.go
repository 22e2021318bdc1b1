package main_test

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/internal/testenv"
)

// mgDB is the database of the process tests on the shared FerretDB; every
// test uses collections of its own (uniqueName).
const mgDB = "fae_mgtest"

var emptyDoc = []byte{5, 0, 0, 0, 0}

// TestMongoMethods runs every mg_* method through faed against FerretDB and
// checks the documents with a driver client of its own.
func TestMongoMethods(t *testing.T) {
	testenv.RequireServer(t, "FerretDB", testenv.MongoAddr)
	_, c := startFaedSession(t, mgSection("", mgServer("default", testenv.MongoAddr, mgDB)))
	mc := directMongo(t, testenv.MongoAddr)
	for name, test := range map[string]func(*testing.T, *client, string){
		"insert_find_one": testMgInsertFindOne, "inserts_find_all_count": testMgFindAll,
		"update": testMgUpdate, "upsert": testMgUpsert, "by_id": testMgByID, "delete": testMgDelete,
		"find_and_modify": testMgFindAndModify, "find_id": testMgFindID,
	} {
		t.Run(name, func(t *testing.T) {
			coll := uniqueName("mgtest_" + name)
			dropLater(t, mc, mgDB, coll)
			test(t, c, coll)
			if t.Name() == "TestMongoMethods/update" {
				got := directFind(t, mc, mgDB, coll, bson.D{{Key: "_id", Value: 2}})
				if !reflect.DeepEqual(keys(t, got), []string{"_id", "name"}) || field(t, got, "name") != "new" {
					t.Errorf("replaced document as stored: %v", bson.Raw(got))
				}
			}
		})
	}
}

func testMgInsertFindOne(t *testing.T, c *client, coll string) {
	ok, err := c.MgInsert(bg, ctx(), "default", coll, 0, bs(t, bson.D{{Key: "_id", Value: 1}, {Key: "name", Value: "a"}, {Key: "n", Value: 5}}))
	if err != nil || !ok {
		t.Fatalf("insert = %v, %v", ok, err)
	}
	doc, err := c.MgFindOne(bg, ctx(), "default", coll, 0, bs(t, bson.D{{Key: "_id", Value: 1}}), bs(t, bson.D{{Key: "name", Value: 1}}))
	if err != nil || !reflect.DeepEqual(keys(t, doc), []string{"_id", "name"}) || field(t, doc, "name") != "a" {
		t.Fatalf("find_one with fields = %v, %v", bson.Raw(doc), err)
	}
	for _, fields := range [][]byte{nil, emptyDoc} { // empty query = any, empty fields = all
		doc, err = c.MgFindOne(bg, ctx(), "default", coll, 0, nil, fields)
		if err != nil || field(t, doc, "n") != int64(5) || field(t, doc, "name") != "a" {
			t.Fatalf("find_one, fields %v = %v, %v", fields, bson.Raw(doc), err)
		}
	}
	_, err = c.MgInsert(bg, ctx(), "default", coll, 0, bs(t, bson.D{{Key: "_id", Value: 1}}))
	wantErrContains(t, "duplicate _id", err, `mongodb insert: pool "default", server default (`+testenv.MongoAddr+`): refused: duplicate key in collection "`+coll+`"`)
	// ordered: the documents before the duplicate stay inserted, those after it are not
	_, err = c.MgInserts(bg, ctx(), "default", coll, 0, [][]byte{bs(t, bson.D{{Key: "_id", Value: 2}}),
		bs(t, bson.D{{Key: "_id", Value: 1}}), bs(t, bson.D{{Key: "_id", Value: 3}})})
	wantErrContains(t, "inserts with a duplicate _id", err, `mongodb insert: pool "default", server default (`+testenv.MongoAddr+`): refused: duplicate key in collection "`+coll+`"`)
	if n, err := c.MgCount(bg, ctx(), "default", coll, 0, nil); n != 2 || err != nil {
		t.Errorf("after the failed inserts: %d documents, %v; want 2 (_id 1 and 2)", n, err)
	}
}

func testMgFindAll(t *testing.T, c *client, coll string) {
	var docs [][]byte
	for i := 1; i <= 6; i++ {
		docs = append(docs, bs(t, bson.D{{Key: "_id", Value: i}, {Key: "g", Value: i % 2}, {Key: "n", Value: 10 * i}}))
	}
	if ok, err := c.MgInserts(bg, ctx(), "default", coll, 0, docs); err != nil || !ok {
		t.Fatalf("inserts = %v, %v", ok, err)
	}
	ids := func(docs [][]byte) []int64 { return mgIDs(t, docs) }
	for _, tc := range []struct {
		query       []byte
		limit, skip int32
		order       []string
		want        []int64
	}{
		{bs(t, bson.D{{Key: "g", Value: 1}}), 0, 0, []string{"-n"}, []int64{5, 3, 1}},
		{nil, 0, 0, []string{"g", "-n"}, []int64{6, 4, 2, 5, 3, 1}},
		{nil, 2, 1, []string{"-g", "n"}, []int64{3, 5}},
		{nil, 0, 4, []string{"_id"}, []int64{5, 6}},
		{bs(t, bson.D{{Key: "g", Value: 7}}), 0, 0, nil, nil},
	} {
		got, err := c.MgFindAll(bg, ctx(), "default", coll, 0, tc.query, nil, tc.limit, tc.skip, tc.order)
		if err != nil || !reflect.DeepEqual(ids(got), tc.want) {
			t.Errorf("find_all limit %d skip %d order %v = %v, %v; want %v", tc.limit, tc.skip, tc.order, ids(got), err, tc.want)
		}
	}
	got, err := c.MgFindAll(bg, ctx(), "default", coll, 0, nil, bs(t, bson.D{{Key: "n", Value: 1}, {Key: "_id", Value: 0}}), 1, 0, []string{"-n"})
	if err != nil || len(got) != 1 || !reflect.DeepEqual(keys(t, got[0]), []string{"n"}) || field(t, got[0], "n") != int64(60) {
		t.Errorf("find_all with fields = %d docs, %v", len(got), err)
	}
	for q, want := range map[string]int32{"": 6, string(bs(t, bson.D{{Key: "g", Value: 0}})): 3, string(bs(t, bson.D{{Key: "g", Value: 9}})): 0} {
		if n, err := c.MgCount(bg, ctx(), "default", coll, 0, []byte(q)); err != nil || n != want {
			t.Errorf("count = %d, %v; want %d", n, err, want)
		}
	}
}

// mgIDs are the integer _id of docs.
func mgIDs(t *testing.T, docs [][]byte) (out []int64) {
	for _, d := range docs {
		out = append(out, field(t, d, "_id").(int64))
	}
	return out
}

func testMgUpdate(t *testing.T, c *client, coll string) {
	c.MgInserts(bg, ctx(), "default", coll, 0, [][]byte{bs(t, bson.D{{Key: "_id", Value: 1}, {Key: "n", Value: 1}}),
		bs(t, bson.D{{Key: "_id", Value: 2}, {Key: "n", Value: 1}, {Key: "old", Value: "x"}})})
	change := bs(t, bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 2}}}, {Key: "$set", Value: bson.D{{Key: "s", Value: "y"}}}})
	if ok, err := c.MgUpdate(bg, ctx(), "default", coll, 0, bs(t, bson.D{{Key: "_id", Value: 1}}), change); err != nil || !ok {
		t.Fatalf("update = %v, %v", ok, err)
	}
	doc, _ := c.MgFindOne(bg, ctx(), "default", coll, 0, bs(t, bson.D{{Key: "_id", Value: 1}}), nil)
	if field(t, doc, "n") != int64(3) || field(t, doc, "s") != "y" {
		t.Errorf("after update: %v", bson.Raw(doc))
	}
	if ok, err := c.MgUpdate(bg, ctx(), "default", coll, 0, bs(t, bson.D{{Key: "_id", Value: 9}}), change); err != nil || ok {
		t.Errorf("update of nothing = %v, %v; want false", ok, err)
	}
	// a change without operators replaces the document (checked by TestMongoMethods)
	if ok, err := c.MgUpdate(bg, ctx(), "default", coll, 0, bs(t, bson.D{{Key: "_id", Value: 2}}), bs(t, bson.D{{Key: "name", Value: "new"}})); err != nil || !ok {
		t.Fatalf("replacing update = %v, %v", ok, err)
	}
}

func testMgUpsert(t *testing.T, c *client, coll string) {
	q := bs(t, bson.D{{Key: "k", Value: "a"}})
	for i, want := range []int64{1, 2} {
		ok, err := c.MgUpsert(bg, ctx(), "default", coll, 0, q, bs(t, bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}}))
		if err != nil || !ok {
			t.Fatalf("upsert %d = %v, %v", i, ok, err)
		}
		doc, _ := c.MgFindOne(bg, ctx(), "default", coll, 0, q, nil)
		if field(t, doc, "n") != want {
			t.Errorf("after upsert %d: %v", i, bson.Raw(doc))
		}
	}
	if ok, err := c.MgUpsert(bg, ctx(), "default", coll, 0, bs(t, bson.D{{Key: "k", Value: "b"}}), bs(t, bson.D{{Key: "k", Value: "b"}, {Key: "r", Value: 1}})); err != nil || !ok {
		t.Fatalf("replacing upsert = %v, %v", ok, err)
	}
	if n, _ := c.MgCount(bg, ctx(), "default", coll, 0, bs(t, bson.D{{Key: "r", Value: 1}})); n != 1 {
		t.Errorf("replacing upsert inserted %d documents, want 1", n)
	}
}

func testMgByID(t *testing.T, c *client, coll string) {
	set := func(v int) []byte { return bs(t, bson.D{{Key: "$set", Value: bson.D{{Key: "v", Value: v}}}}) }
	if ok, err := c.MgUpdateID(bg, ctx(), "default", coll, 0, 7, set(1)); err != nil || ok {
		t.Errorf("update_id of an absent id = %v, %v; want false", ok, err)
	}
	if ok, err := c.MgUpsertID(bg, ctx(), "default", coll, 0, 7, set(1)); err != nil || !ok {
		t.Fatalf("upsert_id = %v, %v", ok, err)
	}
	if ok, err := c.MgUpdateID(bg, ctx(), "default", coll, 0, 7, set(2)); err != nil || !ok {
		t.Errorf("update_id = %v, %v; want true", ok, err)
	}
	if ok, err := c.MgUpsertID(bg, ctx(), "default", coll, 0, 8, bs(t, bson.D{{Key: "v", Value: 3}})); err != nil || !ok {
		t.Errorf("replacing upsert_id = %v, %v", ok, err)
	}
	for id, want := range map[int32]int64{7: 2, 8: 3} {
		doc, err := c.MgFindID(bg, ctx(), "default", coll, 0, bs(t, bson.D{{Key: "_id", Value: id}}))
		if err != nil || field(t, doc, "v") != want || field(t, doc, "_id") != int64(id) {
			t.Errorf("document %d = %v, %v; want v %d", id, bson.Raw(doc), err, want)
		}
	}
}

func testMgDelete(t *testing.T, c *client, coll string) {
	c.MgInserts(bg, ctx(), "default", coll, 0, [][]byte{bs(t, bson.D{{Key: "k", Value: 1}}), bs(t, bson.D{{Key: "k", Value: 1}})})
	for i, want := range []bool{true, true, false} {
		if ok, err := c.MgDelete(bg, ctx(), "default", coll, 0, bs(t, bson.D{{Key: "k", Value: 1}})); err != nil || ok != want {
			t.Errorf("delete %d = %v, %v; want %v", i, ok, err, want)
		}
	}
}

func testMgFindAndModify(t *testing.T, c *client, coll string) {
	c.MgInsert(bg, ctx(), "default", coll, 0, bs(t, bson.D{{Key: "_id", Value: 1}, {Key: "n", Value: 1}}))
	q, inc := bs(t, bson.D{{Key: "_id", Value: 1}}), bs(t, bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}})
	none := bs(t, bson.D{{Key: "_id", Value: 99}})
	for _, tc := range []struct {
		name                      string
		query, change             []byte
		upsert, remove, returnNew bool
		wantN                     any // n of the returned document
	}{
		{"old", q, inc, false, false, false, int64(1)},
		{"new", q, inc, false, false, true, int64(3)},
		{"replace, new", q, bs(t, bson.D{{Key: "n", Value: 10}}), false, false, true, int64(10)},
		{"nothing matched", none, inc, false, false, true, "<absent>"},
		{"upsert, old", none, inc, true, false, false, "<absent>"},
		{"upsert, new", bs(t, bson.D{{Key: "_id", Value: 2}}), inc, true, false, true, int64(1)},
		{"remove", q, nil, false, true, false, int64(10)},
		{"remove, gone", q, nil, false, true, false, "<absent>"},
	} {
		doc, err := c.MgFindAndModify(bg, ctx(), "default", coll, 0, tc.query, tc.change, tc.upsert, tc.remove, tc.returnNew)
		if err != nil || field(t, doc, "n") != tc.wantN {
			t.Errorf("%s: %v, %v; want n %v", tc.name, bson.Raw(doc), err, tc.wantN)
		}
		if tc.wantN == "<absent>" && string(doc) != string(emptyDoc) {
			t.Errorf("%s: %v, want the empty document", tc.name, bson.Raw(doc))
		}
	}
	if n, _ := c.MgCount(bg, ctx(), "default", coll, 0, nil); n != 2 { // upserted 99 and 2; 1 removed
		t.Errorf("%d documents left, want 2", n)
	}
}

func testMgFindID(t *testing.T, c *client, coll string) {
	oid := bson.NewObjectID()
	c.MgInserts(bg, ctx(), "default", coll, 0, [][]byte{bs(t, bson.D{{Key: "_id", Value: oid}, {Key: "k", Value: "oid"}}),
		bs(t, bson.D{{Key: "_id", Value: "s1"}, {Key: "k", Value: "str"}}), bs(t, bson.D{{Key: "_id", Value: int64(5)}, {Key: "k", Value: "int"}})})
	for name, tc := range map[string]struct {
		id   []byte
		want any
	}{
		"ObjectId, 12 raw bytes":     {oid[:], "oid"},
		"ObjectId as a document":     {bs(t, bson.D{{Key: "_id", Value: oid}}), "oid"},
		"string as a document":       {bs(t, bson.D{{Key: "_id", Value: "s1"}}), "str"},
		"int32 matches stored int64": {bs(t, bson.D{{Key: "_id", Value: int32(5)}}), "int"},
		"absent":                     {bs(t, bson.D{{Key: "_id", Value: "nope"}}), "<absent>"},
		"absent ObjectId":            {func() []byte { o := bson.NewObjectID(); return o[:] }(), "<absent>"},
	} {
		doc, err := c.MgFindID(bg, ctx(), "default", coll, 0, tc.id)
		if err != nil || field(t, doc, "k") != tc.want {
			t.Errorf("%s: %v, %v; want k %v", name, bson.Raw(doc), err, tc.want)
		}
		if tc.want == "<absent>" && string(doc) != string(emptyDoc) {
			t.Errorf("%s: %v, want the empty document", name, bson.Raw(doc))
		}
	}
}

// TestMongoErrors: every document argument refuses malformed BSON by name; an
// unknown pool, a miss, a bad change, id or orderBy and a server refusal each
// have their own error; the session survives them all.
func TestMongoErrors(t *testing.T) {
	testenv.RequireServer(t, "FerretDB", testenv.MongoAddr)
	_, c := startFaedSession(t, mgSection("", mgServer("default", testenv.MongoAddr, mgDB)))
	mc := directMongo(t, testenv.MongoAddr)
	coll := uniqueName("mgtest_errors")
	dropLater(t, mc, mgDB, coll)
	testMgMalformed(t, c, coll)
	testMgNestedGarbage(t, c, mc, coll)
	testMgCallerErrors(t, c, coll)
	if x, err := c.Noop(bg, 7); err != nil || x != 7 {
		t.Fatalf("noop after errors = %d, %v", x, err)
	}
}

// testMgMalformed: each document argument of each method refuses malformed BSON by name.
func testMgMalformed(t *testing.T, c *client, coll string) {
	good, bad := bs(t, bson.D{{Key: "a", Value: 1}}), []byte("\x10\x00\x00\x00garbage")
	set := bs(t, bson.D{{Key: "$set", Value: bson.D{{Key: "a", Value: 2}}}})
	p, tb := "default", coll
	for name, call := range map[string]func() error{
		"query": func() error { _, err := c.MgFindOne(bg, ctx(), p, tb, 0, bad, nil); return err },
		"fields": func() error {
			_, err := c.MgFindAll(bg, ctx(), p, tb, 0, good, bad, 0, 0, nil)
			return err
		},
		"change":  func() error { _, err := c.MgUpdate(bg, ctx(), p, tb, 0, good, bad); return err },
		"doc":     func() error { _, err := c.MgInsert(bg, ctx(), p, tb, 0, bad); return err },
		"docs[1]": func() error { _, err := c.MgInserts(bg, ctx(), p, tb, 0, [][]byte{good, bad}); return err },
	} {
		wantErrContains(t, name, call(), "bad argument: "+name+" is not a valid BSON document: ")
	}
	for _, tc := range []struct { // the rest of the methods, each with one bad argument
		arg  string
		call func() error
	}{
		{"query", func() error { _, err := c.MgCount(bg, ctx(), p, tb, 0, bad); return err }},
		{"query", func() error { _, err := c.MgUpsert(bg, ctx(), p, tb, 0, bad, set); return err }},
		{"change", func() error { _, err := c.MgUpsert(bg, ctx(), p, tb, 0, good, bad); return err }},
		{"change", func() error { _, err := c.MgUpdateID(bg, ctx(), p, tb, 0, 1, bad); return err }},
		{"change", func() error { _, err := c.MgUpsertID(bg, ctx(), p, tb, 0, 1, bad); return err }},
		{"query", func() error { _, err := c.MgDelete(bg, ctx(), p, tb, 0, bad); return err }},
		{"query", func() error { _, err := c.MgFindAll(bg, ctx(), p, tb, 0, bad, nil, 0, 0, nil); return err }},
		{"fields", func() error { _, err := c.MgFindOne(bg, ctx(), p, tb, 0, good, bad); return err }},
		{"query", func() error {
			_, err := c.MgFindAndModify(bg, ctx(), p, tb, 0, bad, set, false, false, false)
			return err
		}},
		{"change", func() error {
			_, err := c.MgFindAndModify(bg, ctx(), p, tb, 0, good, bad, false, false, false)
			return err
		}},
	} {
		wantErrContains(t, tc.arg, tc.call(), "bad argument: "+tc.arg+" is not a valid BSON document: ")
	}
}

// testMgNestedGarbage (REVIEW §2.A5): garbage inside an embedded document or
// an array, which bson.Raw.Validate lets through, is refused naming the
// argument and the path of the bad element; nothing reaches the server.
func testMgNestedGarbage(t *testing.T, c *client, mc *mongo.Client, coll string) {
	// garbage turns the int32 element x of doc into one of the unknown type 0x42
	garbage := func(doc bson.D) []byte {
		b := bs(t, doc)
		return bytes.Replace(b, []byte("\x10x\x00"), []byte("\x42x\x00"), 1)
	}
	x := bson.D{{Key: "x", Value: int32(7)}}
	p, tb, set := "default", coll, bs(t, bson.D{{Key: "$set", Value: bson.D{{Key: "a", Value: 2}}}})
	for _, tc := range []struct {
		path string
		call func() error
	}{
		{"doc.a.b.x", func() error {
			_, err := c.MgInsert(bg, ctx(), p, tb, 0, garbage(bson.D{{Key: "a", Value: bson.D{{Key: "b", Value: x}}}}))
			return err
		}},
		{"docs[0].a.0.x", func() error {
			_, err := c.MgInserts(bg, ctx(), p, tb, 0, [][]byte{garbage(bson.D{{Key: "a", Value: bson.A{x}}})})
			return err
		}},
		{"query.a.0.x", func() error {
			_, err := c.MgFindAll(bg, ctx(), p, tb, 0, garbage(bson.D{{Key: "a", Value: bson.A{x}}}), nil, 0, 0, nil)
			return err
		}},
		{"query.$or.1.x", func() error {
			_, err := c.MgUpsert(bg, ctx(), p, tb, 0, garbage(bson.D{{Key: "$or", Value: bson.A{bson.D{}, x}}}), set)
			return err
		}},
		{"change.$set.a.x", func() error {
			_, err := c.MgUpsert(bg, ctx(), p, tb, 0, nil, garbage(bson.D{{Key: "$set", Value: bson.D{{Key: "a", Value: x}}}}))
			return err
		}},
		{"fields.a.x", func() error {
			_, err := c.MgFindOne(bg, ctx(), p, tb, 0, nil, garbage(bson.D{{Key: "a", Value: x}}))
			return err
		}},
		{"id._id.x", func() error {
			_, err := c.MgFindID(bg, ctx(), p, tb, 0, garbage(bson.D{{Key: "_id", Value: x}}))
			return err
		}},
	} {
		arg, _, _ := strings.Cut(tc.path, ".")
		wantErrContains(t, tc.path, tc.call(), fmt.Sprintf("bad argument: %s is not a valid BSON document: %s: unknown element type 0x42", arg, tc.path))
	}
	if n, err := mc.Database(mgDB).Collection(coll).CountDocuments(bg, bson.D{}); n != 0 || err != nil {
		t.Errorf("%d documents in the collection after refused inserts and upserts, %v; want none", n, err)
	}
}

func testMgCallerErrors(t *testing.T, c *client, coll string) {
	good := bs(t, bson.D{{Key: "a", Value: 1}})
	if ok, err := c.MgInsert(bg, ctx(), "default", coll, 0, bs(t, bson.D{{Key: "b", Value: 1}})); !ok || err != nil {
		t.Fatalf("insert = %v, %v", ok, err) // the server checks a query only on a collection that exists
	}
	_, err := c.MgFindOne(bg, ctx(), "default", coll, 0, good, nil)
	var nf *rpc.TMongoNotFound
	if !errors.As(err, &nf) || nf.GetMessage() != "not found" {
		t.Errorf("find_one of nothing: %v, want TMongoNotFound \"not found\"", err)
	}
	_, err = c.MgCount(bg, ctx(), "nosuchpool", coll, 0, nil)
	wantErrContains(t, "unknown pool", err, `mongodb count: pool "nosuchpool": unknown pool`)
	_, err = c.MgInsert(bg, ctx(), "database.nosuch", coll, 0, good)
	wantErrContains(t, "unknown pool, legacy prefix", err, `mongodb insert: pool "database.nosuch": unknown pool: no server entry "nosuch"`)
	_, err = c.MgUpdate(bg, ctx(), "default", coll, 0, good, bs(t, bson.D{{Key: "$set", Value: bson.D{}}, {Key: "b", Value: 1}}))
	wantErrContains(t, "mixed change", err, "bad argument: change mixes update operators ($…) and plain fields")
	_, err = c.MgUpsertID(bg, ctx(), "default", coll, 0, 1, emptyDoc)
	wantErrContains(t, "empty change", err, "bad argument: change is an empty document")
	_, err = c.MgInserts(bg, ctx(), "default", coll, 0, nil)
	wantErrContains(t, "no docs", err, "bad argument: docs is empty: nothing to insert")
	_, err = c.MgFindID(bg, ctx(), "default", coll, 0, []byte("abc"))
	wantErrContains(t, "bad id", err, "bad argument: id is neither a BSON document {_id: <value>} nor a 12-byte ObjectId (got 3 bytes)")
	_, err = c.MgFindID(bg, ctx(), "default", coll, 0, good)
	wantErrContains(t, "id document without _id", err, "bad argument: id is a BSON document but not {_id: <value>}")
	_, err = c.MgFindAll(bg, ctx(), "default", coll, 0, nil, nil, 0, 0, []string{"a", "-"})
	wantErrContains(t, "bad orderBy", err, `bad argument: orderBy[1] "-" names no field`)
	_, err = c.MgCount(bg, ctx(), "default", coll, 0, bs(t, bson.D{{Key: "$bogus", Value: 1}}))
	wantErrContains(t, "bad query operator", err, fmt.Sprintf(`mongodb count: pool "default", server default (%s): refused: refused by the server: `, testenv.MongoAddr), "$bogus")
	_, err = c.MgUpdate(bg, ctx(), "default", coll, 0, good, bs(t, bson.D{{Key: "$bogus", Value: bson.D{}}}))
	wantErrContains(t, "bad update operator", err, fmt.Sprintf(`mongodb update: pool "default", server default (%s): refused: refused by the server: `, testenv.MongoAddr), "$bogus")
}
