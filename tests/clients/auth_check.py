#!/usr/bin/env python3
"""Authentication through a proxy: each method, good and wrong passwords.

Usage:
    auth_check.py --direct-port P --proxy-port Q [--host 127.0.0.1] [--db postgres]
                  --login USER:METHOD:PASSWORD [--login ...]

METHOD is the pg_hba.conf method the server uses for USER: password, md5 or
scram-sha-256. For every login the script checks, straight against the server
(direct port) and through the proxy:

  raw protocol (a minimal client written here, so the exact ErrorResponse
  fields are visible, which libpq does not expose for connection errors):
    - the server asks for the expected authentication request
      (cleartext 3, md5 5, SASL 10 offering SCRAM-SHA-256);
    - the right password reaches ReadyForQuery;
    - a wrong password gets an ErrorResponse with SQLSTATE 28P01 and
      'password authentication failed for user "USER"', and all its fields
      are identical direct and through the proxy;
  psycopg2 (sslmode=disable, channel_binding=disable):
    - the right password logs in and current_user is USER;
    - a wrong password raises OperationalError with the same server message
      direct and through the proxy.

Prints "ok ..." per check, "FAIL ..." on failures; exits 1 if any failed.
Through the proxy each login makes exactly two failed attempts (raw and
psycopg2); the Rust test counts on that when it reads the audit.
"""

import argparse
import base64
import hashlib
import hmac
import os
import re
import socket
import struct
import sys

try:
    import psycopg2
except ImportError:
    sys.exit("psycopg2 is not installed: run `python3 -m pip install psycopg2-binary`")

PROTOCOL_3_0 = 196608
AUTH_OK, AUTH_CLEARTEXT, AUTH_MD5, AUTH_SASL, AUTH_SASL_CONTINUE, AUTH_SASL_FINAL = 0, 3, 5, 10, 11, 12
EXPECTED_REQUEST = {"password": AUTH_CLEARTEXT, "md5": AUTH_MD5, "scram-sha-256": AUTH_SASL}
SOCKET_TIMEOUT_S = 10
WRONG_SUFFIX = "-wrong"


class ProtocolFailure(Exception):
    """The server (or proxy) did something the raw client did not expect."""


class RawConnection:
    """Just enough of the PostgreSQL v3 frontend protocol to authenticate."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=SOCKET_TIMEOUT_S)
        self.buf = b""

    def send(self, type_byte, payload):
        self.sock.sendall(type_byte + struct.pack("!I", len(payload) + 4) + payload)

    def send_startup(self, user, database):
        body = struct.pack("!I", PROTOCOL_3_0)
        for k, v in (("user", user), ("database", database)):
            body += k.encode() + b"\0" + v.encode() + b"\0"
        body += b"\0"
        self.sock.sendall(struct.pack("!I", len(body) + 4) + body)

    def _read_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ProtocolFailure(f"connection closed while waiting for {n} bytes (have {len(self.buf)})")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        header = self._read_exact(5)
        (length,) = struct.unpack("!I", header[1:])
        return header[:1], self._read_exact(length - 4)

    def close(self):
        try:
            self.send(b"X", b"")
        except OSError:
            pass
        self.sock.close()


def error_fields(payload):
    """Decode an ErrorResponse body into {field code: value}."""
    fields = {}
    for part in payload.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return fields


def scram_proof(password, client_first_bare, server_first, client_final_without_proof):
    attrs = dict(item.split("=", 1) for item in server_first.split(","))
    salt = base64.b64decode(attrs["s"])
    iterations = int(attrs["i"])
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    auth_message = f"{client_first_bare},{server_first},{client_final_without_proof}".encode()
    signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
    return base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature))).decode()


def raw_login(host, port, user, database, password):
    """Authenticate with the raw client.

    Returns (first auth request code, result) where result is "ok" on
    ReadyForQuery or the ErrorResponse fields as a dict.
    """
    conn = RawConnection(host, port)
    first_request = None
    try:
        conn.send_startup(user, database)
        nonce = base64.b64encode(os.urandom(18)).decode()
        client_first_bare = f"n=,r={nonce}"
        client_final_without_proof = None
        while True:
            kind, payload = conn.recv()
            if kind == b"E":
                return first_request, error_fields(payload)
            if kind == b"Z":
                return first_request, "ok"
            if kind in (b"S", b"K", b"N"):
                continue  # ParameterStatus, BackendKeyData, NoticeResponse
            if kind != b"R":
                raise ProtocolFailure(f"unexpected message {kind!r} during authentication")
            (code,) = struct.unpack("!I", payload[:4])
            if first_request is None:
                first_request = code
            if code == AUTH_OK:
                continue
            if code == AUTH_CLEARTEXT:
                conn.send(b"p", password.encode() + b"\0")
            elif code == AUTH_MD5:
                salt = payload[4:8]
                inner = hashlib.md5((password + user).encode()).hexdigest().encode()
                conn.send(b"p", b"md5" + hashlib.md5(inner + salt).hexdigest().encode() + b"\0")
            elif code == AUTH_SASL:
                mechanisms = [m.decode() for m in payload[4:].split(b"\0") if m]
                if "SCRAM-SHA-256" not in mechanisms:
                    raise ProtocolFailure(f"SASL without SCRAM-SHA-256: {mechanisms}")
                data = ("n,," + client_first_bare).encode()
                conn.send(b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(data)) + data)
            elif code == AUTH_SASL_CONTINUE:
                server_first = payload[4:].decode()
                server_nonce = dict(i.split("=", 1) for i in server_first.split(","))["r"]
                client_final_without_proof = f"c=biws,r={server_nonce}"
                proof = scram_proof(password, client_first_bare, server_first, client_final_without_proof)
                conn.send(b"p", f"{client_final_without_proof},p={proof}".encode())
            elif code == AUTH_SASL_FINAL:
                continue  # server signature; AuthenticationOk follows
            else:
                raise ProtocolFailure(f"unsupported authentication request {code}")
    finally:
        conn.close()


def server_message(exc):
    """libpq's connection error text without its 'connection to server at ...' prefix."""
    text = str(exc).strip()
    text = re.sub(r'^connection to server at "[^"]*", port \d+ failed: ', "", text)
    return text


