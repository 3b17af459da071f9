#!/usr/bin/env python3
"""One PyMySQL session driven line by line from stdin, for fault tests that
must act (kill a backend, restart a server) between a session's steps.

    mysql_session.py PORT USER DATABASE

prints {"id": <connection id>} once connected, then for each stdin line:
  query SQL        -> {"rows": N} | {"error": [code, message]}
  stream N SQL     -> an unbuffered cursor: {"rows": N} after N rows (the
                      rest of the result stays in the socket) ...
  rest             -> ... the remaining rows: {"rows": total, "complete": true}
                      or {"rows": total, "error": [code, message]}
One JSON line per command, flushed; exits at end of input.
"""
import json
import sys

import pymysql
import pymysql.cursors


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def error(e):
    code = e.args[0] if e.args else 0
    msg = e.args[1] if len(e.args) > 1 else str(e)
    return [code, str(msg)]


def main():
    port, user, db = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    conn = pymysql.connect(host="127.0.0.1", port=port, user=user, database=db,
                           connect_timeout=10, autocommit=True)
    out({"id": conn.thread_id()})
    cursor, count = None, 0
    for line in sys.stdin:
        cmd, _, arg = line.rstrip("\n").partition(" ")
        try:
            if cmd == "query":
                c = conn.cursor()
                c.execute(arg)
                out({"rows": len(c.fetchall())})
            elif cmd == "stream":
                n, _, sql = arg.partition(" ")
                cursor = conn.cursor(pymysql.cursors.SSCursor)
                cursor.execute(sql)
                count = 0
                for _ in range(int(n)):
                    if cursor.fetchone() is None:
                        break
                    count += 1
                out({"rows": count})
            elif cmd == "rest":
                while cursor.fetchone() is not None:
                    count += 1
                out({"rows": count, "complete": True})
        except Exception as e:  # noqa: BLE001 - every failure is the answer
            out({"rows": count, "error": error(e)})


if __name__ == "__main__":
    main()
