"""Holds N idle, logged-in PostgreSQL clients on one transport of a muxql (trust auth), prints
`ready` once all are in, and keeps them until stdin closes.

    python3 idle_transports.py tcp|tls|ws|wss HOST PORT USER DATABASE N

tcp: a plain connection; tls: SSLRequest then TLS (no certificate check: a throwaway one);
ws / wss: a WebSocket upgrade (over TLS for wss), then the protocol in binary messages.
Standard library only.
"""

import base64
import os
import socket
import ssl
import struct
import sys


def startup(user, database):
    body = struct.pack("!I", 196608)
    for k, v in (("user", user), ("database", database)):
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def ws_frame(payload):
    mask = os.urandom(4)
    head = bytes([0x82])
    n = len(payload)
    head += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def read_until(sock, marker):
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def connect(kind, host, port, user, database):
    sock = socket.create_connection((host, port))
    if kind == "tls":
        sock.sendall(struct.pack("!II", 8, 80877103))
        if sock.recv(1) != b"S":
            raise ConnectionError("TLS refused")
        sock = tls_context().wrap_socket(sock)
    if kind == "wss":
        sock = tls_context().wrap_socket(sock)
    packet = startup(user, database)
    if kind in ("ws", "wss"):
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                "GET /v2 HTTP/1.1\r\nHost: muxql\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                f"Sec-WebSocket-Key: {key}\r\n\r\n"
            ).encode()
        )
        read_until(sock, b"\r\n\r\n")
        packet = ws_frame(packet)
    sock.sendall(packet)
    # ReadyForQuery ('Z', length 5, 'I') ends the welcome; with WebSocket it sits in a frame.
    read_until(sock, b"Z\x00\x00\x00\x05I")
    return sock


def main():
    kind, host, port, user, database, n = sys.argv[1:7]
    held = [connect(kind, host, int(port), user, database) for _ in range(int(n))]
    print("ready", flush=True)
    sys.stdin.read()
    for s in held:
        s.close()


if __name__ == "__main__":
    main()
