#!/usr/bin/env python3
"""citizens_api.py: the synthetic "citizen records" HTTP API that danxia's HTTP
end-to-end tests and benchmarks put behind danxia.

Owns: a deterministic generator of fake citizens (Chinese names, valid GB 11643
identity numbers, valid mainland mobile numbers) and a small HTTP/1.1 server
(stdlib only) that serves them as JSON in the shapes a data-sharing API has:
paged lists, single records, a chunked export, a search with a JSON body, and
misbehaving endpoints (malformed JSON, huge and slow responses, gzip).
It must never hold a whole streamed body in memory (exports of a million
records are generated and written chunk by chunk) and never bind anything but
127.0.0.1. Every record is fake: the same seed gives the same records, so a
test can compute what it expects by importing this module:

    python3 -c 'import citizens_api as c; print(c.person(42, 7))'

Run:  python3 tests/upstream/citizens_api.py --port 0 [--seed 42] [--records 10000] [--tls CERT KEY]
It prints `READY <port>` on stdout once it listens. See README.md beside it.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import gzip
import json
import random
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# ---------------------------------------------------------------- limits

DEFAULT_SEED = 42
DEFAULT_RECORDS = 10_000
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 20
MAX_SEARCH_LIMIT = 1000
DEFAULT_SEARCH_LIMIT = 20
MAX_EXPORT = 10_000_000  # /api/v1/export?n= upper bound
MAX_HUGE_MB = 10_240  # /api/v1/huge?mb= upper bound (10 GiB)
MAX_SLOW_MS = 600_000  # /api/v1/slow?ms= upper bound (10 minutes)
MAX_REQUEST_BODY = 16 * 1024 * 1024  # larger request bodies are refused (413)
STREAM_CHUNK_BYTES = 64 * 1024  # HTTP chunk size of streamed bodies
REQUEST_LOG_LEN = 1000  # /__requests keeps this many
MIB = 1024 * 1024

# ---------------------------------------------------------------- generator

# Districts of Guangzhou with their GB/T 2260 administrative division codes
# (the first six digits of an identity number issued there) and a weight.
DISTRICTS = [
    ("越秀区", "440104", 15),
    ("海珠区", "440105", 18),
    ("荔湾区", "440103", 12),
    ("天河区", "440106", 22),
    ("白云区", "440111", 20),
    ("黄埔区", "440112", 13),
]
_STREETS = {
    "越秀区": ["中山五路", "北京路", "东风中路", "解放北路"],
    "海珠区": ["江南大道", "新港西路", "工业大道", "宝岗大道"],
    "荔湾区": ["中山八路", "龙津西路", "芳村大道", "康王中路"],
    "天河区": ["天河路", "体育西路", "黄埔大道", "珠江东路"],
    "白云区": ["白云大道", "机场路", "同和路", "广园中路"],
    "黄埔区": ["开创大道", "科学大道", "港湾路", "大沙地东路"],
}
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁"
    "任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
_COMPOUND_SURNAMES = ["欧阳", "司马", "诸葛", "上官", "司徒"]
_GIVEN_MALE = "伟强磊军勇杰涛明超刚平辉鹏华飞鑫波斌宇浩凯健俊帆帅旭宁龙林欣峰志国建文"
_GIVEN_FEMALE = "芳娜敏静丽艳娟霞秀玲桂英红梅琳燕萍雪慧婷颖倩洁佳琪晶妍雯欣怡璐蕾丹"
# Mobile number prefixes in use by the three carriers (and 166/19x).
_PHONE_PREFIXES = (
    "130 131 132 133 134 135 136 137 138 139 145 147 150 151 152 153 155 156 157 158 159 "
    "166 170 171 173 175 176 177 178 180 181 182 183 184 185 186 187 188 189 191 198 199"
).split()
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_BIRTH_FIRST = datetime.date(1940, 1, 1).toordinal()
_BIRTH_LAST = datetime.date(2008, 12, 31).toordinal()
_DISTRICT_WEIGHT_TOTAL = sum(w for _, _, w in DISTRICTS)


def id_check_char(first17: str) -> str:
    """The GB 11643-1999 check character (ISO 7064 MOD 11-2) of 17 digits."""
    return _ID_CHECK[sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS)) % 11]


def valid_id_number(s: str) -> bool:
    """True for an 18-character identity number with a valid date and checksum."""
    if len(s) != 18 or not s[:17].isdigit() or s[17] not in "0123456789X":
        return False
    try:
        datetime.date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return False
    return id_check_char(s[:17]) == s[17]


def valid_phone(s: str) -> bool:
    """True for an 11-digit mainland mobile number 1[3-9]xxxxxxxxx."""
    return len(s) == 11 and s.isdigit() and s[0] == "1" and s[1] in "3456789"


def district_of(seed: int, pid: int) -> str:
    """The district of record `pid`: cheap (no full record) so that the
    district index over all records is quick to build."""
    r = zlib.crc32(f"{seed}/{pid}/district".encode()) % _DISTRICT_WEIGHT_TOTAL
    for name, _, w in DISTRICTS:
        if r < w:
            return name
        r -= w
    return DISTRICTS[-1][0]  # not reached


def person(seed: int, pid: int) -> dict:
    """Record `pid` (any positive int) for `seed`: the same on every call and
    every machine (random.Random seeded with a str hashes it with SHA-512)."""
    rng = random.Random(f"citizens/{seed}/{pid}")
    district = district_of(seed, pid)
    area = next(code for name, code, _ in DISTRICTS if name == district)
    male = rng.random() < 0.5
    if rng.random() < 0.02:
        surname = rng.choice(_COMPOUND_SURNAMES)
    else:
        surname = rng.choice(_SURNAMES)
    pool = _GIVEN_MALE if male else _GIVEN_FEMALE
    given = "".join(rng.choice(pool) for _ in range(rng.choice((1, 2, 2))))
    birth = datetime.date.fromordinal(rng.randint(_BIRTH_FIRST, _BIRTH_LAST))
    # Sequence code: the last of its three digits is odd for men, even for women.
    seq = rng.randrange(0, 100) * 10 + rng.choice((1, 3, 5, 7, 9) if male else (0, 2, 4, 6, 8))
    first17 = f"{area}{birth:%Y%m%d}{seq:03d}"
    phone = rng.choice(_PHONE_PREFIXES) + f"{rng.randrange(10**8):08d}"
    street = rng.choice(_STREETS[district])
    address = (
        f"广东省广州市{district}{street}{rng.randint(1, 399)}号"
        f"{rng.randint(1, 20)}栋{rng.randint(1, 33)}{rng.randint(1, 8):02d}室"
    )
    return {
        "id": pid,
        "name": surname + given,
        "gender": "男" if male else "女",
        "birth": birth.isoformat(),
        "id_number": first17 + id_check_char(first17),
        "phone": phone,
        "address": address,
        "district": district,
    }


def dumps(obj) -> str:
    """The server's JSON text: UTF-8 characters as they are (no \\u escapes)."""
    return json.dumps(obj, ensure_ascii=False)


