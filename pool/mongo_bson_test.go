package pool

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// BSON built by hand, to put garbage where bson.Marshal never would.

// belem is one element: type, key, value bytes.
func belem(typ byte, key string, value []byte) []byte {
	return append(append([]byte{typ}, key+"\x00"...), value...)
}

// bdoc frames elements as a document (also an array, whose keys are "0", "1"…).
func bdoc(elems ...[]byte) []byte {
	body := []byte{}
	for _, e := range elems {
		body = append(body, e...)
	}
	return append(binary.LittleEndian.AppendUint32(nil, uint32(len(body)+5)), append(body, 0)...)
}

// bstr is a BSON string value.
func bstr(s string) []byte {
	return append(binary.LittleEndian.AppendUint32(nil, uint32(len(s)+1)), s+"\x00"...)
}

// bcws is a code-with-scope value.
func bcws(code string, scope []byte) []byte {
	body := append(bstr(code), scope...)
	return append(binary.LittleEndian.AppendUint32(nil, uint32(len(body)+4)), body...)
}

// The garbage put inside: an element whose fault only a check of its level finds.
var mongoGarbage = []struct {
	name, key string
	elem      []byte
	reason    string // the end of the message
}{
	{"unknown type", "x", belem(0x42, "x", []byte{1, 2, 3, 4}), "unknown element type 0x42"},
	{"unterminated string", "s", belem(0x02, "s", append(binary.LittleEndian.AppendUint32(nil, 3), "abc"...)),
		"string not terminated by a 0 byte"},
	{"document cut short", "d", belem(0x03, "d", binary.LittleEndian.AppendUint32(nil, 99)), "embedded document value cut short or malformed (4 bytes left in the document)"},
	{"bad boolean", "b", belem(0x08, "b", []byte{7}), "boolean byte 0x07, want 0 or 1"},
}

// nestGarbage puts garbage levels deep under top, alternating documents and
// arrays (document first unless array): it returns the argument and the path
// of the bad element below the argument's name.
func nestGarbage(top string, garbage []byte, key string, levels int, array bool) ([]byte, string) {
	v, path := bdoc(garbage), []string{key}
	for i := levels; i > 0; i-- {
		typ, k := byte(0x03), string(rune('a'+i-1))
		if array == (i%2 == 1) {
			typ, k = 0x04, "0"
		}
		v, path = bdoc(belem(typ, k, v)), append([]string{k}, path...)
	}
	if top != "" { // the argument's own key (_id of an id, an operator of a change)
		v, path = bdoc(belem(0x03, top, v)), append([]string{top}, path...)
	}
	return v, strings.Join(path, ".")
}

// TestMongoNestedGarbageRefused (REVIEW §2.A5): garbage inside embedded
// documents and arrays, one to three levels down, in each document argument
// of each operation, is refused as a bad argument naming the argument and the
// path of the bad element, before any server is asked: the server entry is a
// port nobody listens on, so an operation sent would have failed as
// unreachable after connect_timeout.
func TestMongoNestedGarbageRefused(t *testing.T) {
	cfg := mongoConfig(t, "legacy", server("default", "x", deadPort(t)))
	cfg.ConnectTimeout = 2 * time.Second
	c, obs := newMongo(t, cfg, Limits{})
	calls := mongoDocArgCalls(t, c)
	n := 0
	for _, call := range calls {
		for _, g := range mongoGarbage {
			for levels := 1; levels <= 3; levels++ {
				for _, array := range []bool{false, true} {
					bad, path := nestGarbage(call.top, g.elem, g.key, levels, array)
					if bson.Raw(bad).Validate() != nil {
						t.Fatalf("%s: bson.Raw.Validate refuses it: the test proves nothing", path)
					}
					start := time.Now()
					err := call.call(bad)
					want := fmt.Sprintf("bad argument: %s is not a valid BSON document: %s.%s: %s", call.arg, call.arg, path, g.reason)
					wantMongoError(t, g.name+" at "+path, err, KindBadArgument, "", "…")
					if err == nil || !strings.HasSuffix(err.Error(), want) {
						t.Errorf("%s at %s.%s: %v, want …%q", g.name, call.arg, path, err, want)
					}
					if d := time.Since(start); d > time.Second {
						t.Errorf("%s at %s.%s: refused after %s, want at once", g.name, call.arg, path, d)
					}
					n++
				}
			}
		}
	}
	if got := obs.Sum("mongodb", KindBadArgument); got != int64(n) {
		t.Errorf("observed %d bad arguments, want %d", got, n)
	}
	for _, oc := range obs.Snapshot() {
		if oc.Server != "" || oc.Pool != "default" || oc.Total() != oc.Count(KindBadArgument) {
			t.Errorf("observed %s on pool %q server %q: %d operations, %d bad arguments; want all bad, no server",
				oc.Name, oc.Pool, oc.Server, oc.Total(), oc.Count(KindBadArgument))
		}
	}
}

