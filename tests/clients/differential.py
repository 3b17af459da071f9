#!/usr/bin/env python3
"""Differential test: run an SQL corpus directly and through a proxy, compare.

Usage:
    differential.py --direct DSN --proxy DSN --corpus FILE
                    [--min-statements N] [--show N] [--summary FILE]

The corpus (see docs/testing.md) is a text file of entries separated by lines
that contain only `-- next`; an entry may span lines and contain semicolons
(dollar-quoted function bodies, or several statements sent as one simple
Query). Lines before the first `-- next` are the file's header comment and
are ignored.

Each side runs the whole corpus on ONE autocommit connection, inside a fresh
schema `danxia_diff` set as search_path (every schema named danxia_diff* is
dropped before and after the run), and records per entry:
  - the command status (e.g. "INSERT 0 3"), rowcount,
  - column names and type OIDs (built-in OIDs as numbers; user-defined types,
    whose OIDs differ between runs, as "user"),
  - all rows as the server's text (count, SHA-256 and the first few rows),
  - or the error: SQLSTATE, severity, primary message, detail, hint, position,
    context,
  - the notices and notifications (channel, payload) it produced,
  - the transaction status afterwards.
The direct side runs first, then the proxy side; the records are compared
entry by entry. Prints the first differences, then the summary line
"N statements, N identical, N different". With --summary FILE the counts and
the SQLSTATEs of the direct side's errors are also written as JSON.

Exit status: 1 on any difference or when fewer than --min-statements entries
ran (default 200); 2 on usage or setup errors.
"""

import argparse
import hashlib
import json
import re
import sys

try:
    import psycopg2
    import psycopg2.extensions
except ImportError:
    sys.exit("psycopg2 is not installed: run `python3 -m pip install psycopg2-binary`")

SCHEMA = "danxia_diff"
SEPARATOR = re.compile(r"^--\s*next\s*$")
SAMPLE_ROWS = 5
SAMPLE_CELL_CHARS = 120
FIRST_USER_OID = 16384  # FirstNormalObjectId: OIDs below are built in

# Return every built-in type as the server's text, so that rows compare as the
# exact bytes PostgreSQL sent, not as Python values. Types with OIDs at or above
# FIRST_USER_OID have no psycopg2 caster and come back as text already.
RAW_TEXT = psycopg2.extensions.new_type(tuple(range(1, FIRST_USER_OID)), "DANXIA_RAW_TEXT", lambda value, _cur: value)


