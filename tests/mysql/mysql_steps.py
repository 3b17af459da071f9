#!/usr/bin/env python3
"""Run a list of steps on ONE MySQL/MariaDB connection; print one canonical
JSON line per step.

Usage:
    mysql_steps.py --driver DRIVER --port PORT --user USER [--password PW]
                   [--database DB] [--charset CS] [--autocommit on|off]
                   [--multi-statements] [--local-infile]
                   [--max-allowed-packet BYTES] [--normalize NAME ...]
                   [--steps FILE]            (default: the steps as JSON on stdin)

DRIVER is one of
    pymysql          PyMySQL (pure Python; text protocol only)
    connector-pure   mysql-connector-python with use_pure=True
    connector-cext   mysql-connector-python's C extension (exit 4 when it
                     cannot be loaded, so that callers can say so)

The steps are a JSON array of objects, each with an "op" and an optional
"label" (copied to the output so that tests can find the step):

    {"op": "query", "sql": S, "params": [...]}   cursor.execute(S, params):
        client-side interpolation (text protocol, COM_QUERY); every result
        set of a multi-statement or CALL is reported
    {"op": "prepared", "sql": S, "params": [...]}   connector only: a
        server-side prepared statement (COM_STMT_PREPARE once per distinct
        text on this connection, then COM_STMT_RESET + COM_STMT_EXECUTE at
        each step; binary protocol). A param {"stream": P} is sent with
        COM_STMT_SEND_LONG_DATA.
    {"op": "ping"}                       COM_PING
    {"op": "select_db", "database": D}   COM_INIT_DB
    {"op": "change_user", "user": U, "password": P, "database": D}
                                         COM_CHANGE_USER (connector only)
    {"op": "reset_connection"}           COM_RESET_CONNECTION (connector only)
    {"op": "field_list", "table": T}     COM_FIELD_LIST (pymysql only)
    {"op": "commit"} / {"op": "rollback"}
    {"op": "local_infile", "sql": S, "content": C}   writes C to a temporary
        file and runs S with "{file}" replaced by its path (LOAD DATA LOCAL)
    {"op": "close"}                      COM_QUIT; later steps report errors

With --reconnect-on-client-error a step that fails inside the driver (not
with a server error) is followed by a new connection ("reconnected": true in
its line): some drivers cannot decode every binary-protocol type and are out
of step with the server afterwards.

Parameter values are JSON scalars or objects: {"hex": "00ff"} (bytes),
{"decimal": "1.50"}, {"date": "2024-02-29"}, {"datetime": "2024-02-29
23:59:58.5"}, {"time": "12:34:56"}, {"float": "1e300"}, {"random_bytes": N,
"seed": S} (N deterministic bytes), {"stream": P} (P as a file object).

Output, one line per step (keys sorted, UTF-8):
    {"i": N, "op": ..., "label": ..., "params": [...canonical...],
     "results": [{"columns": [...], "rows": [...], "rowcount": n,
                  "lastrowid": n, "warnings": n}, ...],
     "error": {"errno": n, "sqlstate": "...", "msg": "..."},
     "client_error": "ExceptionType: text",
     "value": ... (ping/select_db/change_user/... outcome),
     "in_transaction": bool}
Values are canonical: bytes as {"hex": ...}, long strings and bytes as
{"len": n, "sha256": ...}, other non-JSON values as repr(). Every
occurrence of a --normalize NAME (e.g. a scratch database's name) in the
line is replaced by "<db>", so two databases compare equal.

Exit status 0 when every step ran (SQL errors are results, not failures),
2 on usage errors, 3 when the connection cannot be made, 4 when the
requested driver is not installed.
"""

import argparse
import datetime
import decimal
import hashlib
import io
import json
import os
import random
import sys
import tempfile

# Longer strings and byte strings are printed as length + SHA-256.
MAX_INLINE = 200


def canon(v):
    """A JSON-serialisable, deterministic rendering of a driver value."""
    if v is None or isinstance(v, bool) or isinstance(v, int):
        return v
    if isinstance(v, (bytes, bytearray, memoryview)):
        b = bytes(v)
        if len(b) > MAX_INLINE // 2:
            return {"len": len(b), "sha256": hashlib.sha256(b).hexdigest()}
        return {"hex": b.hex()}
    if isinstance(v, str):
        if len(v) > MAX_INLINE:
            return {"len": len(v), "sha256": hashlib.sha256(v.encode("utf-8", "surrogatepass")).hexdigest()}
        return v
    if isinstance(v, float):
        return {"float": repr(v)}
    if isinstance(v, (list, tuple)):
        return [canon(x) for x in v]
    if isinstance(v, (set, frozenset)):
        # SET columns: Python's set order depends on the hash seed
        return {"set": sorted(canon(x) for x in v)}
    if isinstance(v, io.BytesIO):
        return {"stream": canon(v.getvalue())}
    return {type(v).__name__: repr(v)}