// mongoDocArgCall is an operation of c called with a bad document as arg,
// under key top of that argument.
type mongoDocArgCall struct {
	arg, top string
	call     func(bad []byte) error
}

// mongoDocArgCalls are the operations of c, each with a bad document in one
// of its document arguments.
func mongoDocArgCalls(t *testing.T, c *Mongo) []mongoDocArgCall {
	tg, ctx := MongoTarget{Pool: "default", Table: "t"}, context.Background()
	good, set := mustBSON(t, bson.D{{Key: "a", Value: 1}}), mustBSON(t, bson.D{{Key: "$set", Value: bson.D{{Key: "a", Value: 2}}}})
	return []mongoDocArgCall{
		{"query", "q", func(b []byte) error { _, err := c.FindOne(ctx, tg, b, nil); return err }},
		{"query", "q", func(b []byte) error { _, err := c.FindAll(ctx, tg, b, nil, 0, 0, nil); return err }},
		{"query", "q", func(b []byte) error { _, err := c.Count(ctx, tg, b); return err }},
		{"query", "q", func(b []byte) error { _, err := c.Delete(ctx, tg, b); return err }},
		{"query", "q", func(b []byte) error { _, err := c.Update(ctx, tg, b, set, true); return err }},
		{"query", "q", func(b []byte) error { _, err := c.FindAndModify(ctx, tg, b, nil, false, true, false); return err }},
		{"fields", "f", func(b []byte) error { _, err := c.FindOne(ctx, tg, good, b); return err }},
		{"fields", "f", func(b []byte) error { _, err := c.FindAll(ctx, tg, good, b, 0, 0, nil); return err }},
		{"change", "$set", func(b []byte) error { _, err := c.Update(ctx, tg, good, b, false); return err }},
		{"change", "$set", func(b []byte) error { _, err := c.UpdateID(ctx, tg, 1, b, true); return err }},
		{"change", "plain", func(b []byte) error {
			_, err := c.FindAndModify(ctx, tg, good, b, false, false, true)
			return err
		}},
		{"doc", "d", func(b []byte) error { return c.Insert(ctx, tg, [][]byte{b}, false) }},
		{"docs[1]", "d", func(b []byte) error { return c.Insert(ctx, tg, [][]byte{good, b, good}, true) }},
		{"id", "_id", func(b []byte) error { _, err := c.FindID(ctx, tg, b); return err }},
	}
}

// TestMongoBSONCheck: what checkBSON refuses, at the top level and below, and
// the depth limit (MongoDB's 100 levels).
func TestMongoBSONCheck(t *testing.T) {
	unterminated := belem(0x02, "s", append(binary.LittleEndian.AppendUint32(nil, 2), 'a', 'b'))
	for _, tc := range []struct {
		name string
		b    []byte
		want string // "" = valid
	}{
		{"empty document", MongoEmptyDocument(), ""},
		{"too short", []byte{1}, "q is not a valid BSON document: 1 bytes, fewer than the 5 of the empty document"},
		{"length beyond", []byte{9, 0, 0, 0, 0}, "q is not a valid BSON document: declared length 9, beyond its 5 bytes"},
		{"bytes after", append(MongoEmptyDocument(), 0), "q is not a valid BSON document: 1 bytes after its end"},
		{"no final 0", []byte{5, 0, 0, 0, 1}, "q is not a valid BSON document: does not end with a 0 byte"},
		{"early end", []byte{7, 0, 0, 0, 0, 0, 0}, "q is not a valid BSON document: ends 2 bytes before its declared length"},
		{"key not terminated", []byte{7, 0, 0, 0, 0x10, 'a', 0}, "q is not a valid BSON document: q: the key of an element is not terminated by a 0 byte"},
		{"string length 0", bdoc(belem(0x02, "s", []byte{0, 0, 0, 0})), "q is not a valid BSON document: q.s: string length 0, want 1 to 0"},
		{"string in a code with scope", bdoc(belem(0x0F, "f", bcws("x", bdoc(unterminated)))),
			"q is not a valid BSON document: q.f.$scope.s: string not terminated by a 0 byte"},
		{"scope bytes after", bdoc(belem(0x0F, "f", bcws("x", append(MongoEmptyDocument(), 0)))), "q is not a valid BSON document: q.f.$scope: 1 bytes after its end"},
		{"good code with scope", bdoc(belem(0x0F, "f", bcws("x", bdoc(belem(0x10, "n", []byte{1, 0, 0, 0}))))), ""},
		{"long keys shortened", bdoc(belem(0x03, strings.Repeat("k", 50), bdoc(belem(0x42, "x", nil)))),
			"q is not a valid BSON document: q." + strings.Repeat("k", 32) + "….x: unknown element type 0x42"},
		{"100 levels", deep(100), ""},
		{"101 levels", deep(101), "q is not a valid BSON document: q.…a.a.a…"},
	} {
		err := checkBSON("q", tc.b)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want valid", tc.name, err)
		case tc.want == "":
		case err == nil:
			t.Errorf("%s: valid, want %q", tc.name, tc.want)
		case strings.HasSuffix(tc.want, "…") && !strings.HasPrefix(err.Error(), strings.TrimSuffix(tc.want, "…")),
			!strings.HasSuffix(tc.want, "…") && err.Error() != tc.want:
			t.Errorf("%s:\n got %q\nwant %q", tc.name, err, tc.want)
		}
	}
	err := checkBSON("q", deep(101))
	if err == nil || !strings.HasSuffix(err.Error(), ".a.a: nested more than 100 levels deep") || len(err.Error()) > 300 {
		t.Errorf("101 levels: %v; want a shortened path and the limit", err)
	}
}

