#!/usr/bin/env python3
"""deploy/cluster/haproxy.cfg, run for real on loopback in front of two real `wagu` processes and
a stand-in for a draining node (its /readyz answers 503). Called by deploy/cluster/check.sh with
the addresses it started everything on (environment below); exits non-zero on any failure.

What it shows about the shipped file (only the `${…-default}` addresses differ from compose):
  1. the /readyz health checks put both wagu nodes UP and the 503 node (and the absent green
     slots) DOWN, so no request reaches them;
  2. a WebSocket goes through: hello, join a room created through the proxy, chat, acks;
  3. the blue-green weight switch of docs/DEPLOY.md works through the runtime API: weight 0
     sends no new request to a node, and a WebSocket already open on it keeps working;
  4. /metrics and /admin/… are refused at the proxy (403).

`check_haproxy_live.py stub PORT` runs the draining stand-in.

Environment: LB (host:port of the frontend), ADMIN (host:port of the runtime API), LOG (the
proxy's log file), Standard library only.
"""

import base64
import json
import os
import socket
import struct
import sys
import time
import urllib.error
import urllib.request

LB = os.environ.get("LB", "")
ADMIN = os.environ.get("ADMIN", "")
LOG = os.environ.get("LOG", "")
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def admin(cmd):
    host, port = ADMIN.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(cmd.encode() + b"\n")
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out.decode()


def servers():
    """{server: (status, check_status, check_code)} from `show stat`."""
    lines = admin("show stat").splitlines()
    head = lines[0].lstrip("# ").split(",")
    out = {}
    for line in lines[1:]:
        row = dict(zip(head, line.split(",")))
        if row.get("pxname") == "wagu" and row["svname"].startswith("wagu-"):
            out[row["svname"]] = (row["status"], row["check_status"], row["check_code"])
    return out


