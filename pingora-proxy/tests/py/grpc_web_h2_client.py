"""A gRPC-web client over HTTP/2 (h2c with prior knowledge), as browsers on HTTP/2 send it,
built on `httpx`.

    grpc_web_h2_client.py URL

POSTs one binary gRPC-web unary call ("hello") and prints "FRAMES <json>" with the response's
frames (flag, payload as text) and "CT <content-type>".
"""
import json
import struct
import sys

import httpx


def main(url):
    body = b"\x00" + struct.pack(">I", 5) + b"hello"
    with httpx.Client(http1=False, http2=True, timeout=20) as client:
        r = client.post(
            url,
            content=body,
            headers={"content-type": "application/grpc-web", "x-grpc-web": "1"},
        )
    print(f"HTTP {r.http_version} {r.status_code}", flush=True)
    print(f"CT {r.headers.get('content-type')}", flush=True)
    data, frames = r.content, []
    while data:
        flag, length = data[0], struct.unpack(">I", data[1:5])[0]
        frames.append((flag, data[5 : 5 + length].decode("latin-1")))
        data = data[5 + length :]
    print("FRAMES " + json.dumps(frames), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
