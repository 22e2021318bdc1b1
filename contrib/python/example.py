#!/usr/bin/python3
"""What a Python web worker does with fae: ping, an id, the local cache and its miss.

    /usr/bin/python3 contrib/python/example.py [127.0.0.1:9001 | /path/to/faed.sock] [--framed]

Needs the Apache Thrift Python library (Debian: python3-thrift) and the stubs
generated from idl/servant.thrift (gen-py/, `make idl`). Speaks the binary
protocol over the buffered transport, or with --framed the framed one (for a
faed with rpc.framed true, or rpc.protocol "auto"). Prints one line per call;
exits 1 on an unexpected error.
"""
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen-py"))

from thrift.protocol import TBinaryProtocol  # noqa: E402
from thrift.Thrift import TApplicationException, TException  # noqa: E402
from thrift.transport import TSocket, TTransport  # noqa: E402

from fun.rpc import FunServant  # noqa: E402
from fun.rpc.ttypes import Context, TCacheMissed  # noqa: E402


def connect(addr, framed=False):
    """One session to faed at "host:port" or a unix socket path; returns (client, transport)."""
    if "/" in addr:
        sock = TSocket.TSocket(unix_socket=addr)
    else:
        host, port = addr.rsplit(":", 1)
        sock = TSocket.TSocket(host, int(port))
    sock.setTimeout(4000)  # ms
    if framed:
        transport = TTransport.TFramedTransport(sock)
    else:
        transport = TTransport.TBufferedTransport(sock)
    client = FunServant.Client(TBinaryProtocol.TBinaryProtocol(transport))
    transport.open()
    return client, transport


def main():
    args = [a for a in sys.argv[1:] if a != "--framed"]
    addr = args[0] if args else "127.0.0.1:9001"
    client, transport = connect(addr, framed="--framed" in sys.argv[1:])
    ctx = Context(rid=time.time_ns() + random.randrange(1000), reason="example.index", uid=42)
    try:
        print("ping:", client.ping(ctx))
        i = client.id_next(ctx)
        print("id_next:", i)
        ts, tag, worker, seq = client.id_decode(ctx, i)
        print("id_decode: ts=%d tag=%d worker=%d seq=%d" % (ts, tag, worker, seq))
        key = "py.example.%d" % i
        client.lc_set(ctx, key, b"hello from python \x00\xff")
        value = client.lc_get(ctx, key)
        print("lc_get:", "same bytes" if value == b"hello from python \x00\xff" else "DIFFERENT: %r" % value)
        try:
            client.lc_get(ctx, key + ".missing")
            print("lc_get missing: NO MISS")
        except TCacheMissed as miss:
            print("lc_get missing: TCacheMissed:", miss.message)
        try:
            client.ping(Context(rid=0, reason=""))
            print("bad context: NO ERROR")
        except TApplicationException as e:
            print("bad context: TApplicationException:", e.message)
    except TException as e:
        print("%s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    finally:
        transport.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
