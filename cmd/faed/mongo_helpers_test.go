package main_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// mgServer is one servants.mongodb.servers entry.
func mgServer(pool, addr, db string) string {
	host, port, _ := strings.Cut(addr, ":")
	return fmt.Sprintf(`{ pool: %q, host: %q, port: %s, db: %q }`, pool, host, port, db)
}

// mgSection is a servants.mongodb section; extra holds more keys.
func mgSection(extra string, servers ...string) string {
	return fmt.Sprintf("mongodb: {\n %s\n servers: [\n %s\n ]\n }", extra, strings.Join(servers, "\n"))
}

// uniqueName is a collection or database name no other test run uses.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s_%d", prefix, time.Now().UnixNano())
}

// directMongo is a driver client of its own on addr, to check what faed did.
func directMongo(t testing.TB, addr string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().SetHosts([]string{addr}).SetDirect(true).SetTimeout(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(context.Background()) })
	return c
}

// dropLater drops db.coll at the end of the test.
func dropLater(t *testing.T, mc *mongo.Client, db, coll string) {
	t.Cleanup(func() { mc.Database(db).Collection(coll).Drop(context.Background()) })
}

// bs marshals v (a bson.D or bson.M) to BSON bytes.
func bs(t testing.TB, v any) []byte {
	t.Helper()
	b, err := bson.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// field is the value of key in the BSON document doc, as an int64 for numbers
// and a string otherwise ("<absent>" when missing).
func field(t testing.TB, doc []byte, key string) any {
	t.Helper()
	if err := bson.Raw(doc).Validate(); err != nil {
		t.Fatalf("reply is not a BSON document: %v", err)
	}
	v, err := bson.Raw(doc).LookupErr(key)
	if err != nil {
		return "<absent>"
	}
	if n, ok := v.AsInt64OK(); ok {
		return n
	}
	if s, ok := v.StringValueOK(); ok {
		return s
	}
	return v.String()
}

// keys are the top-level keys of doc, in order.
func keys(t testing.TB, doc []byte) []string {
	t.Helper()
	elems, err := bson.Raw(doc).Elements()
	if err != nil {
		t.Fatalf("reply is not a BSON document: %v", err)
	}
	var ks []string
	for _, e := range elems {
		ks = append(ks, e.Key())
	}
	return ks
}

// directFind is the document of db.coll matching filter, nil when none.
func directFind(t testing.TB, mc *mongo.Client, db, coll string, filter any) []byte {
	t.Helper()
	raw, err := mc.Database(db).Collection(coll).FindOne(context.Background(), filter).Raw()
	if err == mongo.ErrNoDocuments {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
