package main_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/fae-go/fae/idl/fun/rpc"
)

// The jars of Debian's libthrift-java 0.16 (contrib/install-deps installs
// it) and the slf4j it needs at run time (slf4j-nop: no logger binding warning).
var javaClassPath = []string{"/usr/share/java/thrift.jar", "/usr/share/java/slf4j-api.jar", "/usr/share/java/slf4j-nop.jar"}

// buildJava compiles contrib/java's stubs and Example.java with javac into a
// temporary directory and returns the class path to run Example with.
func buildJava(t *testing.T) string {
	t.Helper()
	for _, jar := range javaClassPath {
		if _, err := os.Stat(jar); err != nil {
			t.Fatalf("%s missing: Debian libthrift-java is not installed (make test installs it): %v", jar, err)
		}
	}
	classes := t.TempDir()
	srcs, err := filepath.Glob("../../contrib/java/gen-java/fun/rpc/*.java")
	if err != nil || len(srcs) == 0 {
		t.Fatalf("no Java stubs in contrib/java/gen-java (make idl): %v", err)
	}
	// C1 only and the serial collector: a third of javac's CPU time for these 1.9 MB of stubs (12 s to 5 s).
	args := append([]string{"-J-XX:TieredStopAtLevel=1", "-J-XX:+UseSerialGC", "-nowarn", "-d", classes, "-cp", javaClassPath[0]},
		append(srcs, "../../contrib/java/Example.java")...)
	if out, err := exec.Command("javac", args...).CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
	return strings.Join(append([]string{classes}, javaClassPath...), ":")
}

// runExample runs one example client against addr and checks its lines (exampleLines).
func runExample(t *testing.T, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	for _, re := range exampleLines {
		if !re.Match(out) {
			t.Errorf("%s: output lacks a line matching %s:\n%s", name, re, out)
		}
	}
}

// TestAutoProtocolClients: one faed with rpc.protocol auto (and framed
// false, which auto ignores) serves, on one port, PHP (buffered binary,
// FaeClient.php), Python (buffered and framed binary), Java (framed binary,
// the Debian library with the committed stubs) and Go in compact, framed and
// buffered, every client checking its results; then a non-strict binary
// call is answered INVALID_PROTOCOL and counted, and every other session was
// served without a protocol error.
func TestAutoProtocolClients(t *testing.T) {
	if _, err := os.Stat("/usr/lib/php/Transport/TSocket.php"); err != nil {
		t.Fatalf("Debian php-thrift is not installed (make test installs it): %v", err)
	}
	dir := t.TempDir()
	f := startFaedIn(t, dir, mode{"auto", false, false}.config(dir, "", ""))
	t.Run("clients", func(t *testing.T) {
		t.Run("java-framed-binary", func(t *testing.T) {
			t.Parallel()
			runExample(t, "java", "-cp", buildJava(t), "Example", f.rpcAddr)
		})
		t.Run("php-buffered-binary", func(t *testing.T) {
			t.Parallel()
			runExample(t, "php", "../../contrib/php/example.php", f.rpcAddr)
		})
		t.Run("python-buffered-binary", func(t *testing.T) {
			t.Parallel()
			runExample(t, "/usr/bin/python3", "../../contrib/python/example.py", f.rpcAddr)
		})
		t.Run("python-framed-binary", func(t *testing.T) {
			t.Parallel()
			runExample(t, "/usr/bin/python3", "../../contrib/python/example.py", f.rpcAddr, "--framed")
		})
		for _, framed := range []bool{true, false} {
			m := mode{"compact", framed, false}
			t.Run("go-"+m.String(), func(t *testing.T) {
				t.Parallel()
				goRoundTrip(t, f.dial(t, m), m.String())
			})
		}
	})
	if t.Failed() {
		return
	}

	conn := f.dialRaw(t)
	conn.Write(nonStrictPing(t, 9))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	p := thrift.NewTBinaryProtocolConf(thrift.NewStreamTransportR(conn), nil)
	name, typ, seq, err := p.ReadMessageBegin(bg)
	x := thrift.NewTApplicationException(0, "")
	if err == nil && typ == thrift.EXCEPTION {
		err = x.Read(bg, p)
	}
	if err != nil || name != "ping" || seq != 9 || x.TypeId() != thrift.INVALID_PROTOCOL ||
		!strings.Contains(x.Error(), "rpc.protocol auto reads strict binary") {
		t.Errorf("non-strict binary ping: %q type %d seq %d, exception %v, err %v; want INVALID_PROTOCOL", name, typ, seq, x, err)
	}
	m := scrape(t, f.httpAddr)
	if n := m[`fae_connections_refused_total{reason="protocol"}`]; n != 1 {
		t.Errorf(`fae_connections_refused_total{reason="protocol"} = %v, want 1`, n)
	}
	for _, reason := range []string{"protocol", "transport", "io_timeout"} {
		if n := m[`fae_session_ends_total{reason="`+reason+`"}`]; n != 0 {
			t.Errorf(`fae_session_ends_total{reason=%q} = %v, want 0`, reason, n)
		}
	}
}

// goRoundTrip pings and sets, gets and misses a key of the local cache on c.
func goRoundTrip(t *testing.T, c *client, name string) {
	if s, err := c.Ping(bg, ctx()); err != nil || !strings.HasPrefix(s, "ver:test, build:testbuild, myid:7") {
		t.Fatalf("ping: %q, %v", s, err)
	}
	key, value := "go.auto."+name, []byte("hello from go \x00\xff")
	if ok, err := c.LcSet(bg, ctx(), key, value); err != nil || !ok {
		t.Fatalf("lc_set: %v, %v", ok, err)
	}
	if got, err := c.LcGet(bg, ctx(), key); err != nil || !bytes.Equal(got, value) {
		t.Fatalf("lc_get: %q, %v", got, err)
	}
	var miss *rpc.TCacheMissed
	if _, err := c.LcGet(bg, ctx(), key+".missing"); !errors.As(err, &miss) {
		t.Fatalf("lc_get of a missing key: %v, want TCacheMissed", err)
	}
}

// nonStrictPing is a ping call in non-strict binary (no version: the method
// name's length first), buffered, as TBinaryProtocol with strict_write off
// writes it.
func nonStrictPing(t *testing.T, seq int32) []byte {
	var b bytes.Buffer
	b.Write(binary.BigEndian.AppendUint32(nil, 4))
	b.WriteString("ping")
	b.WriteByte(byte(thrift.CALL))
	b.Write(binary.BigEndian.AppendUint32(nil, uint32(seq)))
	buf := thrift.NewTMemoryBuffer()
	if err := (&rpc.FunServantPingArgs{C: ctx()}).Write(bg, thrift.NewTBinaryProtocolConf(buf, nil)); err != nil {
		t.Fatal(err)
	}
	return append(b.Bytes(), buf.Bytes()...)
}