class Citizens:
    """The record set of one seed: ids 1..records. Indexes (district of every
    record, names for search) are built on first use and cached."""

    def __init__(self, seed: int = DEFAULT_SEED, records: int = DEFAULT_RECORDS):
        self.seed = seed
        self.records = records
        self._lock = threading.Lock()
        self._by_district: dict[str, list[int]] | None = None
        self._names: list[str] | None = None

    def get(self, pid: int) -> dict | None:
        if 1 <= pid <= self.records:
            return person(self.seed, pid)
        return None

    def by_district(self) -> dict[str, list[int]]:
        with self._lock:
            if self._by_district is None:
                idx: dict[str, list[int]] = {name: [] for name, _, _ in DISTRICTS}
                for pid in range(1, self.records + 1):
                    idx[district_of(self.seed, pid)].append(pid)
                self._by_district = idx
            return self._by_district

    def page(self, page: int, size: int, district: str | None = None) -> dict:
        """`{"page","size","total","items"}`; pages count from 1."""
        start = (page - 1) * size
        if district is None:
            total = self.records
            ids = range(start + 1, min(start + size, total) + 1)
        else:
            all_ids = self.by_district().get(district, [])
            total = len(all_ids)
            ids = all_ids[start : start + size]
        return {"page": page, "size": size, "total": total, "items": [person(self.seed, i) for i in ids]}

    def stats(self) -> dict:
        return {
            "districts": {name: len(ids) for name, ids in self.by_district().items()},
            "total": self.records,
        }

    def search(self, name_prefix: str, limit: int) -> dict:
        """Records whose name starts with `name_prefix`, in id order."""
        with self._lock:
            if self._names is None:
                self._names = [person(self.seed, i)["name"] for i in range(1, self.records + 1)]
            names = self._names
        items = []
        for i, name in enumerate(names, start=1):
            if len(items) >= limit:
                break
            if name.startswith(name_prefix):
                items.append(person(self.seed, i))
        return {"items": items}


