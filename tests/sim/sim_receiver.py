"""The simulation's alert webhook: an HTTP server on 127.0.0.1 that accepts
danxia's alert POSTs (one JSON object per request; a JSON array of them is
accepted too), answers 200, and appends each alert as one JSON line
`{"received": <real unix time>, "alert": {...}}` to a file.

Owns only that file. It keeps running across danxia restarts (both danxia
processes post to the same URL) until SIGTERM/SIGINT. Anything that is not
JSON is kept as `{"received": …, "invalid": "<text>"}` so the report can say
so instead of losing it.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: Request bodies larger than this are refused (413): an alert is a few KB.
MAX_BODY = 4 << 20


class AlertSink:
    def __init__(self, path: str):
        self.path = path
        self.lock = threading.Lock()
        self.count = 0
        self.f = open(path, "a", encoding="utf-8")

    def add(self, record: dict):
        line = json.dumps(record, ensure_ascii=False)
        with self.lock:
            self.f.write(line + "\n")
            self.f.flush()
            self.count += 1

    def close(self):
        with self.lock:
            self.f.close()


def _read_body(h: BaseHTTPRequestHandler) -> bytes:
    if "chunked" in (h.headers.get("Transfer-Encoding") or "").lower():
        out = b""
        while True:
            size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                h.rfile.readline()
                return out
            out += h.rfile.read(size)
            h.rfile.readline()
            if len(out) > MAX_BODY:
                raise ValueError("body too large")
    n = int(h.headers.get("Content-Length") or 0)
    if n > MAX_BODY:
        raise ValueError("body too large")
    return h.rfile.read(n)


def make_handler(sink: AlertSink):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # TCP_NODELAY: danxia delivers alerts one at a time on a keep-alive
        # connection; with Nagle's algorithm each small answer would wait
        # for the peer's delayed ACK (~40 ms), 25 alerts a second at most.
        disable_nagle_algorithm = True

        def _answer(self, code: int, body: bytes = b"ok\n"):
            # One write: status line, headers and body together.
            head = (f"HTTP/1.1 {code} {'OK' if code == 200 else 'Error'}\r\n"
                    f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n")
            self.wfile.write(head.encode("ascii") + body)
            self.wfile.flush()

        def do_POST(self):  # noqa: N802 — http.server's naming
            now = time.time()
            try:
                body = _read_body(self)
            except ValueError:
                self._answer(413, b"too large\n")
                return
            try:
                doc = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                sink.add({"received": now, "path": self.path,
                          "invalid": body.decode("utf-8", "replace")[:2000]})
                self._answer(200)
                return
            for item in (doc if isinstance(doc, list) else [doc]):
                sink.add({"received": now, "path": self.path, "alert": item})
            self._answer(200)

        def do_GET(self):  # noqa: N802
            # Health and count, for whoever started us.
            self._answer(200, f"{sink.count}\n".encode())

        def log_message(self, fmt, *args):  # quiet: one line per alert would flood
            pass

    return Handler


def serve(port: int, out: str, host: str = "127.0.0.1", log=print) -> None:
    sink = AlertSink(out)
    server = ThreadingHTTPServer((host, port), make_handler(sink))
    server.daemon_threads = True

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log(f"receiver: listening on http://{host}:{server.server_address[1]}/alerts, writing {out}")
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
        sink.close()
        log(f"receiver: stopped after {sink.count} alerts")


def read_alerts(path: str):
    """(alerts, invalid): the alert objects in receipt order, each with
    `_received` (real time) added, and the bodies that were not JSON."""
    alerts, invalid = [], []
    try:
        f = open(path, encoding="utf-8")
    except FileNotFoundError:
        return alerts, invalid
    with f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written
            if "alert" in rec and isinstance(rec["alert"], dict):
                a = dict(rec["alert"])
                a["_received"] = rec.get("received")
                alerts.append(a)
            else:
                invalid.append(rec)
    return alerts, invalid
