#!/usr/bin/env python3
"""A small HTTP/1.1 origin server for the end-to-end tests (standard library only).

Start it with `python3 origin.py --name A --port 0`; once listening it prints one line
`LISTENING <port>` on stdout, so the caller learns the port the kernel picked.

Endpoints (any method):
  /echo             answers with the request body; headers tell what the origin saw
                    (X-Origin-Name, X-Seen-Host, X-Body-Len, X-Body-Sha256, X-Seen-TE, X-Seen-CL).
  /sink             reads the request body (Content-Length or chunked) and answers with its
                    length and sha256 only, in headers and as `<len> <hex>` in the body.
  /size/<n>         n bytes of deterministic pseudo-random data with Content-Length,
                    X-Body-Sha256 tells the digest of the full body.
  /chunked/<n>      the same body sent with Transfer-Encoding: chunked (?chunk=<k> bytes a chunk).
  /slow?ms=<t>      waits t milliseconds, then answers "slow".
  /stats            JSON: {"connections": accepted TCP connections, "requests": requests served}.
  anything else     answers the origin's name.
"""

import argparse
import hashlib
import http.server
import json
import socketserver
import sys
import threading
import time
import urllib.parse

STATS_LOCK = threading.Lock()
STATS = {"connections": 0, "requests": 0}
BODY_CACHE = {}


def bump(key):
    with STATS_LOCK:
        STATS[key] += 1


def pattern_body(size):
    """Deterministic, non-repeating bytes of the given size (cached per size)."""
    with STATS_LOCK:
        cached = BODY_CACHE.get(size)
    if cached is None:
        data = hashlib.shake_256(b"pingora-e2e").digest(size) if size else b""
        cached = (data, hashlib.sha256(data).hexdigest())
        with STATS_LOCK:
            BODY_CACHE[size] = cached
    return cached


class Origin(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # clients (and the proxy under test) may drop connections mid-request on purpose
        pass

    def get_request(self):
        conn = super().get_request()
        bump("connections")
        return conn


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "e2e-origin"
    origin_name = "origin"

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            parts = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ValueError("eof inside chunked body")
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    # trailers until the empty line
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(3)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send(self, status, body, extra=None, chunk=None):
        self.send_response(status)
        for key, value in (extra or {}).items():
            self.send_header(key, str(value))
        self.send_header("X-Origin-Name", self.origin_name)
        if chunk:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            view = memoryview(body)
            for start in range(0, len(body), chunk):
                piece = view[start:start + chunk]
                self.wfile.write(b"%x\r\n" % len(piece))
                self.wfile.write(piece)
                self.wfile.write(b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        self.wfile.flush()

    def handle_any(self):
        bump("requests")
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        path = url.path
        try:
            body = self.read_body()
        except ValueError:
            self.close_connection = True
            self.send(400, b"bad body\n")
            return
        seen = {
            "X-Seen-Host": self.headers.get("Host", ""),
            "X-Seen-TE": self.headers.get("Transfer-Encoding", ""),
            "X-Seen-CL": self.headers.get("Content-Length", ""),
            "X-Body-Len": len(body),
            "X-Body-Sha256": hashlib.sha256(body).hexdigest(),
        }
        if path == "/echo":
            self.send(200, body, seen)
        elif path == "/sink":
            self.send(200, b"%d %s" % (len(body), seen["X-Body-Sha256"].encode()), seen)
        elif path.startswith("/size/") or path.startswith("/chunked/"):
            size = int(path.rsplit("/", 1)[1])
            data, digest = pattern_body(size)
            chunk = None
            if path.startswith("/chunked/"):
                chunk = int(query.get("chunk", ["16384"])[0])
            self.send(200, data, {"X-Body-Sha256": digest}, chunk=chunk)
        elif path == "/slow":
            time.sleep(int(query.get("ms", ["500"])[0]) / 1000.0)
            self.send(200, b"slow")
        elif path == "/stats":
            with STATS_LOCK:
                payload = json.dumps(STATS).encode()
            self.send(200, payload, {"Content-Type": "application/json"})
        elif path == "/json":
            payload = json.dumps({"origin": self.origin_name, "ok": True}).encode()
            self.send(200, payload, {"Content-Type": "application/json"})
        else:
            self.send(200, self.origin_name.encode(), seen)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = handle_any


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", default="origin")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    Handler.origin_name = args.name
    server = Origin((args.host, args.port), Handler)
    print("LISTENING %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