def param(v):
    """A JSON parameter description to the Python value the drivers take."""
    if isinstance(v, list):
        return [param(x) for x in v]
    if not isinstance(v, dict):
        return v
    if "hex" in v:
        return bytes.fromhex(v["hex"])
    if "decimal" in v:
        return decimal.Decimal(v["decimal"])
    if "date" in v:
        return datetime.date.fromisoformat(v["date"])
    if "datetime" in v:
        return datetime.datetime.fromisoformat(v["datetime"])
    if "time" in v:
        return datetime.time.fromisoformat(v["time"])
    if "float" in v:
        return float(v["float"])
    if "random_bytes" in v:
        return random.Random(v.get("seed", 0)).randbytes(int(v["random_bytes"]))
    if "stream" in v:
        inner = param(v["stream"])
        if isinstance(inner, str):
            inner = inner.encode("utf-8")
        return io.BytesIO(inner)
    raise ValueError(f"unknown parameter form {v!r}")


class Driver:
    """The small surface the steps need, over PyMySQL or Connector/Python."""

    def __init__(self, args):
        self.args = args
        self.kind = args.driver
        self.open()

    def open(self):
        args = self.args
        self.prepared_texts = {}
        self.prepared_cursor = None
        autocommit = {"on": True, "off": False, None: None}[args.autocommit]
        if self.kind == "pymysql":
            import pymysql
            import pymysql.constants.CLIENT as CLIENT
            import pymysql.constants.SERVER_STATUS as SERVER_STATUS

            self.mod = pymysql
            self.in_trans_bit = SERVER_STATUS.SERVER_STATUS_IN_TRANS
            kw = dict(
                host=args.host,
                port=args.port,
                user=args.user,
                password=args.password or "",
                charset=args.charset,
                connect_timeout=10,
                local_infile=args.local_infile,
                max_allowed_packet=args.max_allowed_packet,
            )
            if args.database:
                kw["database"] = args.database
            if args.multi_statements:
                kw["client_flag"] = CLIENT.MULTI_STATEMENTS
            if autocommit is not None:
                kw["autocommit"] = autocommit
            self.conn = pymysql.connect(**kw)
        else:
            import mysql.connector

            self.mod = mysql.connector
            kw = dict(
                host=args.host,
                port=args.port,
                user=args.user,
                password=args.password or "",
                charset=args.charset,
                collation=None if args.charset != "utf8mb4" else "utf8mb4_general_ci",
                connection_timeout=10,
                ssl_disabled=True,
                allow_local_infile=args.local_infile,
                use_pure=self.kind == "connector-pure",
            )
            if kw["collation"] is None:
                del kw["collation"]
            if args.database:
                kw["database"] = args.database
            if autocommit is not None:
                kw["autocommit"] = autocommit
            if args.multi_statements:
                from mysql.connector.constants import ClientFlag

                kw["client_flags"] = [ClientFlag.MULTI_STATEMENTS]
            self.conn = mysql.connector.connect(**kw)
            if self.kind == "connector-cext" and type(self.conn).__name__ != "CMySQLConnection":
                raise RuntimeError(f"asked for the C extension, got {type(self.conn).__name__}")

    def reopen(self):
        """A fresh connection after a client-side failure left the old one
        out of step with the server (e.g. a row the driver could not decode
        leaves "Unread result found" for every later statement)."""
        try:
            self.conn.close()
        except Exception:
            pass
        self.open()

    # -- state -------------------------------------------------------------

    def in_transaction(self):
        if self.conn is None:
            return None
        if self.kind == "pymysql":
            return bool(self.conn.server_status & self.in_trans_bit)
        return bool(self.conn.in_transaction)

    def error(self, e):
        """(kind, value) for an exception: a server error or a client one."""
        errno = getattr(e, "errno", None)
        if errno is None and self.kind == "pymysql" and e.args and isinstance(e.args[0], int):
            errno = e.args[0]
        sqlstate = getattr(e, "sqlstate", None)
        if self.kind == "pymysql":
            msg = e.args[1] if len(e.args) > 1 else str(e)
        else:
            msg = getattr(e, "msg", None) or str(e)
        # Server errors carry an SQLSTATE; client-side ones (lost connection,
        # driver misuse) do not.
        if sqlstate is not None and errno is not None and errno >= 1000:
            return "error", {"errno": errno, "sqlstate": sqlstate, "msg": msg}
        return "client_error", f"{type(e).__name__}: errno={errno} {msg}"

    # -- results -----------------------------------------------------------

    @staticmethod
    def _columns(description):
        """Column descriptions, with the key bits of the flags (PRI 0x2,
        UNIQUE 0x4, MULTIPLE 0x8, PART_KEY 0x4000) cleared: for a column of
        a derived table or CTE MariaDB sets them from the plan it chose
        (one CTE join's column came back with PART_KEY in one run and
        without it in the next), so they say nothing about the proxy, which
        forwards column definitions byte for byte."""
        out = []
        for d in description:
            d = list(d)
            if len(d) > 7 and isinstance(d[7], int):
                d[7] &= ~(0x2 | 0x4 | 0x8 | 0x4000)
            out.append(canon(d))
        return out

    def _result_sets(self, cur, warnings_of):
        sets = []
        while True:
            one = {"rowcount": cur.rowcount, "lastrowid": cur.lastrowid, "warnings": warnings_of(cur)}
            if cur.description is not None:
                one["columns"] = self._columns(cur.description)
                one["rows"] = [canon(list(r)) for r in cur.fetchall()]
                # rowcount and warnings are final once the rows are read
                one["rowcount"] = cur.rowcount
                one["warnings"] = warnings_of(cur)
            sets.append(one)
            if not cur.nextset():
                return sets

    def query(self, sql, params):
        if self.kind == "pymysql":
            cur = self.conn.cursor()
            try:
                cur.execute(sql, params)
                return self._result_sets(cur, lambda c: c._result.warning_count if c._result else None)
            finally:
                cur.close()
        cur = self.conn.cursor()
        try:
            cur.execute(sql, params)
            return self._result_sets(cur, lambda c: c.warning_count)
        finally:
            cur.close()

    def prepared(self, sql, params):
        if self.kind == "pymysql":
            raise NotImplementedError("PyMySQL has no server-side prepared statements")
        if self.prepared_cursor is None:
            self.prepared_cursor = self.conn.cursor(prepared=True)
        # The cursor re-uses its prepared statement when given the very same
        # string object again: intern the texts.
        sql = self.prepared_texts.setdefault(sql, sql)
        cur = self.prepared_cursor
        try:
            cur.execute(sql, params)
        except Exception:
            # A failed prepare leaves the cursor without a statement; a fresh
            # cursor keeps later steps independent of this one.
            try:
                cur.close()
            except Exception:
                pass
            self.prepared_cursor = None
            self.prepared_texts.pop(sql, None)
            raise
        one = {"rowcount": cur.rowcount, "lastrowid": cur.lastrowid, "warnings": cur.warning_count}
        if cur.description is not None:
            one["columns"] = self._columns(cur.description)
            one["rows"] = [canon(list(r)) for r in cur.fetchall()]
            one["rowcount"] = cur.rowcount
            one["warnings"] = cur.warning_count
        return [one]

    def field_list(self, table):
        if self.kind != "pymysql":
            raise NotImplementedError("field_list is implemented with PyMySQL's internals")
        from pymysql.constants import COMMAND
        from pymysql.protocol import FieldDescriptorPacket

        c = self.conn
        c._execute_command(COMMAND.COM_FIELD_LIST, table.encode(c.encoding) + b"\0")
        fields = []
        while True:
            pkt = c._read_packet()
            if pkt.is_eof_packet():
                return fields
            f = FieldDescriptorPacket(pkt.get_all_data(), c.encoding)
            fields.append([f.name, f.table_name, f.type_code, f.length, f.flags, f.charsetnr])

    # -- commands ------------------------------------------------------------

    def ping(self):
        if self.kind == "pymysql":
            self.conn.ping(reconnect=False)
            return "pong"
        self.conn.cmd_ping()
        return "pong"

    def select_db(self, db):
        if self.kind == "pymysql":
            self.conn.select_db(db)
        else:
            self.conn.cmd_init_db(db)
        return db

    def change_user(self, user, password, db):
        if self.kind == "pymysql":
            raise NotImplementedError("PyMySQL has no change_user")
        self.prepared_cursor = None
        self.prepared_texts.clear()
        self.conn.cmd_change_user(username=user, password=password or "", database=db or "")
        return user

    def reset_connection(self):
        if self.kind == "pymysql":
            raise NotImplementedError("PyMySQL has no reset_connection")
        self.prepared_cursor = None
        self.prepared_texts.clear()
        if self.kind == "connector-pure":
            return self.conn.cmd_reset_connection()
        self.conn.reset_session()
        return True

    def commit(self):
        self.conn.commit()

    def rollback(self):
        self.conn.rollback()

    def close(self):
        self.conn.close()
        self.conn = None


