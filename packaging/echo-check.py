#!/usr/bin/env python3
"""Serves one echo through an installed websocketd: starts `websocketd --port=0 cat` on
127.0.0.1, reads the port from its start-up line, does a WebSocket handshake, sends a masked
text frame and expects it back. Used by .ci/run after `dpkg -i`; exit status 0 on success."""
import base64, os, re, socket, subprocess, sys

binary = sys.argv[1] if len(sys.argv) > 1 else "/usr/bin/websocketd"
server = subprocess.Popen([binary, "--address=127.0.0.1", "--port=0", "cat"],
                          stdout=subprocess.PIPE, text=True)
try:
    port = None
    for line in server.stdout:
        m = re.search(r"Starting WebSocket server\s*: ws://127\.0\.0\.1:(\d+)/", line)
        if m:
            port = int(m.group(1))
            break
    assert port, "no start-up line"
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
               f"Sec-WebSocket-Key: {key}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    rest = head.split(b"\r\n\r\n", 1)[1]
    payload, mask = b"hello from the package", os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    s.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
    data = rest
    while len(data) < 2 + len(payload):
        data += s.recv(4096)
    assert data[0] == 0x81 and data[2:2 + data[1]] == payload, data
    print("echo through", binary, "ok")
finally:
    server.terminate()
    server.wait(timeout=10)
