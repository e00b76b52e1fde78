"""A WebSocket client over HTTP/2 extended CONNECT (RFC 8441), built on the `h2` and `wsproto`
packages (the `websockets` package only speaks HTTP/1.1).

    ws_h2_client.py HOST PORT PATH COUNT

Opens the WebSocket on stream 1, sends COUNT messages (text and binary, one of 1 MiB), checks
every echo, closes with code 1000 and prints "OK <n> close=<code>".
"""
import socket
import sys

import h2.config
import h2.connection
import h2.events
import h2.settings
from wsproto.frame_protocol import CloseReason, FrameProtocol, Opcode

# the same messages as the HTTP/1.1 client, so one echo server checks both
from ws_echo import message

STREAM = 1


class Client:
    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=20)
        self.conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(16 * 1024 * 1024)
        self.flush()
        self.ws = FrameProtocol(client=True, extensions=[])
        self.headers = None
        self.ended = False
        self.reset_after_end = False
        self.settings_seen = False

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def pump(self):
        """Read once from the socket and handle the HTTP/2 events."""
        data = self.sock.recv(65536)
        if not data:
            raise RuntimeError("proxy closed the connection")
        for ev in self.conn.receive_data(data):
            if isinstance(ev, h2.events.RemoteSettingsChanged):
                self.settings_seen = True
            elif isinstance(ev, h2.events.ResponseReceived):
                self.headers = dict(ev.headers)
            elif isinstance(ev, h2.events.DataReceived):
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                self.ws.receive_bytes(ev.data)
            elif isinstance(ev, h2.events.StreamEnded):
                self.ended = True
            elif isinstance(ev, h2.events.StreamReset) and self.ended and ev.error_code == 0:
                # RFC 9113 8.1: after a complete response the server may reset with NO_ERROR
                # to say it reads no more of the request
                self.reset_after_end = True
            elif isinstance(ev, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                raise RuntimeError(f"stream failed: {ev} after headers {self.headers}")
        self.flush()

    def open(self, authority, path):
        while not self.settings_seen:
            self.pump()
        enabled = self.conn.remote_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL)
        if enabled != 1:
            raise RuntimeError("proxy did not enable extended CONNECT")
        self.conn.send_headers(
            STREAM,
            [
                (":method", "CONNECT"),
                (":protocol", "websocket"),
                (":scheme", "http"),
                (":path", path),
                (":authority", authority),
                ("sec-websocket-version", "13"),
            ],
        )
        self.flush()
        while self.headers is None:
            self.pump()
        if self.headers.get(":status") != "200":
            raise RuntimeError(f"extended CONNECT refused: {self.headers}")

    def send(self, data, end=False):
        """Send on stream 1, respecting the flow-control windows."""
        while data:
            window = min(
                self.conn.local_flow_control_window(STREAM), self.conn.max_outbound_frame_size
            )
            if window <= 0:
                self.pump()
                continue
            self.conn.send_data(STREAM, data[:window])
            data = data[window:]
            self.flush()
        if end:
            self.conn.end_stream(STREAM)
            self.flush()

    def recv_message(self):
        """The next complete data message (text or bytes); ('close', code) for a close."""
        parts, kind = [], None
        while True:
            for frame in self.ws.received_frames():
                if frame.opcode == Opcode.CLOSE:
                    return ("close", frame.payload[0])
                if frame.opcode in (Opcode.PING, Opcode.PONG):
                    continue
                if frame.opcode != Opcode.CONTINUATION:
                    kind = frame.opcode
                parts.append(frame.payload)
                if frame.message_finished:
                    if kind == Opcode.TEXT:
                        return "".join(parts)
                    return b"".join(parts)
            self.pump()


def main(host, port, path, count):
    c = Client(host, port)
    c.open(f"{host}:{port}", path)
    for i in range(count):
        want = message(i, count)
        c.send(c.ws.send_data(want, fin=True))
        got = c.recv_message()
        if got != want:
            print(f"MISMATCH at {i}", flush=True)
            sys.exit(2)
    c.send(c.ws.close(code=1000))
    got = c.recv_message()
    code = got[1] if isinstance(got, tuple) else None
    # the upstream closes its side after the close handshake: the proxy then ends the stream
    if not c.reset_after_end:
        c.send(b"", end=True)
    while not c.ended:
        c.pump()
    print(f"OK {count} close={int(code) if code is not None else 'none'}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