def run_step(drv, i, step):
    op = step.get("op")
    out = {"i": i, "op": op}
    if "label" in step:
        out["label"] = step["label"]
    params = param(step["params"]) if "params" in step else None
    if params is not None:
        out["params"] = canon(params)
    try:
        if drv.conn is None:
            raise RuntimeError("connection closed by an earlier step")
        if op == "query":
            out["results"] = drv.query(step["sql"], tuple(params) if params is not None else None)
        elif op == "prepared":
            out["results"] = drv.prepared(step["sql"], tuple(params) if params is not None else ())
        elif op == "ping":
            out["value"] = drv.ping()
        elif op == "select_db":
            out["value"] = drv.select_db(step["database"])
        elif op == "change_user":
            out["value"] = drv.change_user(step["user"], step.get("password"), step.get("database"))
        elif op == "reset_connection":
            out["value"] = drv.reset_connection()
        elif op == "field_list":
            out["value"] = canon(drv.field_list(step["table"]))
        elif op == "commit":
            drv.commit()
        elif op == "rollback":
            drv.rollback()
        elif op == "local_infile":
            with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False, encoding="utf-8") as f:
                f.write(step["content"])
                path = f.name
            try:
                out["results"] = drv.query(step["sql"].replace("{file}", path), None)
            finally:
                os.unlink(path)
        elif op == "close":
            drv.close()
        else:
            raise ValueError(f"unknown op {op!r}")
    except (NotImplementedError, ValueError, KeyError) as e:
        out["client_error"] = f"{type(e).__name__}: {e}"
    except Exception as e:  # driver errors: server ERR packets and client failures
        kind, value = drv.error(e)
        out[kind] = value
        if kind == "client_error" and drv.args.reconnect_on_client_error and drv.conn is not None:
            drv.reopen()
            out["reconnected"] = True
    out["in_transaction"] = drv.in_transaction()
    return out


