"""WebSocket peers for the proxy tests, built on the `websockets` package.

    ws_echo.py server [--tls CERT KEY]   echo server on 127.0.0.1 (wss with --tls); prints
                                         "PORT <n>" once listening
    ws_echo.py client URL COUNT [--ca CA]
                                 sends COUNT messages (one of them 1 MiB, text and binary
                                 mixed), checks every echo, closes cleanly; prints "OK <n>";
                                 a wss:// URL is verified against CA
"""
import asyncio
import hashlib
import ssl
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

MAX = 8 * 1024 * 1024


async def echo(ws):
    # every message comes back unchanged, text as text and binary as binary
    async for msg in ws:
        await ws.send(msg)


async def server(tls):
    ctx = None
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls[0], tls[1])
    async with serve(echo, "127.0.0.1", 0, max_size=MAX, compression=None, ssl=ctx) as srv:
        port = srv.sockets[0].getsockname()[1]
        print(f"PORT {port}", flush=True)
        await asyncio.Future()


def message(i, count):
    if i == count // 2:
        # exactly 1 MiB of binary data, not a repeating pattern a bug could fake
        seed = hashlib.sha256(b"big").digest()
        out = bytearray()
        while len(out) < 1024 * 1024:
            seed = hashlib.sha256(seed).digest()
            out += seed
        return bytes(out[: 1024 * 1024])
    if i % 2:
        return f"text message {i} " + "x" * (i % 300)
    return bytes([(i + j) % 256 for j in range(i % 700 + 1)])


async def client(url, count, ca):
    ctx = ssl.create_default_context(cafile=ca) if ca else None
    async with connect(url, max_size=MAX, compression=None, open_timeout=10, ssl=ctx) as ws:
        # keep a few messages in flight to exercise both directions at once
        window = 8
        sent = 0
        received = 0
        while received < count:
            while sent < count and sent - received < window:
                await ws.send(message(sent, count))
                sent += 1
            got = await asyncio.wait_for(ws.recv(), timeout=20)
            want = message(received, count)
            if got != want:
                print(f"MISMATCH at {received}: {len(got)} vs {len(want)}", flush=True)
                sys.exit(2)
            received += 1
        await ws.close()
        code = ws.close_code
    print(f"OK {received} close={code}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        tls = sys.argv[3:5] if sys.argv[2:3] == ["--tls"] else None
        asyncio.run(server(tls))
    else:
        ca = sys.argv[5] if sys.argv[4:5] == ["--ca"] else None
        asyncio.run(client(sys.argv[2], int(sys.argv[3]), ca))
