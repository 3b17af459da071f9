#!/usr/bin/env bash
# The project's single test command (run from anywhere):
#   bash tests/run.sh [extra cargo-nextest arguments]
# Installs missing test dependencies, checks that PostgreSQL answers on
# 127.0.0.1:5432, builds the whole workspace in release mode once, then runs
# every unit and end-to-end test with cargo-nextest against that build,
# then scans everything the run wrote for leaked secrets
# (tests/scan_secrets.py). The exit status is nextest's, or the scan's
# when the tests passed.
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

cargo build --release --workspace --bins

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
exit "$status"
