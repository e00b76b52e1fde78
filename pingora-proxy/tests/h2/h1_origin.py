"""A raw HTTP/1.1 origin (sockets only) for the translation tests.

usage: h1_origin.py [--drop-first]
Prints its port, then serves keep-alive connections:
* `/trailers`: reads the body (chunked or with a length) and its trailers; answers 200 with
  `x-seen-te` (the request's transfer-encoding), one `x-seen-trailer-NAME: VALUE` per trailer
  received and the body length as the body;
* `/hints`: answers `103 Early Hints` (a `link` header) and then `200` with body `final`.
--drop-first: the first connection reads one whole request, then closes without answering.
"""
import socket
import sys
import threading


def read_line(f):
    line = f.readline(65536)
    if not line:
        raise EOFError
    return line.rstrip(b"\r\n")


def read_request(f):
    start = read_line(f)
    while not start:
        start = read_line(f)
    method, path, _ = start.decode().split(" ", 2)
    headers = {}
    while True:
        line = read_line(f)
        if not line:
            break
        k, v = line.decode().split(":", 1)
        headers[k.strip().lower()] = v.strip()
    body = b""
    trailers = []
    if "chunked" in headers.get("transfer-encoding", ""):
        while True:
            size = int(read_line(f).split(b";")[0], 16)
            if size == 0:
                break
            body += f.read(size)
            read_line(f)
        while True:
            line = read_line(f)
            if not line:
                break
            k, v = line.decode().split(":", 1)
            trailers.append((k.strip().lower(), v.strip()))
    elif "content-length" in headers:
        body = f.read(int(headers["content-length"]))
    return method, path, headers, body, trailers


def serve(conn, drop):
    f = conn.makefile("rb")
    try:
        while True:
            method, path, headers, body, trailers = read_request(f)
            if drop:
                return
            if path.startswith("/hints"):
                conn.sendall(b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n")
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfinal")
                continue
            out = str(len(body)).encode()
            head = "HTTP/1.1 200 OK\r\nx-seen-te: %s\r\n" % headers.get("transfer-encoding", "")
            for k, v in trailers:
                head += "x-seen-trailer-%s: %s\r\n" % (k, v)
            head += "content-length: %d\r\n\r\n" % len(out)
            conn.sendall(head.encode() + out)
    except (EOFError, ConnectionError, ValueError):
        pass
    finally:
        conn.close()


def main():
    drop_first = "--drop-first" in sys.argv[1:]
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    print(srv.getsockname()[1], flush=True)
    first = True
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn, first and drop_first), daemon=True).start()
        first = False


if __name__ == "__main__":
    main()
