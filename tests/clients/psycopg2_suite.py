#!/usr/bin/env python3
"""Real-client checks with psycopg2 (libpq) against one PostgreSQL DSN.

Usage:
    psycopg2_suite.py DSN [--direct DIRECT_DSN]

DSN is normally danxia's PostgreSQL listener; DIRECT_DSN is the same database
reached without the proxy. With --direct, every error the suite provokes is
raised on both connections and all error fields (pgcode, pgerror and every
`diag` attribute) must be equal; without it the errors are checked against
the expected SQLSTATEs only (the suite says so on its output).

Each check prints "ok NAME" or "FAIL NAME: reason" (plus a traceback). The
script exits 1 when any check failed, 2 on a usage error, 0 otherwise.

Every object the suite creates lives in a schema named after the process id
(danxia_suite_<pid>), dropped at the end, so concurrent runs do not collide.

The Rust test tests/tests/pg_psycopg2.rs relies on some facts of this script
when it reads danxia's audit afterwards: the cancelled statement is
`select pg_sleep(30)`, the COPY checks move exactly 100000 rows in each
direction, and the unique-violation check provokes SQLSTATE 23505.
"""

import argparse
import datetime
import decimal
import hashlib
import io
import os
import random
import select
import sys
import threading
import time
import traceback
import uuid

try:
    import psycopg2
    import psycopg2.errors
    import psycopg2.extensions
    import psycopg2.extras
except ImportError:
    sys.exit("psycopg2 is not installed: run `python3 -m pip install psycopg2-binary`")

EXT = psycopg2.extensions
SCHEMA = f"danxia_suite_{os.getpid()}"
APP_NAME = f"danxia-suite-{os.getpid()}"

# Sizes named once so the Rust test and this script agree on them.
NAMED_CURSOR_ROWS = 10_000
COPY_ROWS = 100_000
BIG_TEXT_BYTES = 10 * 1024 * 1024
EXECUTEMANY_ROWS = 1_000
CANCEL_DEADLINE_S = 5.0
NOTIFY_DEADLINE_S = 5.0


class CheckFailed(Exception):
    """A check saw something other than what it expected."""


def expect(cond, message):
    """Fail the current check with `message` unless `cond` holds."""
    if not cond:
        raise CheckFailed(message)


def expect_eq(actual, expected, what):
    """Fail the current check unless actual == expected, showing both."""
    if actual != expected:
        raise CheckFailed(f"{what}: expected {expected!r}, got {actual!r}")


class Suite:
    """Holds the DSNs and opens connections for the checks."""

    def __init__(self, dsn, direct_dsn):
        self.dsn = dsn
        self.direct_dsn = direct_dsn
        self._opened = []

    def connect(self, dsn=None, **kwargs):
        """Open a connection (closed at the end of the check that opened it)."""
        conn = psycopg2.connect(dsn or self.dsn, **kwargs)
        self._opened.append(conn)
        return conn

    def close_all(self):
        for conn in self._opened:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing is best effort here
                pass
        self._opened = []


def tx_status(conn):
    return conn.info.transaction_status


# ---------------------------------------------------------------------------
# Checks. Each takes the Suite and raises on failure.
# ---------------------------------------------------------------------------


