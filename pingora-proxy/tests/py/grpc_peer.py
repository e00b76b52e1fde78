"""gRPC peers for the proxy tests, on grpcio with generic (stub-less) byte handlers.

    grpc_peer.py server [--tls CERT KEY]
        Service test.Echo on 127.0.0.1; prints "PORT <n>" once listening. Methods:
          Unary          echoes the request; "fail:<msg>" aborts with NOT_FOUND and <msg>;
                         always sends trailing metadata x-upstream-trailer: unary
          ServerStream   request "<n>" -> n replies "reply <i>"
          ClientStream   -> "<count> <total bytes>"
          Bidi           echoes every message with a "bidi:" prefix
    grpc_peer.py client TARGET [--tls CA] [--authority NAME]
        Runs the four call kinds plus an error call; prints one "CHECK <name> ok" line per
        passed check and "TRAILERS <json>" for the unary call's trailing metadata; exits 1 on
        the first failed check.
    grpc_peer.py status TARGET [--tls CA]
        One unary call; prints "STATUS <code name> <details>".
    grpc_peer.py certs DIR
        Mints a test CA and a certificate for localhost / 127.0.0.1 (with `trustme`) into
        DIR/ca.pem, DIR/server.pem and DIR/server.key.
"""
import json
import sys
from concurrent import futures

import grpc

SERVICE = "test.Echo"


def unary(request, context):
    context.set_trailing_metadata((("x-upstream-trailer", "unary"),))
    if request.startswith(b"fail:"):
        context.abort(grpc.StatusCode.NOT_FOUND, request[5:].decode())
    return request


def server_stream(request, context):
    for i in range(int(request.decode())):
        yield f"reply {i}".encode()


def client_stream(request_iterator, context):
    count = total = 0
    for msg in request_iterator:
        count += 1
        total += len(msg)
    return f"{count} {total}".encode()


def bidi(request_iterator, context):
    for msg in request_iterator:
        yield b"bidi:" + msg


def serve(args):
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    if args and args[0] == "--tls":
        with open(args[1], "rb") as c, open(args[2], "rb") as k:
            creds = grpc.ssl_server_credentials(((k.read(), c.read()),))
        port = server.add_secure_port("127.0.0.1:0", creds)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"PORT {port}", flush=True)
    server.wait_for_termination()


def channel(target, args):
    options = []
    if "--authority" in args:
        name = args[args.index("--authority") + 1]
        options.append(("grpc.ssl_target_name_override", name))
        options.append(("grpc.default_authority", name))
    if "--tls" in args:
        with open(args[args.index("--tls") + 1], "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        return grpc.secure_channel(target, creds, options=options)
    return grpc.insecure_channel(target, options=options)


def method(ch, kind, name):
    make = getattr(ch, kind)
    return make(f"/{SERVICE}/{name}")


def check(name, cond, detail=""):
    if not cond:
        print(f"FAIL {name} {detail}", flush=True)
        sys.exit(1)
    print(f"CHECK {name} ok", flush=True)


def client(target, args):
    with channel(target, args) as ch:
        call = method(ch, "unary_unary", "Unary")
        reply, c = call.with_call(b"hello", timeout=10)
        check("unary", reply == b"hello", reply)
        trailers = {k: v for k, v in c.trailing_metadata()}
        print("TRAILERS " + json.dumps(trailers), flush=True)

        big = bytes(range(256)) * 4096  # 1 MiB
        reply = call(big, timeout=20)
        check("unary_1mib", reply == big, len(reply))

        replies = list(method(ch, "unary_stream", "ServerStream")(b"50", timeout=10))
        check("server_stream", replies == [f"reply {i}".encode() for i in range(50)], len(replies))

        msgs = [bytes([i % 256]) * (i * 37 % 5000) for i in range(200)]
        reply = method(ch, "stream_unary", "ClientStream")(iter(msgs), timeout=10)
        check("client_stream", reply == f"{len(msgs)} {sum(map(len, msgs))}".encode(), reply)

        replies = list(method(ch, "stream_stream", "Bidi")(iter(msgs), timeout=10))
        check("bidi", replies == [b"bidi:" + m for m in msgs], len(replies))

        try:
            call(b"fail:no such thing", timeout=10)
            check("error_status", False, "no error")
        except grpc.RpcError as e:
            check(
                "error_status",
                e.code() == grpc.StatusCode.NOT_FOUND and e.details() == "no such thing",
                f"{e.code()} {e.details()}",
            )


def status(target, args):
    with channel(target, args) as ch:
        try:
            method(ch, "unary_unary", "Unary")(b"x", timeout=10)
            print("STATUS OK -", flush=True)
        except grpc.RpcError as e:
            print(f"STATUS {e.code().name} {e.details()}", flush=True)


def certs(directory):
    import os

    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    ca.cert_pem.write_to_path(os.path.join(directory, "ca.pem"))
    cert.private_key_pem.write_to_path(os.path.join(directory, "server.key"))
    with open(os.path.join(directory, "server.pem"), "wb") as f:
        for blob in cert.cert_chain_pems:
            f.write(blob.bytes())
    print("CERTS ok", flush=True)


if __name__ == "__main__":
    mode, rest = sys.argv[1], sys.argv[2:]
    if mode == "certs":
        certs(rest[0])
    elif mode == "server":
        serve(rest)
    elif mode == "client":
        client(rest[0], rest[1:])
    else:
        status(rest[0], rest[1:])
