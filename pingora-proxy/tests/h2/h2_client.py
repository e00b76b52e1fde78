"""A small HTTP/2 (h2c, prior knowledge) client on the python `h2` package.

usage: h2_client.py HOST PORT METHOD PATH [BODY_BYTES] [header:value ...] [trailer=name:value ...]
Prints one JSON object: status, headers, body length and text (if short), trailers,
the interim (1xx) heads received, and the GOAWAY/reset seen, if any.
"""
import json
import socket
import sys

import h2.config
import h2.connection
import h2.events


def main():
    host, port, method, path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    body = b""
    extra = []
    trailers = []
    for arg in sys.argv[5:]:
        if arg.startswith("trailer="):
            k, v = arg[len("trailer="):].split(":", 1)
            trailers.append((k, v))
        elif ":" in arg:
            k, v = arg.split(":", 1)
            extra.append((k, v))
        else:
            body = bytes(i % 251 for i in range(int(arg)))
    sock = socket.create_connection((host, port), timeout=30)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    headers = [(":method", method), (":path", path), (":scheme", "http"),
               (":authority", f"{host}:{port}")] + extra
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, headers, end_stream=not body)
    sock.sendall(conn.data_to_send())
    sent = 0
    out = {"status": None, "headers": {}, "body_len": 0, "trailers": {}, "error": None,
           "informational": []}
    data = bytearray()
    done = False
    while not done:
        # send the body as the window allows
        while sent < len(body):
            window = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
            if window <= 0:
                break
            piece = body[sent:sent + window]
            sent += len(piece)
            last = sent == len(body)
            conn.send_data(sid, piece, end_stream=last and not trailers)
            if last and trailers:
                conn.send_headers(sid, trailers, end_stream=True)
        sock.sendall(conn.data_to_send())
        chunk = sock.recv(65536)
        if not chunk:
            out["error"] = "closed"
            break
        for ev in conn.receive_data(chunk):
            if isinstance(ev, h2.events.ResponseReceived):
                for k, v in ev.headers:
                    k, v = k.decode(), v.decode()
                    if k == ":status":
                        out["status"] = int(v)
                    else:
                        out["headers"][k] = v
            elif isinstance(ev, h2.events.InformationalResponseReceived):
                info = {k.decode(): v.decode() for k, v in ev.headers}
                out["informational"].append(info)
            elif isinstance(ev, h2.events.DataReceived):
                data += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.TrailersReceived):
                out["trailers"] = {k.decode(): v.decode() for k, v in ev.headers}
            elif isinstance(ev, h2.events.StreamEnded):
                done = True
            elif isinstance(ev, h2.events.StreamReset):
                out["error"] = f"reset {ev.error_code}"
                done = True
            elif isinstance(ev, h2.events.ConnectionTerminated):
                out["error"] = f"goaway {ev.error_code}"
                done = True
        sock.sendall(conn.data_to_send())
    out["body_len"] = len(data)
    out["body_ok"] = bytes(data) == body
    if len(data) < 200:
        out["body"] = data.decode("latin-1")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