def export_pieces(seed: int, n: int):
    """The text of `[p1,p2,...,pn]` (records 1..n) as an iterator of pieces,
    one record per piece: the caller groups them into chunks."""
    yield "["
    for pid in range(1, n + 1):
        yield ("," if pid > 1 else "") + dumps(person(seed, pid))
    yield "]"


def huge_pieces(seed: int, total_bytes: int):
    """A top-level JSON array of person records totalling about `total_bytes`
    (UTF-8). Fast: 1000 records are generated once and their text is reused
    with new sequential ids, so this streams at memory speed."""
    templates = []
    for pid in range(1, 1001):
        text = dumps(person(seed, pid))
        prefix = f'{{"id": {pid}, '
        assert text.startswith(prefix)
        templates.append(text[len(prefix) :])
    yield "["
    written = 1
    pid = 0
    while written < total_bytes - 1:
        pid += 1
        piece = ("," if pid > 1 else "") + f'{{"id": {pid}, ' + templates[(pid - 1) % 1000]
        written += len(piece.encode())
        yield piece
    yield "]"


# ---------------------------------------------------------------- server

BROKEN_BODY = b'{"items":[{"id":1,"name":"x"}, {"id":2,'
# /api/v1/broken?mode=nested: arrays nested this deep (200 KB of JSON).
NESTED_DEPTH = 100_000


class BadRequest(Exception):
    """A client error answered with 400 and the message."""


def _int_param(params: dict, name: str, default: int | None, lo: int, hi: int) -> int:
    values = params.get(name)
    if not values:
        if default is None:
            raise BadRequest(f"query parameter {name} is required")
        return default
    try:
        v = int(values[0])
    except ValueError:
        raise BadRequest(f"query parameter {name} must be an integer") from None
    if not lo <= v <= hi:
        raise BadRequest(f"query parameter {name} must be in {lo}..{hi}")
    return v


