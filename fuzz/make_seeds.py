#!/usr/bin/env python3
"""Writes the committed seed corpus fuzz/seeds/<target>/ (run from anywhere;
re-running rewrites the generated seeds, keeps crash regression seeds named
crash-*). Sources: the repository's SQL corpora, shipped policy packs, the
MySQL captures in protocols/src/mysql/fuzz.rs, and hand-built messages."""
import base64, gzip, hashlib, json, os, re, struct, zlib
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
ROOT = FUZZ.parent
SEEDS = FUZZ / "seeds"


def put(target, data, name=None):
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    name = name or hashlib.sha1(data).hexdigest()[:16]
    (d / name).write_bytes(data)


def pg_msg(tag, body):
    return tag + struct.pack("!I", len(body) + 4) + body


def cstr(s):
    return s.encode() + b"\0"


def clean():
    for d in SEEDS.glob("*"):
        for f in d.iterdir():
            if not f.name.startswith("crash-"):
                f.unlink()


def pg():
    params = b"".join(cstr(x) for x in ["user", "root", "database", "test", "application_name", "psql"]) + b"\0"
    startup = struct.pack("!II", len(params) + 8, 196608) + params
    put("pg_startup", startup)
    put("pg_startup", struct.pack("!II", 8, 80877103))  # SSLRequest
    put("pg_startup", struct.pack("!II", 8, 80877104))  # GSSENCRequest
    put("pg_startup", struct.pack("!IIII", 16, 80877102, 1234, 5678))  # CancelRequest
    q = pg_msg(b"Q", cstr("select 1; select * from users where id = 1"))
    parse = pg_msg(b"P", cstr("s1") + cstr("select $1::int") + struct.pack("!HI", 1, 23))
    bind = pg_msg(b"B", cstr("p1") + cstr("s1") + struct.pack("!HH", 1, 0) + struct.pack("!H", 1)
                  + struct.pack("!I", 2) + b"42" + struct.pack("!HH", 1, 0))
    execute = pg_msg(b"E", cstr("p1") + struct.pack("!I", 0))
    describe = pg_msg(b"D", b"S" + cstr("s1"))
    close = pg_msg(b"C", b"P" + cstr("p1"))
    sync = pg_msg(b"S", b"")
    fcall = pg_msg(b"F", struct.pack("!IH", 1234, 1) + struct.pack("!H", 0) + struct.pack("!H", 1)
                   + struct.pack("!i", -1) + struct.pack("!H", 0))
    copyfail = pg_msg(b"f", cstr("aborted"))
    put("pg_frontend", q)
    put("pg_frontend", parse + bind + describe + execute + sync)
    put("pg_frontend", close + sync + fcall + copyfail)
    fields = [("id", 23, 4), ("name", 25, -1), ("email", 1043, -1)]
    rd = struct.pack("!H", len(fields)) + b"".join(
        cstr(n) + struct.pack("!IhIhih", 16384, i + 1, oid, size, -1, 0) for i, (n, oid, size) in enumerate(fields))
    row = struct.pack("!H", 3) + struct.pack("!I", 1) + b"7" + struct.pack("!I", 5) + b"alice" + struct.pack("!i", -1)
    put("pg_rows", pg_msg(b"T", rd) + pg_msg(b"D", row) + pg_msg(b"D", row) + pg_msg(b"C", cstr("SELECT 2")))
    put("pg_rows", pg_msg(b"D", struct.pack("!H", 0)))


def mysql():
    src = (ROOT / "protocols/src/mysql/fuzz.rs").read_text()
    block = src[src.index("let captured = ["):src.index("];", src.index("let captured = ["))]
    packets = [bytes.fromhex(h) for h in re.findall(r'"([0-9a-f]+)"', block)]
    for p in packets:
        for t in ("mysql_handshake", "mysql_command", "mysql_rows"):
            put(t, p)
        put("mysql_packet", struct.pack("<I", len(p))[:3] + b"\x01" + p)
    stream = b"".join(struct.pack("<I", len(p))[:3] + bytes([i % 256]) + p for i, p in enumerate(packets[:6]))
    put("mysql_packet", stream)


def sql_entries():
    out = []
    pg_text = (ROOT / "tests/corpus/pg_differential.sql").read_text()
    out += [("pg", e.strip()) for e in pg_text.split("\n-- next\n")[1:] if e.strip()]
    my_text = (ROOT / "tests/mysql/corpus.sql").read_text()
    my = [e.strip() for e in re.split(r"\n-- next\n", my_text)[1:] if e.strip()]
    if len(my) < 5:
        my = [s.strip() for s in my_text.split(";\n") if s.strip() and not s.strip().startswith("--")]
    out += [("my", e) for e in my]
    return out


