"""A TLS origin that offers h2 and http/1.1 by ALPN but refuses every HTTP/2 request with
RST_STREAM(HTTP_1_1_REQUIRED); over HTTP/1.1 it answers "hello after downgrade".

usage: h11_required_origin.py CERT KEY
Prints its port on the first line; then one line per connection: its ALPN protocol.
"""
import socket
import ssl
import sys
import threading

import h2.config
import h2.connection
import h2.errors
import h2.events


def serve_h2(tls):
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    tls.sendall(conn.data_to_send())
    while True:
        data = tls.recv(65536)
        if not data:
            return
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.RequestReceived):
                conn.reset_stream(ev.stream_id, h2.errors.ErrorCodes.HTTP_1_1_REQUIRED)
        tls.sendall(conn.data_to_send())


def serve_h1(tls):
    buf = b""
    while True:
        data = tls.recv(65536)
        if not data:
            return
        buf += data
        while b"\r\n\r\n" in buf:
            _, buf = buf.split(b"\r\n\r\n", 1)
            body = b"hello after downgrade"
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nx-origin-proto: h1\r\n\r\n%s"
                        % (len(body), body))


def handle(sock, ctx):
    try:
        tls = ctx.wrap_socket(sock, server_side=True)
        proto = tls.selected_alpn_protocol()
        print(proto, flush=True)
        if proto == "h2":
            serve_h2(tls)
        else:
            serve_h1(tls)
    except (OSError, ssl.SSLError):
        pass


def main():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    print(listener.getsockname()[1], flush=True)
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=handle, args=(sock, ctx), daemon=True).start()


if __name__ == "__main__":
    main()
