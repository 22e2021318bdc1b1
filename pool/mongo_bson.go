package pool

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// mongoMaxDepth is how deep documents and arrays may nest in a document
// argument, the argument itself being level 1 (a code-with-scope's scope is
// one level below it). It is MongoDB's own limit ("MongoDB supports no more
// than 100 levels of nesting for BSON documents", Limits and Thresholds), so
// nothing a server would store is refused; and it bounds the recursion of the
// check, so a client cannot make faed recurse deeper than that.
const mongoMaxDepth = 100

// Bounds of the path in a message: each key at most maxPathKey bytes, the
// whole path at most maxPathText.
const (
	maxPathKey  = 32
	maxPathText = 200
)

// checkBSON checks that b is exactly one valid BSON document at every level:
// bson.Raw.Validate checks only the top level, and the driver sends an
// embedded document or array as it is, so garbage inside one would reach the
// server. arg names the argument ("query", "docs[2]"); the error says
// "<arg> is not a valid BSON document: " and, when the fault is in an
// element, the path of that element ("query.a.0.b: …").
func checkBSON(arg string, b []byte) error {
	if err := checkDoc(b, arg, 1); err != nil {
		return fmt.Errorf("%s is not a valid BSON document: %w", arg, err)
	}
	return nil
}

// checkDoc checks the document (or array) d, found at path, depth levels deep.
func checkDoc(d []byte, path string, depth int) error {
	if depth > mongoMaxDepth {
		return pathError(path, "nested more than %d levels deep", mongoMaxDepth)
	}
	if len(d) < 5 {
		return frameError(path, depth, "%d bytes, fewer than the 5 of the empty document", len(d))
	}
	n := int(int32(binary.LittleEndian.Uint32(d)))
	switch {
	case n < 5:
		return frameError(path, depth, "declared length %d, below the 5 of the empty document", n)
	case n > len(d):
		return frameError(path, depth, "declared length %d, beyond its %d bytes", n, len(d))
	case n < len(d):
		return frameError(path, depth, "%d bytes after its end", len(d)-n)
	case d[n-1] != 0:
		return frameError(path, depth, "does not end with a 0 byte")
	}
	for body := d[4 : n-1]; len(body) > 0; {
		var err error
		if body, err = checkElement(body, path, depth); err != nil {
			return err
		}
	}
	return nil
}

// checkElement checks the first element of body, the rest of a document at
// path, and returns what follows it.
func checkElement(body []byte, path string, depth int) ([]byte, error) {
	t := bsoncore.Type(body[0])
	if t == 0 {
		return nil, frameError(path, depth, "ends %d bytes before its declared length", len(body))
	}
	end := bytes.IndexByte(body[1:], 0)
	if end < 0 {
		return nil, pathError(path, "the key of an element is not terminated by a 0 byte")
	}
	at := path + "." + pathKey(body[1:1+end])
	if !bson.Type(t).IsValid() {
		return nil, pathError(at, "unknown element type 0x%02x", byte(t))
	}
	v, rest, ok := bsoncore.ReadValue(body[end+2:], t)
	if !ok {
		return nil, pathError(at, "%s value cut short or malformed (%d bytes left in the document)", t, len(body)-end-2)
	}
	return rest, checkValue(v, at, depth)
}

// checkValue checks what ReadValue does not: the inside of documents, arrays
// and code with scope, the terminating 0 of strings, the byte of a boolean.
func checkValue(v bsoncore.Value, at string, depth int) error {
	switch v.Type {
	case bsoncore.TypeEmbeddedDocument, bsoncore.TypeArray:
		return checkDoc(v.Data, at, depth+1)
	case bsoncore.TypeString, bsoncore.TypeJavaScript, bsoncore.TypeSymbol:
		return checkString(v.Data, at)
	case bsoncore.TypeDBPointer:
		return checkString(v.Data[:len(v.Data)-12], at)
	case bsoncore.TypeBoolean:
		if v.Data[0] > 1 {
			return pathError(at, "boolean byte 0x%02x, want 0 or 1", v.Data[0])
		}
	case bsoncore.TypeCodeWithScope:
		return checkCodeWithScope(v.Data, at, depth)
	}
	return nil
}

// checkString checks a BSON string (int32 length, bytes, 0) that fills s.
func checkString(s []byte, at string) error {
	n := int(int32(binary.LittleEndian.Uint32(s)))
	switch {
	case n < 1 || 4+n != len(s):
		return pathError(at, "string length %d, want 1 to %d", n, len(s)-4)
	case s[len(s)-1] != 0:
		return pathError(at, "string not terminated by a 0 byte")
	}
	return nil
}

// checkCodeWithScope checks a code with scope (int32 total, string, document)
// that fills c; its scope is at "<at>.$scope", one level deeper.
func checkCodeWithScope(c []byte, at string, depth int) error {
	const smallest = 4 + 5 + 5 // total, empty string, empty document
	if len(c) < smallest {
		return pathError(at, "code with scope of %d bytes, fewer than the %d of the smallest", len(c), smallest)
	}
	n := int(int32(binary.LittleEndian.Uint32(c[4:])))
	if n < 1 || 8+n > len(c)-5 {
		return pathError(at, "code string length %d, want 1 to %d", n, len(c)-13)
	}
	if err := checkString(c[4:8+n], at); err != nil {
		return err
	}
	return checkDoc(c[8+n:], at+".$scope", depth+1)
}

// frameError is an error of the frame of the document at path: the argument
// itself is named by checkBSON, a nested one by its path.
func frameError(path string, depth int, format string, a ...any) error {
	if depth == 1 {
		return fmt.Errorf(format, a...)
	}
	return pathError(path, format, a...)
}

// pathError is "<path>: <message>", the path shortened to maxPathText bytes.
func pathError(path, format string, a ...any) error {
	if len(path) > maxPathText {
		arg, _, _ := strings.Cut(path, ".")
		keep := max(maxPathText-len(arg), 0)
		path = arg + ".…" + strings.ToValidUTF8(path[len(path)-keep:], "")
	}
	return fmt.Errorf("%s: %s", path, fmt.Sprintf(format, a...))
}

// pathKey is key as it appears in a path: valid UTF-8, at most maxPathKey bytes.
func pathKey(key []byte) string {
	s := strings.ToValidUTF8(string(key), "\uFFFD")
	if len(s) > maxPathKey {
		s = strings.ToValidUTF8(s[:maxPathKey], "") + "…"
	}
	return s
}