def add_connection_args(ap):
    ap.add_argument("--driver", required=True, choices=["pymysql", "connector-pure", "connector-cext"])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", default=None)
    ap.add_argument("--database", default=None)
    ap.add_argument("--charset", default="utf8mb4")
    ap.add_argument("--autocommit", choices=["on", "off"], default=None)
    ap.add_argument("--multi-statements", action="store_true")
    ap.add_argument("--local-infile", action="store_true")
    ap.add_argument("--max-allowed-packet", type=int, default=16 * 1024 * 1024)
    ap.add_argument("--normalize", action="append", default=[])
    ap.add_argument("--reconnect-on-client-error", action="store_true")


def connect(args):
    """A Driver, or exit 3/4 with the reason on stderr."""
    if args.driver == "connector-cext":
        try:
            import _mysql_connector  # noqa: F401
        except ImportError as e:
            print(f"mysql-connector-python's C extension is not available: {e}", file=sys.stderr)
            sys.exit(4)
    try:
        return Driver(args)
    except ImportError as e:
        print(f"driver {args.driver} not installed ({e}): run tests/install-deps.sh", file=sys.stderr)
        sys.exit(4)
    except Exception as e:
        print(f"cannot connect with {args.driver} to {args.host}:{args.port} as {args.user}: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(3)


def emit(obj, normalize):
    line = json.dumps(obj, sort_keys=True, ensure_ascii=False)
    for name in normalize:
        line = line.replace(name, "<db>")
    print(line, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_connection_args(ap)
    ap.add_argument("--steps", default=None)
    args = ap.parse_args()
    text = open(args.steps, encoding="utf-8").read() if args.steps else sys.stdin.read()
    try:
        steps = json.loads(text)
        assert isinstance(steps, list)
    except Exception as e:
        print(f"the steps must be a JSON array: {e}", file=sys.stderr)
        sys.exit(2)
    drv = connect(args)
    for i, step in enumerate(steps):
        emit(run_step(drv, i, step), args.normalize)
    if drv.conn is not None:
        drv.close()


if __name__ == "__main__":
    main()
