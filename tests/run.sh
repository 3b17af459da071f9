#!/usr/bin/env bash
# The project's single test command (run from anywhere):
#   bash tests/run.sh [extra cargo-nextest arguments]
# Installs missing test dependencies, checks that PostgreSQL answers on
# 127.0.0.1:5432, checks dependencies with cargo-deny (licences, bans,
# sources; advisories only with a local advisory DB), builds the whole
# workspace in release mode once, runs every unit and end-to-end test with
# cargo-nextest against that build, scans everything the run wrote for
# leaked secrets (tests/scan_secrets.py), then a fuzz smoke (every
# cargo-fuzz target for FUZZ_SMOKE_SECONDS, default 5, from the committed
# seeds). The exit status is non-zero when nextest, the scan or the fuzz
# smoke fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash tests/install-deps.sh

if ! pg_isready -q -h 127.0.0.1 -p 5432 -t 10; then
    echo "run.sh: PostgreSQL is not answering on 127.0.0.1:5432." >&2
    echo "run.sh: start it, e.g. 'pg_ctlcluster --skip-systemctl-redirect 15 main start'," >&2
    echo "run.sh: with trust auth for users root and postgres and a database named test." >&2
    exit 1
fi

# Dependency policy (deny.toml). Advisories need the RustSec DB, fetched
# from GitHub: checked only when a local copy exists.
# deny.toml reads the advisory DB's path from DANXIA_ADVISORY_DB, so it is
# set before any cargo deny command.
export DANXIA_ADVISORY_DB="${DANXIA_ADVISORY_DB:-${CARGO_HOME:-$HOME/.cargo}/advisory-dbs}"
cargo deny check --hide-inclusion-graph licenses bans sources
if [ -n "$(ls -A "$DANXIA_ADVISORY_DB" 2>/dev/null)" ]; then
    cargo deny --offline check --hide-inclusion-graph advisories
else
    echo "run.sh: cargo deny advisories SKIPPED: no local RustSec advisory DB in $DANXIA_ADVISORY_DB (it is fetched from GitHub, which this machine cannot reach; put a clone there or set DANXIA_ADVISORY_DB)"
fi

# Binaries and test targets in one build: built separately, cargo resolves
# features without and then with the dev-dependencies and compiles many
# crates twice (measured: 8m52s + 10m58s cold, against one build).
cargo build --release --workspace --bins --tests

export DANXIA_BIN="$ROOT/target/release/danxia"
if [ ! -x "$DANXIA_BIN" ]; then
    echo "run.sh: $DANXIA_BIN was not built" >&2
    exit 1
fi

# What every danxia instance wrote and the secrets tests handed it, for
# the scan below (tests/src/artifacts.rs).
export DANXIA_TEST_ARTIFACTS="$ROOT/target/test-artifacts"
rm -rf "$DANXIA_TEST_ARTIFACTS"
mkdir -p "$DANXIA_TEST_ARTIFACTS"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
rm -f "$TARGET_DIR/nextest/default/junit.xml"

set +e
cargo nextest run --release --workspace "$@"
status=$?
# No password, token, key or masked value in any log, audit record or
# test output of the whole run.
python3 tests/scan_secrets.py "$DANXIA_TEST_ARTIFACTS" "$TARGET_DIR/nextest/default/junit.xml"
scan=$?
set -e
if [ "$status" -eq 0 ] && [ "$scan" -ne 0 ]; then
    status=$scan
fi

# Fuzz smoke: a few seconds per target, two at a time (fuzz/run.sh prints
# one line per target and exits non-zero on a crash, hang or OOM).
# The instrumented build lives outside the checkout (a cache, like CI
# caches): a fresh clone on the same machine rebuilds only what changed.
export FUZZ_TARGET_DIR="${FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/danxia/fuzz-target}"
fuzz_status=0
bash fuzz/run.sh --time "${FUZZ_SMOKE_SECONDS:-5}" --jobs 2 || fuzz_status=$?
if [ "$status" -eq 0 ]; then
    status=$fuzz_status
fi
exit "$status"