def psycopg2_login(host, port, user, database, password):
    dsn = f"host={host} port={port} user={user} dbname={database} sslmode=disable channel_binding=disable"
    try:
        conn = psycopg2.connect(dsn, password=password)
    except psycopg2.OperationalError as e:
        return "error", server_message(e)
    try:
        cur = conn.cursor()
        cur.execute("select current_user")
        return "ok", cur.fetchone()[0]
    finally:
        conn.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--direct-port", type=int, required=True)
    parser.add_argument("--proxy-port", type=int, required=True)
    parser.add_argument("--db", default="postgres")
    parser.add_argument("--login", action="append", required=True, help="USER:METHOD:PASSWORD")
    args = parser.parse_args()

    failures = []

    def check(cond, name, message):
        if cond:
            print(f"ok {name}")
        else:
            print(f"FAIL {name}: {message}")
            failures.append(name)

    sides = (("direct", args.direct_port), ("proxy", args.proxy_port))
    for spec in args.login:
        try:
            user, method, password = spec.split(":", 2)
        except ValueError:
            print(f"bad --login {spec!r}: expected USER:METHOD:PASSWORD", file=sys.stderr)
            return 2
        if method not in EXPECTED_REQUEST:
            print(f"bad method {method!r}: expected one of {sorted(EXPECTED_REQUEST)}", file=sys.stderr)
            return 2
        wrong = password + WRONG_SUFFIX
        want_message = f'password authentication failed for user "{user}"'

        bad_fields = {}
        bad_psycopg = {}
        for side, port in sides:
            tag = f"{user} {method} {side}"
            try:
                request, result = raw_login(args.host, port, user, args.db, password)
                check(request == EXPECTED_REQUEST[method], f"{tag} raw auth request",
                      f"server asked for {request}, expected {EXPECTED_REQUEST[method]}")
                check(result == "ok", f"{tag} raw good password", f"got {result!r}")
                request, result = raw_login(args.host, port, user, args.db, wrong)
                ok = isinstance(result, dict) and result.get("C") == "28P01" and result.get("M") == want_message
                check(ok, f"{tag} raw wrong password -> 28P01", f"got {result!r}")
                bad_fields[side] = result
            except (OSError, ProtocolFailure) as e:
                check(False, f"{tag} raw protocol", f"{type(e).__name__}: {e}")

            status, value = psycopg2_login(args.host, port, user, args.db, password)
            check((status, value) == ("ok", user), f"{tag} psycopg2 good password", f"got {status}: {value}")
            status, value = psycopg2_login(args.host, port, user, args.db, wrong)
            check(status == "error" and want_message in value, f"{tag} psycopg2 wrong password",
                  f"got {status}: {value!r}")
            bad_psycopg[side] = value

        check(bad_fields.get("direct") == bad_fields.get("proxy"), f"{user} ErrorResponse equal direct/proxy",
              f"direct {bad_fields.get('direct')!r} vs proxy {bad_fields.get('proxy')!r}")
        check(bad_psycopg.get("direct") == bad_psycopg.get("proxy"), f"{user} psycopg2 message equal direct/proxy",
              f"direct {bad_psycopg.get('direct')!r} vs proxy {bad_psycopg.get('proxy')!r}")

    print(f"{len(failures)} failed" + (f": {', '.join(failures)}" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