def read_corpus(path):
    """Split the corpus file into entries (stripped, non-empty)."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    entries, current, seen_separator = [], [], False
    for line in lines:
        if SEPARATOR.match(line.strip()):
            if seen_separator:
                text = "\n".join(current).strip()
                if text:
                    entries.append(text)
            current, seen_separator = [], True
        else:
            current.append(line)
    text = "\n".join(current).strip()
    if seen_separator and text:
        entries.append(text)
    return entries


def connect(dsn):
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    psycopg2.extensions.register_type(RAW_TEXT, conn)
    return conn


def reset_schemas(conn, create):
    """Drop every danxia_diff* schema; then optionally create a fresh one."""
    cur = conn.cursor()
    cur.execute(r"select nspname from pg_namespace where nspname like 'danxia\_diff%' order by 1")
    for (name,) in cur.fetchall():
        cur.execute(f'drop schema "{name}" cascade')
    if create:
        cur.execute(f"create schema {SCHEMA}")
        cur.execute(f"set search_path = {SCHEMA}")
    del conn.notices[:]


def clip(value):
    if value is None:
        return None
    return value if len(value) <= SAMPLE_CELL_CHARS else value[:SAMPLE_CELL_CHARS] + f"...({len(value)} chars)"


def run_entry(conn, sql):
    """Run one corpus entry and return its record (a dict of comparable facts)."""
    rec = {}
    cur = conn.cursor()
    try:
        cur.execute(sql)
        rec["status"] = cur.statusmessage
        rec["rowcount"] = cur.rowcount
        if cur.description is not None:
            rec["columns"] = [
                (d.name, d.type_code if d.type_code < FIRST_USER_OID else "user") for d in cur.description
            ]
            digest = hashlib.sha256()
            count = 0
            sample = []
            for row in cur:
                count += 1
                digest.update(repr(row).encode("utf-8"))
                if len(sample) < SAMPLE_ROWS:
                    sample.append(tuple(clip(v) for v in row))
            rec["rows"] = count
            rec["rows_sha256"] = digest.hexdigest()
            rec["sample"] = sample
    except psycopg2.Error as e:
        d = e.diag
        rec["error"] = {
            "sqlstate": e.pgcode,
            "severity": d.severity_nonlocalized,
            "primary": d.message_primary,
            "detail": d.message_detail,
            "hint": d.message_hint,
            "position": d.statement_position,
            "context": d.context,
        }
        if e.pgcode is None:
            # No SQLSTATE: the connection itself failed (closed, protocol error).
            rec["error"]["client_error"] = f"{type(e).__name__}: {e}".strip()
    finally:
        cur.close()
    rec["notices"] = list(conn.notices)
    del conn.notices[:]
    rec["notifies"] = [(n.channel, n.payload) for n in conn.notifies]
    del conn.notifies[:]
    rec["tx_status"] = conn.info.transaction_status if not conn.closed else "closed"
    return rec


def run_side(label, dsn, entries):
    """Run the corpus on one connection to `dsn`; returns one record per entry."""
    try:
        conn = connect(dsn)
        reset_schemas(conn, create=True)
    except psycopg2.Error as e:
        print(f"setup failed on the {label} side ({dsn!r}): {e}", file=sys.stderr)
        sys.exit(2)
    records = []
    for sql in entries:
        if conn.closed:
            # A lost connection is recorded as a difference by the entry that
            # lost it; reconnect so the rest of the corpus still runs.
            print(f"{label}: connection lost, reconnecting", file=sys.stderr)
            conn = connect(dsn)
            conn.cursor().execute(f"set search_path = {SCHEMA}")
        records.append(run_entry(conn, sql))
    # Leave nothing behind; a fresh connection in case the corpus left this one
    # inside a transaction.
    conn.close()
    cleanup = connect(dsn)
    reset_schemas(cleanup, create=False)
    cleanup.close()
    return records


def describe(rec, other):
    """The fields of `rec` that differ from `other` (all when one is missing)."""
    keys = [k for k in rec if rec.get(k) != other.get(k)] + [k for k in other if k not in rec]
    if "rows_sha256" in keys and "sample" in rec:
        keys.append("sample")  # show some rows when the rows differ
    return "; ".join(f"{k}={rec.get(k, '<absent>')!r}" for k in dict.fromkeys(keys))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--direct", required=True, help="DSN straight to PostgreSQL")
    parser.add_argument("--proxy", required=True, help="DSN through the proxy (same database)")
    parser.add_argument("--corpus", required=True, help="corpus file (entries separated by '-- next' lines)")
    parser.add_argument("--min-statements", type=int, default=200, help="fail when fewer entries ran (default 200)")
    parser.add_argument("--show", type=int, default=10, help="how many differences to print (default 10)")
    parser.add_argument("--summary", help="also write a JSON summary here (counts, direct-side SQLSTATEs)")
    args = parser.parse_args()

    try:
        entries = read_corpus(args.corpus)
    except OSError as e:
        print(f"cannot read corpus {args.corpus}: {e}", file=sys.stderr)
        return 2

    direct = run_side("direct", args.direct, entries)
    proxy = run_side("proxy", args.proxy, entries)

    different = []
    for index, (sql, a, b) in enumerate(zip(entries, direct, proxy)):
        if a != b:
            different.append((index, sql, a, b))
    for index, sql, a, b in different[: args.show]:
        print(f"--- entry {index + 1}: {sql[:300]!r}")
        print(f"  direct: {describe(a, b)}")
        print(f"  proxy:  {describe(b, a)}")
    if len(different) > args.show:
        print(f"... and {len(different) - args.show} more differences")

    ran = len(entries)
    errors = sum(1 for r in direct if "error" in r)
    print(f"{ran} statements, {ran - len(different)} identical, {len(different)} different ({errors} of them end in an error on both sides by design)")
    if args.summary:
        summary = {
            "entries": ran,
            "identical": ran - len(different),
            "different": len(different),
            # SQLSTATEs the server raised on the direct side, in corpus order:
            # the proxy's audit must show each of them as an error outcome.
            "error_sqlstates": [r["error"]["sqlstate"] for r in direct if r.get("error", {}).get("sqlstate")],
        }
        with open(args.summary, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=1)
    if ran < args.min_statements:
        print(f"FAIL: only {ran} corpus entries ran, at least {args.min_statements} are required", file=sys.stderr)
        return 1
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main())
