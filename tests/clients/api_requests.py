#!/usr/bin/env python3
"""api_requests.py: a real HTTP client (Python `requests`) against danxia's
HTTP API listener, used by tests/tests/http_api.rs.

Owns: N GET requests for /api/v1/persons/{id} (ids 1..N) on ONE
`requests.Session` (one keep-alive connection), each checked as the
caller `dept-health` of the shipped pack `policies/packs/api-example` must
see it: 200, JSON, the granted fields only (no `id`, no `address`), the
identity number masked keep(6,4) and the phone keep(3,4). Prints one JSON
summary line on stdout; exits 0 when every request passed, 1 otherwise
(with what failed on stderr).

    python3 tests/clients/api_requests.py --base http://127.0.0.1:PORT --key KEY [--n 50]
"""

from __future__ import annotations

import argparse
import json
import sys

import requests

GRANTED = {"name", "gender", "birth", "district", "id_number", "phone"}
TIMEOUT_S = 30


def masked(value: str, first: int, last: int) -> bool:
    """True when `value` keeps `first` and `last` characters and stars the rest."""
    middle = value[first : len(value) - last]
    return len(value) > first + last and middle and set(middle) == {"*"}


def check(pid: int, resp: requests.Response) -> list[str]:
    problems = []
    if resp.status_code != 200:
        return [f"id {pid}: status {resp.status_code}: {resp.text[:300]}"]
    try:
        doc = resp.json()
    except ValueError as e:
        return [f"id {pid}: not JSON ({e}): {resp.text[:300]}"]
    if not isinstance(doc, dict):
        return [f"id {pid}: not an object: {doc!r}"]
    extra = set(doc) - GRANTED
    if extra:
        problems.append(f"id {pid}: fields outside the grant: {sorted(extra)}")
    if not isinstance(doc.get("name"), str) or not doc["name"]:
        problems.append(f"id {pid}: no name: {doc}")
    if not masked(str(doc.get("id_number", "")), 6, 4):
        problems.append(f"id {pid}: id_number not masked keep(6,4): {doc.get('id_number')!r}")
    if not masked(str(doc.get("phone", "")), 3, 4):
        problems.append(f"id {pid}: phone not masked keep(3,4): {doc.get('phone')!r}")
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="danxia's HTTP listener, e.g. http://127.0.0.1:8443")
    ap.add_argument("--key", required=True, help="dept-health's API key")
    ap.add_argument("--n", type=int, default=50, help="requests (ids 1..N)")
    args = ap.parse_args(argv)

    problems: list[str] = []
    statuses: dict[int, int] = {}
    with requests.Session() as s:
        s.headers["x-api-key"] = args.key
        for pid in range(1, args.n + 1):
            r = s.get(f"{args.base}/api/v1/persons/{pid}", timeout=TIMEOUT_S)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            problems.extend(check(pid, r))
    print(json.dumps({"requests": args.n, "statuses": statuses, "problems": len(problems)}))
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