// deep is levels documents nested in each other, {a: {a: … {}}}, the top one included.
func deep(levels int) []byte {
	d := MongoEmptyDocument()
	for i := 1; i < levels; i++ {
		d = bdoc(belem(0x03, "a", d))
	}
	return d
}

func TestMongoArgs(t *testing.T) {
	doc := mustBSON(t, bson.D{{Key: "a", Value: 1}})
	bad := func(err error, want string) {
		t.Helper()
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("error %v, want one starting %q", err, want)
		}
	}
	if _, err := docArg("doc", doc); err != nil {
		t.Error(err)
	}
	_, err := docArg("query", []byte("not bson"))
	bad(err, "query is not a valid BSON document: ")
	_, err = docArg("doc", append(doc, 0))
	bad(err, "doc is not a valid BSON document: 1 bytes after its end")
	_, err = docArg("docs[2]", nil)
	bad(err, "docs[2] is not a valid BSON document: 0 bytes, fewer than the 5 of the empty document")
	if q, err := queryArg(nil); err != nil || len(q.(bson.D)) != 0 {
		t.Errorf("empty query = %v, %v; want {}", q, err)
	}
	for _, f := range [][]byte{nil, MongoEmptyDocument()} {
		if p, err := fieldsArg(f); p != nil || err != nil {
			t.Errorf("fields %v = %v, %v; want no projection", f, p, err)
		}
	}
	if _, replace, err := changeArg(mustBSON(t, bson.D{{Key: "$set", Value: bson.D{{Key: "a", Value: 2}}}})); replace || err != nil {
		t.Errorf("operator change: replace %v, %v", replace, err)
	}
	if _, replace, err := changeArg(doc); !replace || err != nil {
		t.Errorf("plain change: replace %v, %v", replace, err)
	}
	_, _, err = changeArg(mustBSON(t, bson.D{{Key: "$set", Value: bson.D{}}, {Key: "a", Value: 1}}))
	bad(err, "change mixes update operators ($…) and plain fields")
	_, _, err = changeArg(MongoEmptyDocument())
	bad(err, "change is an empty document")
	_, err = docsArg(nil, true)
	bad(err, "docs is empty: nothing to insert")
}

func TestMongoIDAndSortArgs(t *testing.T) {
	oid := bson.NewObjectID()
	if f, err := idArg(oid[:]); err != nil || f.(bson.D)[0].Value != oid {
		t.Errorf("12-byte id = %v, %v", f, err)
	}
	byDoc := mustBSON(t, bson.D{{Key: "_id", Value: "abc"}})
	if f, err := idArg(byDoc); err != nil || string(f.(bson.Raw)) != string(byDoc) {
		t.Errorf("document id = %v, %v", f, err)
	}
	for in, want := range map[string]string{
		string(mustBSON(t, bson.D{{Key: "x", Value: "abc"}})): "id is a BSON document but not {_id: <value>}",
		// 12 bytes, but framed as a document: taken as a document, not as an ObjectId
		string(mustBSON(t, bson.D{{Key: "a", Value: int32(1)}})): "id is a BSON document but not {_id: <value>}",
		"short": "id is neither a BSON document {_id: <value>} nor a 12-byte ObjectId (got 5 bytes)",
	} {
		if _, err := idArg([]byte(in)); err == nil || err.Error() != want {
			t.Errorf("id %q: %v, want %q", in, err, want)
		}
	}
	sort, err := sortArg([]string{"-a", "b", "+c"})
	want := bson.D{{Key: "a", Value: -1}, {Key: "b", Value: 1}, {Key: "c", Value: 1}}
	if err != nil || fmt.Sprintf("%#v", sort) != fmt.Sprintf("%#v", want) {
		t.Errorf("sort = %v, %v", sort, err)
	}
	if _, err := sortArg([]string{"a", "-"}); err == nil || err.Error() != `orderBy[1] "-" names no field` {
		t.Errorf("empty sort key: %v", err)
	}
}