def check_transactions(s):
    conn = s.connect()
    expect_eq(conn.autocommit, False, "default autocommit")
    cur = conn.cursor()
    cur.execute(f"create table {SCHEMA}.tx (id int primary key, v text)")
    conn.commit()
    expect_eq(tx_status(conn), EXT.TRANSACTION_STATUS_IDLE, "status after commit")

    # Commit makes the row durable.
    cur.execute(f"insert into {SCHEMA}.tx values (1, 'committed')")
    expect_eq(tx_status(conn), EXT.TRANSACTION_STATUS_INTRANS, "status inside transaction")
    conn.commit()

    # Rollback discards it.
    cur.execute(f"insert into {SCHEMA}.tx values (2, 'rolled back')")
    conn.rollback()
    expect_eq(tx_status(conn), EXT.TRANSACTION_STATUS_IDLE, "status after rollback")

    # Savepoints: keep 3, drop 4, keep 5.
    cur.execute(f"insert into {SCHEMA}.tx values (3, 'before savepoint')")
    cur.execute("savepoint sp1")
    cur.execute(f"insert into {SCHEMA}.tx values (4, 'after savepoint')")
    cur.execute("rollback to savepoint sp1")
    expect_eq(tx_status(conn), EXT.TRANSACTION_STATUS_INTRANS, "status after rollback to savepoint")
    cur.execute(f"insert into {SCHEMA}.tx values (5, 'after rollback to savepoint')")
    cur.execute("release savepoint sp1")
    conn.commit()
    cur.execute(f"select id from {SCHEMA}.tx order by id")
    expect_eq([r[0] for r in cur.fetchall()], [1, 3, 5], "rows after commit/rollback/savepoint")
    conn.commit()

    # An error inside a transaction puts it into the failed state ...
    cur.execute(f"insert into {SCHEMA}.tx values (6, 'doomed')")
    try:
        cur.execute("select 1/0")
        raise CheckFailed("select 1/0 did not fail")
    except psycopg2.errors.DivisionByZero:
        pass
    expect_eq(tx_status(conn), EXT.TRANSACTION_STATUS_INERROR, "status after error in transaction")
    try:
        cur.execute("select 1")
        raise CheckFailed("statement in failed transaction did not fail")
    except psycopg2.errors.InFailedSqlTransaction as e:
        expect_eq(e.pgcode, "25P02", "pgcode in failed transaction")
    # ... and rollback recovers.
    conn.rollback()
    expect_eq(tx_status(conn), EXT.TRANSACTION_STATUS_IDLE, "status after rollback of failed tx")
    cur.execute(f"select count(*) from {SCHEMA}.tx where id = 6")
    expect_eq(cur.fetchone()[0], 0, "row of the failed transaction")
    conn.rollback()

    # Error inside a savepoint, recovered by rolling back to it.
    cur.execute(f"insert into {SCHEMA}.tx values (7, 'kept')")
    cur.execute("savepoint sp2")
    try:
        cur.execute(f"insert into {SCHEMA}.tx values (7, 'duplicate')")
        raise CheckFailed("duplicate insert did not fail")
    except psycopg2.errors.UniqueViolation:
        pass
    expect_eq(tx_status(conn), EXT.TRANSACTION_STATUS_INERROR, "status after error after savepoint")
    cur.execute("rollback to savepoint sp2")
    expect_eq(tx_status(conn), EXT.TRANSACTION_STATUS_INTRANS, "status after rollback to sp2")
    conn.commit()
    cur.execute(f"select v from {SCHEMA}.tx where id = 7")
    expect_eq(cur.fetchone()[0], "kept", "row kept across savepoint rollback")
    conn.commit()