def http(method, path, body=None):
    req = urllib.request.Request(f"http://{LB}{path}", method=method, data=body,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class WebSocket:
    """Just enough RFC 6455 for a text conversation: handshake, masked text frames out,
    unfragmented frames in (pings answered)."""

    def __init__(self, hostport, path="/ws"):
        host, port = hostport.rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall((f"GET {path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.s.recv(1)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            head += chunk
        self.status = int(head.split(b" ", 2)[1])
        self.buf = b""

    def send(self, obj):
        data = json.dumps(obj).encode()
        mask = os.urandom(4)
        n = len(data)
        hdr = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n))
        self.s.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack(">H", self._read(2))
            elif n == 127:
                (n,) = struct.unpack(">Q", self._read(8))
            payload = self._read(n)
            op = b0 & 0x0F
            if op == 0x1:
                return json.loads(payload)
            if op == 0x8:
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
                raise ConnectionError(f"closed by the server ({code})")
            # ping (0x9), pong: nothing to do for a short conversation

    def until(self, pred, what, limit=50):
        seen = []
        for _ in range(limit):
            try:
                m = self.recv()
            except (TimeoutError, ConnectionError) as e:
                raise AssertionError(f"no {what} ({e}); got {seen}") from None
            if pred(m):
                return m
            seen.append(m)
        raise AssertionError(f"no {what} within {limit} messages: {seen}")

    def close(self):
        self.s.close()


def wait_states(want, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = {k: v[0] for k, v in servers().items()}
        if all(got.get(k) == v for k, v in want.items()):
            return got
        time.sleep(0.25)
    return {k: v[0] for k, v in servers().items()}


def log_lines_since(offset):
    with open(LOG, encoding="utf-8", errors="replace") as f:
        f.seek(offset)
        return f.read().splitlines()


def log_size():
    return os.path.getsize(LOG)


def main():
    # 1. health checks
    want = {"wagu-1": "UP", "wagu-2": "UP", "wagu-3": "DOWN",
            "wagu-4": "DOWN", "wagu-5": "DOWN", "wagu-6": "DOWN"}
    got = wait_states(want)
    check(got == want, f"health checks: {got}")
    st = servers()
    check(st["wagu-3"][1] == "L7STS" and st["wagu-3"][2] == "503",
          f"the draining node is out because /readyz said 503 ({st['wagu-3'][1]} {st['wagu-3'][2]})")

    # 2. a room through the proxy, a WebSocket through the proxy. The two nodes here share no
    # Redis (in the cluster they do), so a room lives on the node that created it: both requests
    # are steered to wagu-1 with the runbook's own command, weight 0 for wagu-2.
    check(admin("set weight wagu/wagu-2 0").strip() == "", "runtime API: set weight wagu/wagu-2 0")
    start = log_size()
    status, body = http("POST", "/api/rooms", json.dumps({"title": "through haproxy"}).encode())
    check(status in (200, 201), f"POST /api/rooms through the proxy: {status}")
    room = json.loads(body)
    ws = WebSocket(LB)
    check(ws.status == 101, f"WebSocket upgrade through the proxy: {ws.status}")
    ws.send({"type": "hello", "id": 1, "protocol": 1})
    ws.until(lambda m: m.get("type") == "ack" and m.get("id") == 1, "hello ack")
    ws.send({"type": "join", "id": 2, "share": room["share_token"], "name": "Check",
             "host_key": room["host_key"]})
    welcome = ws.until(lambda m: m.get("type") == "welcome", "welcome")
    ws.until(lambda m: m.get("type") == "ack" and m.get("id") == 2, "join ack")
    ws.send({"type": "chat", "id": 3, "text": "hello through haproxy"})
    ack = ws.until(lambda m: m.get("type") == "ack" and m.get("id") == 3, "chat ack")
    check(ack.get("seq", 0) > welcome.get("seq", 0),
          f"hello, join, chat through the proxy: chat acknowledged with seq {ack.get('seq')}")
    posts = [l for l in log_lines_since(start) if "POST /api/rooms" in l]
    check(len(posts) == 1 and "wagu/wagu-1 " in posts[0], "weight 0: the room was created on wagu-1")

    # 3. the blue-green switch: wagu-1 (holding the open WebSocket) to weight 0, wagu-2 to 100.
    check(admin("set weight wagu/wagu-2 100").strip() == "" and
          admin("set weight wagu/wagu-1 0").strip() == "",
          "runtime API: set weight wagu/wagu-2 100, wagu/wagu-1 0")
    start = log_size()
    statuses = [http("GET", "/api/streams")[0] for _ in range(8)]
    check(statuses == [200] * 8, f"GET /api/streams through the proxy: {statuses}")
    time.sleep(0.5)
    used = [l for l in log_lines_since(start) if "GET /api/streams" in l]
    check(len(used) == 8 and all("wagu/wagu-2 " in l for l in used),
          f"after the switch every new request went to wagu-2 ({len(used)} logged)")
    ws.send({"type": "chat", "id": 4, "text": "still here"})
    ack4 = ws.until(lambda m: m.get("type") == "ack" and m.get("id") == 4, "chat ack after the switch")
    check(ack4.get("seq", 0) > ack.get("seq", 0),
          f"the WebSocket already open on wagu-1 keeps working at weight 0 (seq {ack4.get('seq')})")
    # Roll back: the same two commands the other way round.
    admin("set weight wagu/wagu-1 100")
    admin("set weight wagu/wagu-2 0")
    start = log_size()
    for _ in range(4):
        http("GET", "/api/streams")
    time.sleep(0.5)
    used = [l for l in log_lines_since(start) if "GET /api/streams" in l]
    check(len(used) == 4 and all("wagu/wagu-1 " in l for l in used),
          "rolled back: every new request went to wagu-1 again")
    admin("set weight wagu/wagu-2 100")
    ws.close()

    # 4. not for the public
    check(http("GET", "/metrics")[0] == 403, "GET /metrics refused at the proxy")
    check(http("POST", "/admin/drain", b"")[0] == 403, "POST /admin/drain refused at the proxy")
    check(http("GET", "/healthz")[0] == 200, "GET /healthz through the proxy")

    print(f"haproxy live check: {len(failures)} failed", flush=True)
    sys.exit(1 if failures else 0)


def stub(port):
    """A node that is draining: alive (/healthz 200), not ready (/readyz 503)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            code = 200 if self.path == "/healthz" else 503
            self.send_response(code)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()


if __name__ == "__main__":
    if sys.argv[1:2] == ["stub"]:
        stub(int(sys.argv[2]))
    try:
        main()
    except (AssertionError, ConnectionError, OSError, KeyError, ValueError) as e:
        print(f"FAIL haproxy live check: {type(e).__name__}: {e}", flush=True)
        sys.exit(1)
