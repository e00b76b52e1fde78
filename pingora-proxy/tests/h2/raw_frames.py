"""Hand-made HTTP/2 frames (h2c prior knowledge) to probe the proxy's protections.

usage: raw_frames.py PORT MODE [N]
  streams N       open N streams that stay open; report RST_STREAM codes
  bigheader N     one request with a header value of N bytes; report the status
  continuation N  HEADERS then up to N CONTINUATION frames of 16 KiB that never end
  rapid N         N streams each opened and cancelled at once (CVE-2023-44487),
                  then one normal request on the same connection
  malformed       on one connection: an upper-case header name (stream 1), a body
                  longer than its content-length (3), a Host that is not the
                  :authority (5), then a normal request (7)
Prints a JSON report: server settings, statuses, resets, GOAWAY code, frames sent.
"""
import json
import socket
import struct
import sys
import threading
import time

from hpack import Decoder, Encoder, NeverIndexedHeaderTuple

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST, SETTINGS, PING, GOAWAY, WINDOW, CONT = 0, 1, 3, 4, 6, 7, 8, 9
END_STREAM, END_HEADERS = 0x1, 0x4


def frame(kind, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", sid) + payload


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
        self.enc = Encoder()
        self.dec = Decoder()
        self.dec.max_allowed_table_size = 65536
        self.report = {"settings": {}, "status": {}, "resets": {}, "goaway": None,
                       "closed": False, "sent": 0}
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self.read_loop, daemon=True)
        self.reader.start()

    def send(self, data):
        with self.lock:
            self.sock.sendall(data)

    def read_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def read_loop(self):
        try:
            while True:
                head = self.read_exact(9)
                length = int.from_bytes(head[:3], "big")
                kind, flags = head[3], head[4]
                sid = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
                payload = self.read_exact(length)
                if kind == SETTINGS and not flags & 1:
                    for i in range(0, len(payload), 6):
                        ident, value = struct.unpack(">HI", payload[i:i + 6])
                        self.report["settings"][str(ident)] = value
                    self.send(frame(SETTINGS, 1, 0))
                elif kind == HEADERS:
                    for k, v in self.dec.decode(payload):
                        if k == ":status":
                            self.report["status"][str(sid)] = int(v)
                elif kind == RST:
                    self.report["resets"][str(sid)] = struct.unpack(">I", payload)[0]
                elif kind == GOAWAY:
                    self.report["goaway"] = struct.unpack(">I", payload[4:8])[0]
                elif kind == PING and not flags & 1:
                    self.send(frame(PING, 1, 0, payload))
                elif kind == DATA and length:
                    self.send(frame(WINDOW, 0, 0, struct.pack(">I", length))
                              + frame(WINDOW, 0, sid, struct.pack(">I", length)))
        except (EOFError, OSError):
            self.report["closed"] = True

    def request_block(self, method="GET", path="/", extra=()):
        headers = [(":method", method), (":scheme", "http"), (":path", path),
                   (":authority", "proxy.test")] + list(extra)
        return self.enc.encode(headers)


def main():
    port, mode = int(sys.argv[1]), sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    c = Conn(port)
    time.sleep(0.2)
    sid = 1
    try:
        if mode == "streams":
            for _ in range(n):
                c.send(frame(HEADERS, END_HEADERS, sid, c.request_block("POST", "/echo")))
                c.report["sent"] += 1
                sid += 2
            time.sleep(1.5)
        elif mode == "bigheader":
            block = c.request_block(extra=[NeverIndexedHeaderTuple("x-big", "b" * n)])
            first, rest = block[:16384], block[16384:]
            flags = END_STREAM | (0 if rest else END_HEADERS)
            c.send(frame(HEADERS, flags, sid, first))
            while rest:
                piece, rest = rest[:16384], rest[16384:]
                c.send(frame(CONT, 0 if rest else END_HEADERS, sid, piece))
            time.sleep(1.5)
        elif mode == "continuation":
            c.send(frame(HEADERS, END_STREAM, sid, c.request_block()))
            piece = Encoder().encode([NeverIndexedHeaderTuple("x-flood", "f" * 16000)],
                                     huffman=False)
            for _ in range(n):
                if c.report["goaway"] is not None or c.report["closed"]:
                    break
                c.send(frame(CONT, 0, sid, piece))
                c.report["sent"] += 1
            time.sleep(1.0)
        elif mode == "malformed":
            c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1,
                         c.request_block(extra=[("X-Upper", "1")])))
            c.send(frame(HEADERS, END_HEADERS, 3,
                         c.request_block("POST", "/echo", [("content-length", "3")]))
                   + frame(DATA, END_STREAM, 3, b"abcdef"))
            c.send(frame(HEADERS, END_HEADERS | END_STREAM, 5,
                         c.request_block(extra=[("host", "other.test")])))
            c.send(frame(HEADERS, END_HEADERS | END_STREAM, 7, c.request_block()))
            time.sleep(1.0)
        elif mode == "rapid":
            for i in range(n):
                if c.report["goaway"] is not None or c.report["closed"]:
                    break
                c.send(frame(HEADERS, END_HEADERS | END_STREAM, sid, c.request_block())
                       + frame(RST, 0, sid, struct.pack(">I", 8)))
                c.report["sent"] += 1
                sid += 2
            time.sleep(1.0)
            if c.report["goaway"] is None and not c.report["closed"]:
                c.send(frame(HEADERS, END_HEADERS | END_STREAM, sid, c.request_block()))
                c.report["after_sid"] = sid
                time.sleep(1.0)
    except OSError as e:
        c.report["send_error"] = str(e)
        time.sleep(0.5)
    print(json.dumps(c.report))


if __name__ == "__main__":
    main()