HOSTILE_SQL = [
    "select * from users where name = '' or 1=1 -- '",
    "select 1 union select password from pg_shadow",
    "select pg_sleep(10)",
    "copy t to program 'sh'",
    "select $$a$$ || $t$b;$t$; drop table x",
    "select /*! 50700 sleep(1) */ 1",
    "select 'a\\'; drop table t; -- '",
    "select " + "(" * 200 + "1" + ")" * 200,
    "select * from t where a in (select b from (select c from (select d from u)))",
    "with recursive r(n) as (select 1 union all select n+1 from r) select * from r",
]


def sql():
    entries = sql_entries()
    pg = [e for d, e in entries if d == "pg"][::6][:60] + HOSTILE_SQL
    my = [e for d, e in entries if d == "my"][::4][:60] + HOSTILE_SQL
    for i, e in enumerate(pg):
        put("sql_postgres", bytes([i % 2]) + e.encode())
    for i, e in enumerate(my):
        put("sql_mysql", bytes([i % 8]) + e.encode())


CLASSIFICATION = """version = 1
[levels]
"pii.*" = 3

[[column]]
table = "public.citizens"
column = "id_number"
tags = ["pii.id_number"]
"""


def policies():
    for pack in ("default", "strict-allowlist"):
        files = sorted((ROOT / "policies/packs" / pack).glob("*.toml"))
        for f in files:
            put("policy_rules", f.read_text() + "\n#---\n\n#---\n" + CLASSIFICATION)
        put("policy_rules", files[0].read_text() + "\n#---\n" + files[-1].read_text())
    api = sorted((ROOT / "policies/packs/api-example").glob("*.toml"))
    put("policy_api", "GET /api/citizens/1\n" + "\n#---\n".join(f.read_text() for f in api))
    for f in api:
        put("policy_api", f.read_text())
    put("policy_api", (ROOT / "policies/src/api/testdata/citizens.openapi.yaml").read_text())
    routes = re.findall(r'^\s*(?:path|route)\s*=\s*"([^"]+)"', "".join(f.read_text() for f in api), re.M)
    lines = []
    for r in routes:
        concrete = re.sub(r"\{[^}]+\}", "42", r)
        lines += [f"GET {concrete}", f"POST {concrete}/x", f"GET {concrete.replace('/', '/%2F', 1)}"]
    put("api_route", "\n".join(lines or ["GET /"]))
    put("api_route", "GET /api/../api/citizens/%41%42?x=1\nDELETE //\nGET /api/citizens/%ZZ")


def http():
    docs = [
        {"data": [{"id": 1, "name": "张三", "id_number": "110101199003077777", "phone": "13800138000"}], "total": 1},
        [1, 2.5e10, -0.0, True, False, None, "a\\\"b\u00e9\U0001F600"],
        {"a": {"b": {"c": [[[[{"d": "x"}]]]]}}},
        "just a string",
    ]
    for d in docs:
        put("http_json", b"\x07" + json.dumps(d, ensure_ascii=False).encode())
    put("http_json", b"\x03" + b"[" * 40 + b"]" * 40)
    put("http_json", b"\x10" + b'{"s":"\\ud800","n":1e999999,"x":[1,]}')
    body = json.dumps(docs[0]).encode()
    put("http_encoding", b"gzip\n" + gzip.compress(body))
    put("http_encoding", b"deflate\n" + zlib.compress(body))
    put("http_encoding", b"x-gzip\n" + gzip.compress(b"\0" * 100000))
    put("http_encoding", b"br\n" + body)
    put("http_encoding", b"identity\n" + body)

    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    jwt = ".".join([b64(b'{"alg":"RS256","typ":"JWT","kid":"k1"}'),
                    b64(b'{"sub":"tax-bureau","exp":4102444800,"iat":1700000000}'), b64(b"sig" * 20)])
    put("http_request", f"Bearer {jwt}\napi_key=dx_{b64(b'k' * 32)}&page=1\napplication/json; charset=utf-8")
    put("http_request", f"bearer {jwt}\napi_key=%41%2b+x&api_key=2\n{jwt}")
    put("http_request", f"Basic YTpi\na=1&&b&c=%zz\napplication/problem+json")


if __name__ == "__main__":
    clean()
    pg()
    mysql()
    sql()
    policies()
    http()
    total = sum(f.stat().st_size for f in SEEDS.rglob("*") if f.is_file())
    print(f"seeds: {sum(1 for _ in SEEDS.rglob('*') if _.is_file())} files, {total} bytes")
