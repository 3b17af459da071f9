#!/usr/bin/env python3
"""Run the MySQL differential corpus on one side and print one canonical JSON
line per entry (the Rust test runs this once direct and once through danxia
and compares the lines).

Usage:
    differential.py --port PORT --database SCRATCH --corpus FILE
                    [--driver pymysql|connector-pure] [--prepared]
                    [--admin-port PORT]

The corpus (tests/mysql/corpus.sql, format in docs/testing.md) is a list of
entries separated by lines that contain only `-- next`; text before the first
separator is the header. An entry may start with a directive line
`-- params: JSON-ARRAY`: the entry is then run with those parameters (`?`
placeholders; with PyMySQL they become client-side `%s` interpolation, with
--prepared they are bound to a server-side prepared statement). `{db}` in an
entry stands for the scratch database's name (e.g. `use {db}`).

SCRATCH is created fresh (dropped first if it exists) straight on
--admin-port (default 3306, the real server), the corpus runs as root on ONE
connection to --port with SCRATCH as the default database, in autocommit
mode, with CLIENT_MULTI_STATEMENTS, then SCRATCH is dropped again. Every
occurrence of SCRATCH in the output is written as "<db>".

Without --prepared every entry is a COM_QUERY (text protocol; all result
sets of a multi-statement or CALL are recorded). With --prepared (connector
only) the entries with a `-- params:` line (`-- params: []` for none) are
prepared and executed server-side (COM_STMT_PREPARE, COM_STMT_RESET,
COM_STMT_EXECUTE; binary protocol), the others run as COM_QUERY to build the
same state. (Not every entry: Connector/Python's pure binary-protocol reader
loses step on some results, e.g. CALL's, which would test the driver.)

Per entry: {"entry": N, "sql": first 80 characters, "results" | "error" |
"client_error", "in_transaction"} (see mysql_steps.py for the fields).

Exit status 0 when the corpus ran (SQL errors are results), 2 on usage or
set-up errors, 3 when the connection cannot be made.
"""

import argparse
import json
import os
import re
import sys

# The step runner beside this file; no __pycache__ in the source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mysql_steps  # noqa: E402

SEPARATOR = re.compile(r"^--\s*next\s*$")
PARAMS = re.compile(r"^--\s*params:\s*(.*)$")


def read_corpus(path):
    """[(sql, params or None)] in file order."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    entries, current, seen = [], [], False

    def flush():
        text = "\n".join(current).strip()
        if not (seen and text):
            return
        params = None
        first, _, rest = text.partition("\n")
        m = PARAMS.match(first.strip())
        if m:
            params = json.loads(m.group(1))
            text = rest.strip()
        entries.append((text, params))

    for line in lines:
        if SEPARATOR.match(line.strip()):
            flush()
            current, seen = [], True
        else:
            current.append(line)
    flush()
    return entries


def admin(port, sql):
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", port=port, user="root", password="", autocommit=True, connect_timeout=10)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--admin-port", type=int, default=3306)
    ap.add_argument("--database", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--driver", default="pymysql", choices=["pymysql", "connector-pure"])
    ap.add_argument("--prepared", action="store_true")
    args = ap.parse_args()
    if args.prepared and args.driver == "pymysql":
        sys.exit("--prepared needs --driver connector-pure (PyMySQL has no server-side prepared statements)")
    if not re.fullmatch(r"danxia_[a-z0-9_]+", args.database):
        sys.exit(f"refusing scratch database name {args.database!r}: it must match danxia_[a-z0-9_]+")
    entries = read_corpus(args.corpus)

    try:
        admin(args.admin_port, f"drop database if exists {args.database}")
        admin(args.admin_port, f"create database {args.database} character set utf8mb4 collate utf8mb4_general_ci")
    except Exception as e:
        sys.exit(f"cannot create {args.database} on port {args.admin_port}: {e}")

    conn_args = argparse.Namespace(
        driver=args.driver,
        host="127.0.0.1",
        port=args.port,
        user="root",
        password="",
        database=args.database,
        charset="utf8mb4",
        autocommit="on",
        multi_statements=True,
        local_infile=False,
        max_allowed_packet=64 * 1024 * 1024,
        normalize=[args.database],
        reconnect_on_client_error=True,
    )
    drv = mysql_steps.connect(conn_args)
    try:
        for n, (sql, params) in enumerate(entries):
            sql = sql.replace("{db}", args.database)
            if args.prepared and params is not None:
                step = {"op": "prepared", "sql": sql, "params": params}
            elif args.prepared:
                step = {"op": "query", "sql": sql}
            elif params is not None:
                step = {"op": "query", "sql": sql.replace("%", "%%").replace("?", "%s"), "params": params}
            else:
                step = {"op": "query", "sql": sql}
            out = mysql_steps.run_step(drv, n, step)
            out["entry"] = n
            out["sql"] = sql[:80]
            del out["i"]
            mysql_steps.emit(out, conn_args.normalize)
    finally:
        if drv.conn is not None:
            try:
                drv.close()
            except Exception:
                pass
        admin(args.admin_port, f"drop database if exists {args.database}")


if __name__ == "__main__":
    main()
