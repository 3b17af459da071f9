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
import subprocess
import sys
import tempfile

MIN_SECRET_CHARS = 8  # as in tests/src/artifacts.rs


def shorten(secret: bytes) -> str:
    s = secret.decode("utf-8", "replace")
    return f"{s[:3]}…({len(s)} chars)"


def grep(patterns, files):
    """(path, line, matched bytes) of every occurrence of a pattern line."""
    hits = []
    # Batches keep the command line short; -a: binary files are text too.
    for i in range(0, len(files), 200):
        out = subprocess.run(
            ["grep", "-F", "-a", "-n", "-o", "-H", "-f", patterns, "--", *files[i : i + 200]],
            stdout=subprocess.PIPE,
            env={**os.environ, "LC_ALL": "C"},
            check=False,
        )
        if out.returncode > 1:
            raise SystemExit(f"scan_secrets: grep failed with status {out.returncode}")
        for line in out.stdout.splitlines():
            # path:line:match; a path holds no ':' here (harness names).
            path, _, rest = line.partition(b":")
            num, _, match = rest.partition(b":")
            hits.append((path.decode("utf-8", "replace"), int(num or 0), match))
    return hits


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
    # GNU grep -F matches all the secrets in one pass (Aho-Corasick style);
    # a Python alternation of a thousand literals takes minutes on 100 MB.
    # The matcher must find a planted secret first: a scan that can never
    # match would report "clean" forever.
    with tempfile.TemporaryDirectory() as tmp:
        patterns = os.path.join(tmp, "patterns")
        with open(patterns, "wb") as f:
            f.write(b"".join(s + b"\n" for s in sorted(secrets)))
        probe = os.path.join(tmp, "probe")
        with open(probe, "wb") as f:
            f.write(b"before " + next(iter(secrets)) + b" after\n")
        assert grep(patterns, [probe]), "scanner self-check: a planted secret was not found"
        hits = grep(patterns, targets)
    scanned = sum(os.path.getsize(p) for p in targets)
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
