"""An HTTP/2 (h2c) client that downloads PATH slowly: it reads at most RATE bytes/s and
grants flow-control window only for what it consumed.

usage: slow_reader.py PORT PATH RATE
Prints JSON: status and body bytes received.
"""
import json
import socket
import sys
import time

import h2.config
import h2.connection
import h2.events


def main():
    port, path, rate = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "GET"), (":path", path), (":scheme", "http"),
                          (":authority", "slow.test")], end_stream=True)
    sock.sendall(conn.data_to_send())
    out = {"status": None, "bytes": 0, "error": None}
    started = time.monotonic()
    done = False
    while not done:
        chunk = sock.recv(32768)
        if not chunk:
            out["error"] = "closed"
            break
        for ev in conn.receive_data(chunk):
            if isinstance(ev, h2.events.ResponseReceived):
                out["status"] = int(dict(ev.headers)[b":status"])
            elif isinstance(ev, h2.events.DataReceived):
                out["bytes"] += len(ev.data)
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.ConnectionTerminated)):
                done = True
            elif isinstance(ev, h2.events.StreamReset):
                out["error"] = f"reset {ev.error_code}"
                done = True
        sock.sendall(conn.data_to_send())
        # stay under the rate
        ahead = out["bytes"] / rate - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
    out["seconds"] = round(time.monotonic() - started, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
