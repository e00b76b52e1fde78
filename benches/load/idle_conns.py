#!/usr/bin/env python3
"""Hold N idle HTTP/1.1 keep-alive connections open against a proxy.

    idle_conns.py PORT N PATH

Opens N connections, sends one GET on each and reads its whole response (so each connection
is an established keep-alive connection the proxy has served), prints "READY <n>" and keeps
them idle until a line (or EOF) arrives on stdin, then closes them. Exits non-zero when fewer
than N connections could be set up.
"""
import resource
import selectors
import socket
import sys
import time

port, n, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = n + 256
if soft < want:
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), max(want, hard)))

request = f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()
sel = selectors.DefaultSelector()
socks = []
BATCH = 500


def complete(buf):
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return False
    length = 0
    for line in buf[:head_end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return len(buf) >= head_end + 4 + length


deadline = time.time() + 120
for start in range(0, n, BATCH):
    pending = {}
    for _ in range(min(BATCH, n - start)):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(request)
        s.setblocking(False)
        socks.append(s)
        pending[s.fileno()] = (s, bytearray())
        sel.register(s, selectors.EVENT_READ)
    while pending and time.time() < deadline:
        for key, _ in sel.select(timeout=1):
            s, buf = pending[key.fd]
            chunk = s.recv(65536)
            if not chunk:
                sys.exit(f"connection closed by the proxy after {len(socks)} connections")
            buf += chunk
            if complete(buf):
                sel.unregister(s)
                del pending[key.fd]
    if pending:
        sys.exit(f"{len(pending)} responses missing")
print(f"READY {len(socks)}", flush=True)
sys.stdin.readline()
for s in socks:
    s.close()