class Handler(BaseHTTPRequestHandler):
    """One connection: HTTP/1.1 keep-alive, one request after the other."""

    protocol_version = "HTTP/1.1"
    server_version = "citizens-api/1"
    # Set by make_server on the subclass.
    citizens: Citizens
    request_log: collections.deque
    verbose = False

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes: without NODELAY, Nagle
        # plus the client's delayed ACK would add ~40 ms to keep-alive requests.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):  # noqa: A002 (BaseHTTPRequestHandler's name)
        if self.verbose:
            super().log_message(format, *args)

    # ------------------------------------------------------------ plumbing

    def _read_body(self) -> bytes:
        """The request body (Content-Length or chunked), read completely so
        that the connection stays usable for the next request."""
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            out = bytearray()
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise BadRequest("truncated chunked body")
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise BadRequest("bad chunk size") from None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(out)
                if len(out) + size > MAX_REQUEST_BODY:
                    self.close_connection = True
                    raise BadRequest("request body too large")
                out += self.rfile.read(size)
                self.rfile.readline(1024)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BODY:
            self.close_connection = True
            raise BadRequest("request body too large")
        return self.rfile.read(length) if length > 0 else b""

    def _gzip_wanted(self, params: dict) -> bool:
        accept = self.headers.get("Accept-Encoding", "").lower()
        asked = params.get("gzip", [""])[0] == "1" or self.headers.get("X-Test-Gzip", "") == "1"
        return "gzip" in accept and asked

    def _send_json(self, status: int, obj=None, body: bytes | None = None, gz: bool = False):
        if body is None:
            body = dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        if gz:
            body = gzip.compress(body)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Vary", "Accept-Encoding")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_stream(self, pieces, gz: bool):
        """A 200 with a chunked body made of `pieces` (str), grouped into
        chunks of about STREAM_CHUNK_BYTES; with `gz`, one gzip stream whose
        data is flushed (Z_SYNC_FLUSH) at every chunk."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        if gz:
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Vary", "Accept-Encoding")
        self.end_headers()
        if self.command == "HEAD":
            return
        comp = zlib.compressobj(6, zlib.DEFLATED, 31) if gz else None

        def chunk(data: bytes):
            if data:
                self.wfile.write(b"%x\r\n%b\r\n" % (len(data), data))

        buf: list[bytes] = []
        size = 0
        try:
            for piece in pieces:
                b = piece.encode()
                buf.append(b)
                size += len(b)
                if size >= STREAM_CHUNK_BYTES:
                    data = b"".join(buf)
                    buf, size = [], 0
                    chunk(comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH) if comp else data)
            data = b"".join(buf)
            chunk(comp.compress(data) + comp.flush() if comp else data)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _record(self, parsed):
        if parsed.path.startswith("/__"):
            return
        headers: dict[str, str] = {}
        for k, v in self.headers.items():
            k = k.lower()
            headers[k] = f"{headers[k]}, {v}" if k in headers else v
        self.request_log.append(
            {
                "time": time.time(),
                "method": self.command,
                "path": parsed.path,
                "query": parsed.query,
                "params": urllib.parse.parse_qs(parsed.query, keep_blank_values=True),
                "headers": headers,
                "header_list": [[k, v] for k, v in self.headers.items()],
            }
        )

    # ------------------------------------------------------------ dispatch

    def do_GET(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def do_PATCH(self):
        self._dispatch()

    def _dispatch(self):
        parsed = urllib.parse.urlsplit(self.path)
        self._record(parsed)
        params = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        try:
            body = self._read_body()
            self._route(parsed.path, params, body)
        except BadRequest as e:
            self._send_json(400, {"error": str(e)})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _route(self, path: str, params: dict, body: bytes):
        c = self.citizens
        gz = self._gzip_wanted(params)
        method = "GET" if self.command == "HEAD" else self.command
        parts = path.rstrip("/").split("/") if path != "/" else [""]
        get_routes = {
            "/api/v1/persons": self._persons,
            "/api/v1/export": self._export,
            "/api/v1/stats": lambda p, g: self._send_json(200, c.stats(), gz=g),
            "/api/v1/broken": self._broken,
            "/api/v1/huge": self._huge,
            "/api/v1/slow": self._slow,
            "/__requests": self._requests,
        }
        if path in get_routes:
            if method == "DELETE" and path == "/__requests":
                self.request_log.clear()
                return self._send_json(200, {"cleared": True})
            if method != "GET":
                return self._send_json(405, {"error": "method not allowed"})
            return get_routes[path](params, gz)
        if len(parts) == 5 and parts[:4] == ["", "api", "v1", "persons"]:
            if method != "GET":
                return self._send_json(405, {"error": "method not allowed"})
            p = c.get(int(parts[4])) if parts[4].isdigit() else None
            if p is None:
                return self._send_json(404, {"error": "not found"})
            return self._send_json(200, p, gz=gz)
        if path == "/api/v1/search":
            if method != "POST":
                return self._send_json(405, {"error": "method not allowed"})
            return self._search(body, gz)
        self._send_json(404, {"error": "not found"})

    # ------------------------------------------------------------ endpoints

    def _persons(self, params, gz):
        page = _int_param(params, "page", 1, 1, 10**9)
        size = _int_param(params, "size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        district = params.get("district", [None])[0]
        self._send_json(200, self.citizens.page(page, size, district), gz=gz)

    def _export(self, params, gz):
        n = _int_param(params, "n", None, 0, MAX_EXPORT)
        self._send_stream(export_pieces(self.citizens.seed, n), gz)

    def _huge(self, params, gz):
        mb = _int_param(params, "mb", None, 1, MAX_HUGE_MB)
        self._send_stream(huge_pieces(self.citizens.seed, mb * MIB), gz)

    def _slow(self, params, gz):
        ms = _int_param(params, "ms", None, 0, MAX_SLOW_MS)
        time.sleep(ms / 1000)
        self._send_json(200, {}, gz=gz)

    def _broken(self, params, gz):
        """200 + application/json + a JSON text that stops in the middle.
        mode=chunked sends it chunked (and ends the chunked stream properly);
        mode=cut promises more bytes in Content-Length than it sends and
        closes the connection (an upstream dying mid-body)."""
        mode = params.get("mode", ["length"])[0]
        if mode == "nested":
            # Valid JSON, hostile shape: NESTED_DEPTH arrays deep.
            body = b'{"items":[' + b"[" * NESTED_DEPTH + b"]" * NESTED_DEPTH + b"]}"
            return self._send_json(200, body=body, gz=gz)
        if mode == "chunked":
            return self._send_stream(iter([BROKEN_BODY.decode()]), gz)
        if mode == "cut":
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(BROKEN_BODY) + 1000))
            self.end_headers()
            self.wfile.write(BROKEN_BODY)
            self.close_connection = True
            return
        self._send_json(200, body=BROKEN_BODY, gz=gz)

    def _search(self, body: bytes, gz: bool):
        try:
            req = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("body must be a JSON object") from None
        if not isinstance(req, dict):
            raise BadRequest("body must be a JSON object")
        prefix = req.get("name_prefix", "")
        limit = req.get("limit", DEFAULT_SEARCH_LIMIT)
        if not isinstance(prefix, str):
            raise BadRequest("name_prefix must be a string")
        if not isinstance(limit, int) or isinstance(limit, bool) or not 0 <= limit <= MAX_SEARCH_LIMIT:
            raise BadRequest(f"limit must be an integer in 0..{MAX_SEARCH_LIMIT}")
        self._send_json(200, self.citizens.search(prefix, limit), gz=gz)

    def _requests(self, params, gz):
        """The last REQUEST_LOG_LEN requests (oldest first); ?clear=1 empties
        the log after answering (so does DELETE /__requests)."""
        log = list(self.request_log)
        if params.get("clear", [""])[0] == "1":
            self.request_log.clear()
        self._send_json(200, log)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024
    # An ssl.SSLContext when serving HTTPS (--tls), else None.
    tls = None

    def get_request(self):
        sock, addr = super().get_request()
        if self.tls is not None:
            # The handshake runs in the request's thread (finish_request), so
            # a client that never completes it cannot stall accept().
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def finish_request(self, request, client_address):
        if self.tls is not None:
            request.settimeout(30)
            try:
                request.do_handshake()
            except (OSError, ssl.SSLError):
                return  # a failed handshake is the client's business (danxia's wrong-CA test)
            request.settimeout(None)
        super().finish_request(request, client_address)


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server context for --tls: TLS 1.2+, the given PEM certificate chain
    and key, HTTP/1.1 by ALPN (this server speaks nothing else)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def make_server(port: int = 0, seed: int = DEFAULT_SEED, records: int = DEFAULT_RECORDS, verbose=False) -> Server:
    """A bound (not yet serving) server on 127.0.0.1:port; port 0 picks one
    (server.server_address[1]). Call serve_forever() in a thread to embed it."""
    handler = type(
        "CitizensHandler",
        (Handler,),
        {
            "citizens": Citizens(seed, records),
            "request_log": collections.deque(maxlen=REQUEST_LOG_LEN),
            "verbose": verbose,
        },
    )
    return Server(("127.0.0.1", port), handler)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Synthetic citizen-records JSON API (test upstream for danxia).")
    ap.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1; 0 picks a free one")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"record generator seed (default {DEFAULT_SEED})")
    ap.add_argument(
        "--records", type=int, default=DEFAULT_RECORDS, help=f"number of records, ids 1..N (default {DEFAULT_RECORDS})"
    )
    ap.add_argument("--verbose", action="store_true", help="log every request to stderr")
    ap.add_argument(
        "--tls", nargs=2, metavar=("CERT", "KEY"), help="serve HTTPS with this PEM certificate (chain) and key"
    )
    args = ap.parse_args(argv)
    if args.records < 0:
        ap.error("--records must be >= 0")
    server = make_server(args.port, args.seed, args.records, args.verbose)
    if args.tls:
        server.tls = tls_context(*args.tls)
    print(f"READY {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
