#!/usr/bin/env python3
"""Sends `SELECT 'mk-<prefix>-<n>'` through danxia until the connection dies
and logs every marker whose result came back, one line each, flushed at once
(only danxia is killed, so what reached the OS is kept): the file is the list of statements acknowledged to the
client, to compare with the audit after danxia is killed (kill -9).

usage: marker_loader.py pg|mysql PORT OUTFILE PREFIX [MAX]

Exits 0 when the connection is lost (the expected end) or after MAX
markers; 2 when it cannot connect at all.
"""

import os
import sys


def connect(driver, port):
    if driver == "pg":
        import psycopg2

        conn = psycopg2.connect(
            host="127.0.0.1", port=port, user="postgres", dbname="test", connect_timeout=10
        )
        conn.autocommit = True
        return conn
    import pymysql

    return pymysql.connect(
        host="127.0.0.1", port=port, user="root", database="test", autocommit=True,
        connect_timeout=10,
    )


def main():
    driver, port, out, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    limit = int(sys.argv[5]) if len(sys.argv) > 5 else None
    try:
        conn = connect(driver, port)
    except Exception as e:  # noqa: BLE001 - any failure to connect ends the run
        print(f"connect: {e}", file=sys.stderr)
        sys.exit(2)
    cur = conn.cursor()
    n = 0
    with open(out, "a", encoding="utf-8") as f:
        while limit is None or n < limit:
            marker = f"mk-{prefix}-{n}"
            try:
                cur.execute(f"SELECT '{marker}'")
                row = cur.fetchone()
            except Exception as e:  # noqa: BLE001 - danxia was killed
                print(f"stopped after {n}: {e}", file=sys.stderr)
                break
            if row is None or row[0] != marker:
                print(f"wrong answer for {marker}: {row!r}", file=sys.stderr)
                sys.exit(1)
            f.write(marker + "\n")
            f.flush()
            n += 1
    print(f"acknowledged {n}", file=sys.stderr)


if __name__ == "__main__":
    main()