def check_named_cursor(s):
    conn = s.connect()
    # Iteration in batches of itersize.
    cur = conn.cursor(name="suite_named_iter")
    cur.itersize = 1000
    cur.execute("select g, md5(g::text) from generate_series(1, %s) g", (NAMED_CURSOR_ROWS,))
    count = 0
    total = 0
    for row in cur:
        count += 1
        total += row[0]
        if row[1] != hashlib.md5(str(row[0]).encode()).hexdigest():
            raise CheckFailed(f"row {row[0]}: md5 column {row[1]!r} is wrong")
    expect_eq(count, NAMED_CURSOR_ROWS, "rows from named cursor")
    expect_eq(total, NAMED_CURSOR_ROWS * (NAMED_CURSOR_ROWS + 1) // 2, "sum of rows")
    cur.close()
    conn.commit()

    # Explicit fetchmany with an odd batch size, then fetchall of the rest.
    cur = conn.cursor(name="suite_named_fetchmany")
    cur.execute("select g from generate_series(1, %s) g", (NAMED_CURSOR_ROWS,))
    got = []
    while len(got) < 7_000:
        batch = cur.fetchmany(777)
        expect(batch, "fetchmany returned nothing before the end")
        got.extend(r[0] for r in batch)
    got.extend(r[0] for r in cur.fetchall())
    expect_eq(got, list(range(1, NAMED_CURSOR_ROWS + 1)), "rows via fetchmany/fetchall")
    cur.close()
    conn.commit()


def copy_payload():
    """100000 COPY text lines with escapes, unicode and NULLs; deterministic."""
    lines = []
    for i in range(1, COPY_ROWS + 1):
        if i % 1000 == 0:
            text = r"\N"  # NULL
        elif i % 7 == 0:
            text = f"tab\\there newline\\nline backslash\\\\ {i}"
        elif i % 11 == 0:
            text = f"中文 😀 e\u0301 {i}"
        else:
            text = f"row {i}"
        lines.append(f"{i}\t{text}\t{i}.25\n")
    return "".join(lines)


def check_copy(s):
    conn = s.connect()
    cur = conn.cursor()
    cur.execute(f"create table {SCHEMA}.copy_t (id int primary key, t text, f float8)")
    conn.commit()
    payload = copy_payload()
    cur.copy_expert(f"COPY {SCHEMA}.copy_t FROM STDIN", io.StringIO(payload))
    expect_eq(cur.rowcount, COPY_ROWS, "rowcount of COPY FROM STDIN")
    conn.commit()
    cur.execute(f"select count(*), count(t) from {SCHEMA}.copy_t")
    expect_eq(cur.fetchone(), (COPY_ROWS, COPY_ROWS - COPY_ROWS // 1000), "rows and non-NULL texts after COPY")
    conn.commit()

    out = io.StringIO()
    cur.copy_expert(f"COPY (select * from {SCHEMA}.copy_t order by id) TO STDOUT", out)
    expect_eq(cur.rowcount, COPY_ROWS, "rowcount of COPY TO STDOUT")
    got = out.getvalue()
    if got != payload:
        a, b = got.splitlines(), payload.splitlines()
        first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        raise CheckFailed(
            f"COPY TO output differs from COPY FROM input: {len(a)} vs {len(b)} lines, "
            f"first difference at line {first + 1}: "
            f"{a[first] if first < len(a) else None!r} vs {b[first] if first < len(b) else None!r}"
        )
    conn.commit()

    # A COPY FROM that fails on bad data must leave the connection usable.
    try:
        cur.copy_expert(f"COPY {SCHEMA}.copy_t FROM STDIN", io.StringIO("1\tduplicate\t1\n"))
        raise CheckFailed("COPY of a duplicate key did not fail")
    except psycopg2.errors.UniqueViolation:
        pass
    conn.rollback()
    cur.execute("select 1")
    expect_eq(cur.fetchone()[0], 1, "select after failed COPY")
    conn.commit()


def check_listen_notify(s):
    listener = s.connect()
    listener.autocommit = True
    notifier = s.connect()
    notifier.autocommit = True
    channel = f"danxia_suite_chan_{os.getpid()}"
    listener.cursor().execute(f"LISTEN {channel}")
    ncur = notifier.cursor()
    ncur.execute("select pg_backend_pid()")
    notifier_pid = ncur.fetchone()[0]
    ncur.execute("select pg_notify(%s, %s)", (channel, "payload 中文 1"))
    ncur.execute(f"NOTIFY {channel}, 'payload 2'")

    got = []
    deadline = time.monotonic() + NOTIFY_DEADLINE_S
    while len(got) < 2:
        remaining = deadline - time.monotonic()
        expect(remaining > 0, f"only {len(got)} of 2 notifications within {NOTIFY_DEADLINE_S}s: {got!r}")
        readable, _, _ = select.select([listener], [], [], remaining)
        if readable:
            listener.poll()
            while listener.notifies:
                got.append(listener.notifies.pop(0))
    expect_eq([(n.channel, n.payload) for n in got], [(channel, "payload 中文 1"), (channel, "payload 2")], "notifications")
    # The pid in a notification is the backend's own pid, as the notifier sees
    # it with pg_backend_pid().
    expect_eq([n.pid for n in got], [notifier_pid, notifier_pid], "notifying backend pid")
    listener.cursor().execute(f"UNLISTEN {channel}")


def check_cancel(s):
    conn = s.connect()
    conn.autocommit = True
    tag = f"danxia_suite_cancel_{os.getpid()}"
    query = "select pg_sleep(30)"
    watcher = s.connect()
    watcher.autocommit = True
    state = {"cancelled_at": None, "error": None}

    def cancel_when_running():
        # Wait until the backend reports the statement active, then cancel,
        # so that the cancel cannot arrive before the query.
        try:
            wcur = watcher.cursor()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                wcur.execute(
                    "select count(*) from pg_stat_activity where application_name = %s and state = 'active' and query = %s",
                    (tag, query),
                )
                if wcur.fetchone()[0] > 0:
                    break
                time.sleep(0.05)
            else:
                state["error"] = "the pg_sleep statement never showed as active in pg_stat_activity"
            state["cancelled_at"] = time.monotonic()
            conn.cancel()
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            state["error"] = f"cancel thread: {e!r}"

    cur = conn.cursor()
    cur.execute("set application_name = %s", (tag,))
    thread = threading.Thread(target=cancel_when_running, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        cur.execute(query)
        raise CheckFailed(f"{query} finished after {time.monotonic() - started:.1f}s without being cancelled")
    except psycopg2.errors.QueryCanceled as e:
        ended = time.monotonic()
        expect_eq(e.pgcode, "57014", "pgcode of the cancelled statement")
        expect_eq(e.diag.message_primary, "canceling statement due to user request", "message of the cancel")
    thread.join(5)
    expect(state["error"] is None, str(state["error"]))
    expect(state["cancelled_at"] is not None, "cancel was never sent")
    waited = ended - state["cancelled_at"]
    expect(waited <= CANCEL_DEADLINE_S, f"QueryCanceled came {waited:.2f}s after conn.cancel(), limit {CANCEL_DEADLINE_S}s")
    expect_eq(tx_status(conn), EXT.TRANSACTION_STATUS_IDLE, "status after cancel")
    # The connection is usable afterwards.
    cur.execute("select 42")
    expect_eq(cur.fetchone()[0], 42, "select after cancel")
    cur.execute("reset application_name")


ERROR_CASES = [
    # (name, sql, expected pgcode)
    ("unique_violation", f"insert into {SCHEMA}.err_t values (1, 'dup')", "23505"),
    ("division_by_zero", "select 1/0", "22012"),
    ("undefined_table", f"select * from {SCHEMA}.no_such_table_here", "42P01"),
    ("syntax_error", "selec 1 frm nowhere", "42601"),
]

DIAG_FIELDS = [
    "column_name", "constraint_name", "context", "datatype_name", "internal_position",
    "internal_query", "message_detail", "message_hint", "message_primary", "schema_name",
    "severity", "severity_nonlocalized", "source_file", "source_function", "source_line",
    "sqlstate", "statement_position", "table_name",
]


def error_fields(conn, sql):
    """Run `sql`, which must fail; return every error field psycopg2 exposes."""
    cur = conn.cursor()
    try:
        cur.execute(sql)
    except psycopg2.Error as e:
        fields = {"class": type(e).__name__, "pgcode": e.pgcode, "pgerror": e.pgerror}
        for f in DIAG_FIELDS:
            fields["diag." + f] = getattr(e.diag, f)
        conn.rollback()
        return fields
    conn.rollback()
    raise CheckFailed(f"{sql!r} did not fail")


def check_errors(s):
    conn = s.connect()
    cur = conn.cursor()
    cur.execute(f"create table {SCHEMA}.err_t (id int primary key, v text)")
    cur.execute(f"insert into {SCHEMA}.err_t values (1, 'first')")
    conn.commit()
    direct = s.connect(s.direct_dsn) if s.direct_dsn else None
    if direct is None:
        print("note errors: no --direct DSN given; comparing SQLSTATEs only, not every field")
    for name, sql, code in ERROR_CASES:
        got = error_fields(conn, sql)
        expect_eq(got["pgcode"], code, f"{name}: pgcode")
        expect(got["diag.message_primary"], f"{name}: empty primary message")
        if name == "unique_violation":
            expect_eq(got["diag.message_detail"], "Key (id)=(1) already exists.", f"{name}: detail")
            expect_eq(got["diag.constraint_name"], "err_t_pkey", f"{name}: constraint")
        if direct is not None:
            want = error_fields(direct, sql)
            diffs = [f"{k}: proxy {got[k]!r} vs direct {want[k]!r}" for k in want if got.get(k) != want[k]]
            expect(not diffs, f"{name}: error fields differ from direct: " + "; ".join(diffs))
        # The connection stays usable after each error.
        cur.execute("select 1")
        conn.rollback()


def check_types(s):
    conn = s.connect()
    psycopg2.extras.register_uuid(conn_or_curs=conn)
    cur = conn.cursor()
    tz = datetime.timezone(datetime.timedelta(hours=8))
    binary = bytes(range(256))
    values = [
        ("int small", 0, "int4"),
        ("int negative", -1, "int4"),
        ("int4 max", 2**31 - 1, "int4"),
        ("int8 max", 2**63 - 1, "int8"),
        ("int8 min", -(2**63), "int8"),
        ("float", 1.5, "float8"),
        ("float tiny", 5e-324, "float8"),
        ("float inf", float("inf"), "float8"),
        ("decimal", decimal.Decimal("12345678901234567890.123456789012345"), "numeric"),
        ("decimal negative", decimal.Decimal("-0.000000000000000000001"), "numeric"),
        ("text unicode", "中文 汉字 😀🎉 e\u0301 a\u0308 Ωmega", "text"),
        ("text quotes", "it's \"quoted\" \\ back\\slash; -- not a comment /* nor this */", "text"),
        ("text binaryish", "".join(chr(c) for c in range(1, 256)), "text"),
        ("bytea all bytes", psycopg2.Binary(binary), "bytea"),
        ("date", datetime.date(2024, 2, 29), "date"),
        ("time", datetime.time(23, 59, 58, 123456), "time"),
        ("timestamp", datetime.datetime(1999, 12, 31, 23, 59, 59, 999999), "timestamp"),
        ("timestamptz", datetime.datetime(2024, 6, 1, 12, 30, 0, 500000, tzinfo=tz), "timestamptz"),
        ("interval", datetime.timedelta(days=3, hours=4, minutes=5, seconds=6, microseconds=7), "interval"),
        ("int array", [1, None, 3], "int4[]"),
        ("2d array", [[1, 2], [3, 4]], "int4[]"),
        ("text array", ["a", "b,c", 'd"e', None, "中文", ""], "text[]"),
        ("json", psycopg2.extras.Json({"a": [1, 2, {"b": None}], "中": "文"}), "json"),
        ("jsonb", psycopg2.extras.Json({"k": "v", "n": 1.5, "t": True}), "jsonb"),
        ("null", None, "text"),
        ("bool true", True, "bool"),
        ("bool false", False, "bool"),
        ("uuid", uuid.UUID("12345678-1234-5678-1234-567812345678"), "uuid"),
    ]
    for name, value, pgtype in values:
        cur.execute(f"select (%s)::{pgtype}", (value,))
        got = cur.fetchone()[0]
        if isinstance(value, psycopg2.extras.Json):
            want = value.adapted
        elif isinstance(value, psycopg2.extensions.Binary):
            want = binary
            got = bytes(got)
        else:
            want = value
        expect_eq(got, want, f"round trip of {name} as {pgtype}")
    conn.rollback()

    # The same values through a table with many parameters in one statement.
    cur.execute(
        f"create table {SCHEMA}.types_t (i int8, f float8, n numeric, t text, b bytea, d date, "
        f"ts timestamptz, iv interval, a int4[], j jsonb, nul text, bo bool, u uuid)"
    )
    row = (
        2**40, -2.25, decimal.Decimal("3.14159265358979323846264338327950288"), "Zeichen 字 🚀",
        psycopg2.Binary(binary), datetime.date(1970, 1, 1),
        datetime.datetime(2000, 1, 1, 0, 0, tzinfo=datetime.timezone.utc),
        datetime.timedelta(microseconds=1), [[1, None], [None, 4]],
        psycopg2.extras.Json([1, "two", {"three": 3}]), None, True,
        uuid.UUID("00000000-0000-0000-0000-000000000001"),
    )
    cur.execute(f"insert into {SCHEMA}.types_t values ({', '.join(['%s'] * len(row))})", row)
    cur.execute(f"select * from {SCHEMA}.types_t")
    got = list(cur.fetchone())
    got[4] = bytes(got[4])
    want = list(row)
    want[4] = binary
    want[9] = row[9].adapted
    expect_eq(got, want, "row of many types through a table")
    conn.commit()


def check_big_text(s):
    conn = s.connect()
    cur = conn.cursor()
    rng = random.Random(20240601)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \n\t'\"\\;"
    big = "".join(rng.choices(alphabet, k=BIG_TEXT_BYTES))
    cur.execute(f"create table {SCHEMA}.big_t (id int, t text)")
    cur.execute(f"insert into {SCHEMA}.big_t values (1, %s)", (big,))
    conn.commit()
    cur.execute(f"select t, md5(t), length(t) from {SCHEMA}.big_t where id = 1")
    got, server_md5, length = cur.fetchone()
    expect_eq(length, BIG_TEXT_BYTES, "server-side length of 10 MB text")
    expect_eq(server_md5, hashlib.md5(big.encode()).hexdigest(), "server-side md5 of 10 MB text")
    expect(got == big, "10 MB text came back different")
    # And as a literal echoed straight back.
    cur.execute("select %s::text", (big,))
    expect(cur.fetchone()[0] == big, "10 MB parameter echoed back differently")
    conn.commit()


def check_executemany(s):
    conn = s.connect()
    cur = conn.cursor()
    cur.execute(f"create table {SCHEMA}.many_t (id int primary key, name text, score numeric)")
    rows = [(i, f"name {i} 名", decimal.Decimal(i) / 4) for i in range(1, EXECUTEMANY_ROWS + 1)]
    cur.executemany(f"insert into {SCHEMA}.many_t values (%s, %s, %s)", rows)
    conn.commit()
    cur.execute(f"select count(*), sum(id), sum(score) from {SCHEMA}.many_t")
    n, ids, score = cur.fetchone()
    expect_eq(n, EXECUTEMANY_ROWS, "rows after executemany")
    expect_eq(ids, EXECUTEMANY_ROWS * (EXECUTEMANY_ROWS + 1) // 2, "sum of ids")
    expect_eq(score, sum(r[2] for r in rows), "sum of scores")
    cur.execute(f"select * from {SCHEMA}.many_t order by id")
    expect_eq(cur.fetchall(), rows, "rows read back")
    conn.commit()


def check_notices(s):
    conn = s.connect()
    conn.autocommit = True
    cur = conn.cursor()
    del conn.notices[:]
    cur.execute("do $$ begin raise notice 'hello %', 42; raise warning 'careful: %', 'w'; end $$")
    expect_eq(conn.notices, ["NOTICE:  hello 42\n", "WARNING:  careful: w\n"], "notices from DO block")
    del conn.notices[:]
    cur.execute(f"drop table if exists {SCHEMA}.never_existed")
    expect_eq(
        conn.notices,
        ['NOTICE:  table "never_existed" does not exist, skipping\n'],
        "notice from drop if exists",
    )
    # A notice in the middle of a result set.
    del conn.notices[:]
    cur.execute(
        f"create function {SCHEMA}.noisy(i int) returns int language plpgsql as "
        "$$ begin raise notice 'row %', i; return i * 2; end $$"
    )
    cur.execute(f"select {SCHEMA}.noisy(g) from generate_series(1, 3) g")
    expect_eq([r[0] for r in cur.fetchall()], [2, 4, 6], "rows of the noisy function")
    expect_eq(conn.notices, [f"NOTICE:  row {i}\n" for i in (1, 2, 3)], "notices during a result set")


def check_autocommit(s):
    writer = s.connect()
    reader = s.connect()
    reader.autocommit = True
    rcur = reader.cursor()
    wcur = writer.cursor()
    wcur.execute(f"create table {SCHEMA}.ac_t (id int)")
    writer.commit()

    def visible():
        rcur.execute(f"select count(*) from {SCHEMA}.ac_t")
        return rcur.fetchone()[0]

    # autocommit off: invisible until commit.
    wcur.execute(f"insert into {SCHEMA}.ac_t values (1)")
    expect_eq(tx_status(writer), EXT.TRANSACTION_STATUS_INTRANS, "status with autocommit off")
    expect_eq(visible(), 0, "row visible before commit")
    writer.commit()
    expect_eq(visible(), 1, "row visible after commit")

    # autocommit on: visible at once, never inside a transaction.
    writer.autocommit = True
    wcur.execute(f"insert into {SCHEMA}.ac_t values (2)")
    expect_eq(tx_status(writer), EXT.TRANSACTION_STATUS_IDLE, "status with autocommit on")
    expect_eq(visible(), 2, "row visible with autocommit on")

    # An explicit BEGIN in autocommit mode still opens a transaction.
    wcur.execute("begin")
    wcur.execute(f"insert into {SCHEMA}.ac_t values (3)")
    expect_eq(tx_status(writer), EXT.TRANSACTION_STATUS_INTRANS, "status after explicit begin")
    expect_eq(visible(), 2, "row visible before explicit commit")
    wcur.execute("commit")
    expect_eq(visible(), 3, "row visible after explicit commit")
    writer.autocommit = False


def check_application_name(s):
    conn = s.connect(application_name=APP_NAME)
    cur = conn.cursor()
    cur.execute("select current_setting('application_name')")
    expect_eq(cur.fetchone()[0], APP_NAME, "application_name seen by the server")
    cur.execute("select application_name from pg_stat_activity where pid = pg_backend_pid()")
    expect_eq(cur.fetchone()[0], APP_NAME, "application_name in pg_stat_activity")
    expect_eq(conn.get_parameter_status("application_name"), APP_NAME, "ParameterStatus application_name")
    conn.rollback()


def check_close_mid_fetch(s):
    conn = s.connect()
    cur = conn.cursor(name="suite_half")
    cur.execute("select g, repeat('y', 100) from generate_series(1, 100000) g")
    first = cur.fetchmany(1000)
    second = cur.fetchmany(1000)
    expect_eq((first[0][0], second[-1][0]), (1, 2000), "first batches of the named cursor")
    cur.close()  # closes the portal halfway through
    plain = conn.cursor()
    plain.execute("select 'still alive'")
    expect_eq(plain.fetchone()[0], "still alive", "query after closing a cursor halfway")
    conn.commit()

    # Drop a whole connection while the server streams a large result to it.
    aconn = psycopg2.connect(s.dsn, async_=1)
    psycopg2.extras.wait_select(aconn)
    acur = aconn.cursor()
    acur.execute("select g, repeat('z', 1000) from generate_series(1, 200000) g")
    # Read a little of the result, then close without reading the rest.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        readable, _, _ = select.select([aconn], [], [], 0.5)
        if readable:
            break
    aconn.close()

    # New sessions still work (the proxy survived the abrupt close).
    fresh = s.connect()
    fcur = fresh.cursor()
    fcur.execute("select count(*) from generate_series(1, 10)")
    expect_eq(fcur.fetchone()[0], 10, "query on a new connection after an abrupt close")
    fresh.rollback()


def check_large_object(s):
    # libpq's large-object calls use the FunctionCall ('F') message.
    conn = s.connect()
    data = bytes(range(256)) * 4096  # 1 MiB
    lo = conn.lobject(0, "wb")
    oid = lo.oid
    expect_eq(lo.write(data), len(data), "bytes written to the large object")
    lo.close()
    lo = conn.lobject(oid, "rb")
    lo.seek(1000)
    expect_eq(lo.read(24), data[1000:1024], "read after seek")
    lo.seek(0)
    back = lo.read()
    lo.close()
    expect(back == data, f"large object read back differently ({len(back)} bytes)")
    conn.lobject(oid).unlink()
    conn.commit()


def check_copy_fail(s):
    # A client that aborts COPY FROM STDIN sends CopyFail; the server answers
    # 57014 and the session goes on.
    class FailingReader:
        def read(self, _size=-1):
            raise RuntimeError("client gave up")

        readline = read

    conn = s.connect()
    cur = conn.cursor()
    cur.execute(f"create table {SCHEMA}.copy_fail_t (x int)")
    conn.commit()
    try:
        cur.copy_expert(f"COPY {SCHEMA}.copy_fail_t FROM STDIN", FailingReader())
        raise CheckFailed("COPY with a failing reader did not fail")
    except psycopg2.errors.QueryCanceled as e:
        expect("COPY from stdin failed" in e.diag.message_primary, f"CopyFail message: {e.diag.message_primary!r}")
    conn.rollback()
    cur.execute(f"select count(*) from {SCHEMA}.copy_fail_t")
    expect_eq(cur.fetchone()[0], 0, "rows after CopyFail")
    conn.commit()


def check_backend_terminated(s):
    # The server ends the session (pg_terminate_backend): the client gets an
    # OperationalError, and new sessions are unaffected.
    victim = s.connect()
    victim.autocommit = True
    vcur = victim.cursor()
    vcur.execute("select pg_backend_pid()")
    pid = vcur.fetchone()[0]
    killer = s.connect()
    killer.autocommit = True
    kcur = killer.cursor()
    kcur.execute("select pg_terminate_backend(%s)", (pid,))
    expect_eq(kcur.fetchone()[0], True, "pg_terminate_backend result")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        kcur.execute("select count(*) from pg_stat_activity where pid = %s", (pid,))
        if kcur.fetchone()[0] == 0:
            break
        time.sleep(0.05)
    try:
        vcur.execute("select 1")
        raise CheckFailed("a query on a terminated session succeeded")
    except psycopg2.OperationalError:
        pass
    expect(victim.closed != 0, "psycopg2 should see the terminated connection as closed")
    fresh = s.connect()
    fcur = fresh.cursor()
    fcur.execute("select 'fresh'")
    expect_eq(fcur.fetchone()[0], "fresh", "a new session after a terminated one")
    fresh.rollback()


# '乗' is 0x81 0x5C in GBK: its second byte is the ASCII backslash. A proxy
# that lexes GBK bytes as if they were UTF-8/ASCII takes it for an escape in
# E'' and splits the statements differently from the server.
GBK_TRAP = "\u4e57"


def check_client_encoding_gbk(s):
    conn = s.connect()
    conn.autocommit = True
    conn.set_client_encoding("GBK")
    cur = conn.cursor()
    text = "中文 汉字 乗俓僜 表"
    cur.execute("select %s::text, length(%s::text)", (text, text))
    expect_eq(cur.fetchone(), (text, len(text)), "GBK text round trip")
    cur.execute(f"create table {SCHEMA}.gbk_victim (x int)")
    # Three statements for the server: select, drop table, select.
    cur.execute(f"select E'{GBK_TRAP}'; drop table {SCHEMA}.gbk_victim; select 'after the drop'")
    expect_eq(cur.fetchall(), [("after the drop",)], "result of the GBK multi-statement query")
    cur.execute("select to_regclass(%s) is null", (f"{SCHEMA}.gbk_victim",))
    expect_eq(cur.fetchone()[0], True, "the table dropped by the second statement is gone")


CHECKS = [
    ("transactions", check_transactions),
    ("named_cursor", check_named_cursor),
    ("copy", check_copy),
    ("listen_notify", check_listen_notify),
    ("cancel", check_cancel),
    ("errors", check_errors),
    ("types", check_types),
    ("big_text", check_big_text),
    ("executemany", check_executemany),
    ("notices", check_notices),
    ("autocommit", check_autocommit),
    ("application_name", check_application_name),
    ("close_mid_fetch", check_close_mid_fetch),
    ("large_object", check_large_object),
    ("copy_fail", check_copy_fail),
    ("backend_terminated", check_backend_terminated),
    ("client_encoding_gbk", check_client_encoding_gbk),
]


def admin(dsn, sql):
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        conn.cursor().execute(sql)
    finally:
        conn.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dsn", help="libpq DSN to test (normally danxia's listener)")
    parser.add_argument("--direct", help="DSN of the same database without the proxy, for error comparison")
    parser.add_argument("--only", action="append", help="run only this check (repeatable)")
    args = parser.parse_args()

    checks = CHECKS
    if args.only:
        names = {n for n, _ in CHECKS}
        unknown = set(args.only) - names
        if unknown:
            print(f"unknown check(s): {sorted(unknown)}; known: {sorted(names)}", file=sys.stderr)
            return 2
        checks = [c for c in CHECKS if c[0] in args.only]

    try:
        admin(args.dsn, f"drop schema if exists {SCHEMA} cascade; create schema {SCHEMA}")
    except psycopg2.Error as e:
        print(f"FAIL setup: cannot create schema {SCHEMA} through {args.dsn!r}: {e}", file=sys.stderr)
        return 1

    failed = []
    for name, fn in checks:
        suite = Suite(args.dsn, args.direct)
        started = time.monotonic()
        try:
            fn(suite)
            print(f"ok {name} ({time.monotonic() - started:.2f}s)", flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is reported
            failed.append(name)
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
            traceback.print_exc(file=sys.stdout)
        finally:
            suite.close_all()

    try:
        admin(args.dsn, f"drop schema if exists {SCHEMA} cascade")
    except psycopg2.Error as e:
        print(f"FAIL cleanup: cannot drop schema {SCHEMA}: {e}")
        failed.append("cleanup")

    print(f"{len(checks)} checks, {len(checks) - len([f for f in failed if f != 'cleanup'])} passed, {len(failed)} failed"
          + (f": {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
