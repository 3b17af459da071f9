#!/usr/bin/env python3
"""After the whole test run: no secret a test handed danxia may appear in
anything danxia wrote or the run printed.

    python3 tests/scan_secrets.py ARTIFACTS_DIR [EXTRA_FILE ...]

ARTIFACTS_DIR is what the harness kept (tests/src/artifacts.rs): every
danxia instance's log and audit files under instances/, and secrets.txt,
one secret per line (admin tokens, API keys, passwords, JWT signatures,
private-key lines, values a mask hid). EXTRA_FILEs are scanned too: the
test runner's JUnit report, which holds every test's stdout and stderr.

Prints one summary line; on a hit, names the file, the line and a
shortened form of the secret (never the whole secret), and exits 1.
Exits 2 when there is nothing to scan although tests ran (a broken
harness must not pass as "no leaks").
"""
import os
import re
import sys

MIN_SECRET_CHARS = 8  # as in tests/src/artifacts.rs


def shorten(secret: bytes) -> str:
    s = secret.decode("utf-8", "replace")
    return f"{s[:3]}…({len(s)} chars)"


def files_under(root):
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            yield os.path.join(dirpath, n)


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    root = argv[1]
    extra = argv[2:]
    secrets_file = os.path.join(root, "secrets.txt")
    instances = os.path.join(root, "instances")
    secrets = set()
    if os.path.exists(secrets_file):
        with open(secrets_file, "rb") as f:
            for line in f:
                s = line.rstrip(b"\n")
                if len(s.decode("utf-8", "replace")) >= MIN_SECRET_CHARS:
                    secrets.add(s)
    targets = list(files_under(instances)) if os.path.isdir(instances) else []
    targets += [p for p in extra if os.path.isfile(p)]
    if not secrets and not targets:
        print("scan_secrets: nothing registered and nothing kept (no e2e test ran): nothing to scan")
        return 0
    if not secrets or not targets:
        print(
            f"scan_secrets: FAILED: {len(secrets)} secrets registered but {len(targets)} files kept; "
            f"the harness did not record the run ({root})"
        )
        return 2
    # One alternation, longest first so a secret that contains another is
    # reported as itself.
    pattern = re.compile(
        b"|".join(re.escape(s) for s in sorted(secrets, key=len, reverse=True))
    )
    # The matcher itself must find a planted secret: a scan that can never
    # match would report "clean" forever.
    probe = next(iter(secrets))
    assert pattern.search(b"before " + probe + b" after"), "scanner self-check"
    hits = []
    scanned = 0
    for path in targets:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            print(f"scan_secrets: cannot read {path}: {e}", file=sys.stderr)
            continue
        scanned += len(data)
        for m in pattern.finditer(data):
            line = data.count(b"\n", 0, m.start()) + 1
            hits.append((path, line, m.group(0)))
    n_instances = len(os.listdir(instances)) if os.path.isdir(instances) else 0
    summary = (
        f"{len(secrets)} secrets against {len(targets)} files "
        f"({scanned / 1e6:.1f} MB; {n_instances} danxia instances)"
    )
    if hits:
        print(f"scan_secrets: FAILED: {len(hits)} secret occurrences in {summary}")
        for path, line, s in hits[:50]:
            print(f"  {path}:{line}: {shorten(s)}")
        return 1
    print(f"scan_secrets: ok: no secret found; {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
