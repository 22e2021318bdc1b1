// What a Java service does with fae: ping, an id, the local cache and its miss.
//
//   javac -cp /usr/share/java/thrift.jar -d classes $(find contrib/java/gen-java -name '*.java') contrib/java/Example.java
//   java -cp classes:/usr/share/java/thrift.jar:/usr/share/java/slf4j-api.jar Example [127.0.0.1:9001]
//
// Needs the Apache Thrift Java library (Debian: libthrift-java, 0.16; it needs
// slf4j-api at run time) and the stubs generated from idl/servant.thrift by the
// Thrift 0.17 compiler (gen-java/, `make idl`). Speaks the binary protocol over
// the framed transport, as Java Thrift clients usually do: call a faed whose
// rpc.protocol is "auto", or "binary" with rpc.framed true. TCP only. Prints one
// line per call; exits 1 on an unexpected error.

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;

import org.apache.thrift.TApplicationException;
import org.apache.thrift.TException;
import org.apache.thrift.protocol.TBinaryProtocol;
import org.apache.thrift.transport.TSocket;
import org.apache.thrift.transport.TTransport;
import org.apache.thrift.transport.layered.TFramedTransport;

import fun.rpc.Context;
import fun.rpc.FunServant;
import fun.rpc.TCacheMissed;

public class Example {
    /** One session to faed at "host:port", framed binary; timeoutMs bounds the connect and each read. */
    static TTransport connect(String addr, int timeoutMs) throws TException {
        int colon = addr.lastIndexOf(':');
        TSocket socket = new TSocket(addr.substring(0, colon), Integer.parseInt(addr.substring(colon + 1)), timeoutMs);
        TTransport transport = new TFramedTransport(socket);
        transport.open();
        return transport;
    }

    public static void main(String[] args) {
        String addr = args.length > 0 ? args[0] : "127.0.0.1:9001";
        TTransport transport = null;
        try {
            transport = connect(addr, 4000);
            FunServant.Client client = new FunServant.Client(new TBinaryProtocol(transport));
            long rid = System.nanoTime() + ThreadLocalRandom.current().nextInt(1000);
            Context ctx = new Context(rid, "example.index", 42);

            System.out.println("ping: " + client.ping(ctx));
            long id = client.id_next(ctx);
            System.out.println("id_next: " + id);
            List<Long> d = client.id_decode(ctx, id);
            System.out.printf("id_decode: ts=%d tag=%d worker=%d seq=%d%n", d.get(0), d.get(1), d.get(2), d.get(3));

            String key = "java.example." + id;
            byte[] value = "hello from java \u0000".getBytes(StandardCharsets.ISO_8859_1);
            value = Arrays.copyOf(value, value.length + 1);
            value[value.length - 1] = (byte) 0xff;
            client.lc_set(ctx, key, ByteBuffer.wrap(value));
            ByteBuffer got = client.lc_get(ctx, key);
            byte[] gotBytes = new byte[got.remaining()];
            got.get(gotBytes);
            System.out.println("lc_get: " + (Arrays.equals(gotBytes, value) ? "same bytes" : "DIFFERENT: " + Arrays.toString(gotBytes)));

            try {
                client.lc_get(ctx, key + ".missing");
                System.out.println("lc_get missing: NO MISS");
            } catch (TCacheMissed miss) {
                System.out.println("lc_get missing: TCacheMissed: " + miss.getMessage());
            }

            try {
                client.ping(new Context(0, "", 0));
                System.out.println("bad context: NO ERROR");
            } catch (TApplicationException e) {
                System.out.println("bad context: TApplicationException: " + e.getMessage());
            }
        } catch (TException e) {
            System.err.println(e.getClass().getSimpleName() + ": " + e.getMessage());
            System.exit(1);
        } finally {
            if (transport != null) {
                transport.close();
            }
        }
    }
}
