"""An h2c (prior knowledge) origin on the python `h2` package, one thread per connection.

usage: h2_origin.py [--max-streams N] [--goaway-after K] [--delay SECONDS]
Prints its port on the first line. Every response is 200 with body
"conn=<connection number> stream=<id>", after DELAY seconds, except:
  /stats   -> "conns=<n> max_concurrent=<most streams open at once on one connection>"
  /pings   -> "pings=<PING frames received on this connection>"
  /hints   -> the usual body, after a `103 Early Hints` head with a `link` header
With --goaway-after K, a connection answers K requests, then sends GOAWAY naming the
last answered stream (the others were not processed) and closes.
"""
import argparse
import socket
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.settings

LOCK = threading.Lock()
STATS = {"conns": 0, "max_concurrent": 0}


def serve(sock, number, args):
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    settings = {}
    if args.max_streams:
        settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = args.max_streams
    conn.initiate_connection()
    if settings:
        conn.update_settings(settings)
    sock.sendall(conn.data_to_send())
    sock.settimeout(0.01)
    pending = []  # (due, stream id, path)
    open_streams = set()
    answered = 0
    pings = 0
    while True:
        try:
            data = sock.recv(65536)
            if not data:
                return
        except socket.timeout:
            data = b""
        except OSError:
            return
        try:
            events = conn.receive_data(data) if data else []
        except Exception:
            return
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                path = dict(ev.headers).get(b":path", b"/").decode()
                open_streams.add(ev.stream_id)
                with LOCK:
                    STATS["max_concurrent"] = max(STATS["max_concurrent"], len(open_streams))
                pending.append((time.monotonic() + args.delay, ev.stream_id, path))
            elif isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.PingReceived):
                pings += 1
            elif isinstance(ev, h2.events.StreamReset):
                open_streams.discard(ev.stream_id)
                pending = [p for p in pending if p[1] != ev.stream_id]
            elif isinstance(ev, h2.events.ConnectionTerminated):
                sock.sendall(conn.data_to_send())
                return
        now = time.monotonic()
        due = sorted([p for p in pending if p[0] <= now], key=lambda p: p[1])
        pending = [p for p in pending if p[0] > now]
        for _, sid, path in due:
            if args.goaway_after and answered >= args.goaway_after:
                continue
            if path == "/stats":
                with LOCK:
                    body = f"conns={STATS['conns']} max_concurrent={STATS['max_concurrent']}"
            elif path == "/pings":
                body = f"pings={pings}"
            else:
                body = f"conn={number} stream={sid}"
            body = body.encode()
            if path == "/hints":
                conn.send_headers(sid, [(":status", "103"), ("link", "</a.css>; rel=preload")])
            conn.send_headers(sid, [(":status", "200"), ("content-length", str(len(body)))])
            conn.send_data(sid, body, end_stream=True)
            open_streams.discard(sid)
            answered += 1
            last = sid
            if args.goaway_after and answered >= args.goaway_after:
                conn.close_connection(last_stream_id=last)
                sock.sendall(conn.data_to_send())
                time.sleep(0.05)
                sock.close()
                return
        out = conn.data_to_send()
        if out:
            try:
                sock.sendall(out)
            except OSError:
                return


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--max-streams", type=int, default=0)
    p.add_argument("--goaway-after", type=int, default=0)
    p.add_argument("--delay", type=float, default=0.0)
    args = p.parse_args()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    print(listener.getsockname()[1], flush=True)
    while True:
        sock, _ = listener.accept()
        with LOCK:
            STATS["conns"] += 1
            number = STATS["conns"]
        threading.Thread(target=serve, args=(sock, number, args), daemon=True).start()


if __name__ == "__main__":
    main()
