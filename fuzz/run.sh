#!/usr/bin/env bash
# Builds and runs danxia's cargo-fuzz targets from the committed seeds:
#   bash fuzz/run.sh [--time SECONDS] [--jobs N] [TARGET...]
# --time: seconds per target (default 60); --jobs: targets run at once
# (default 1); no TARGET: every target `cargo fuzz list` knows.
# Build: cargo +nightly fuzz build, release with debug assertions and
# overflow checks. Sanitizer: none by default (every danxia crate forbids
# unsafe code; ASan would halve the exec rate on a 2-core machine), set
# FUZZ_SANITIZER=address to use it. Each run: fuzz/seeds/<target>/ is copied
# into the scratch corpus fuzz/corpus/<target>/ (libFuzzer's growth stays
# there between runs, git-ignored), memory is capped (-rss_limit_mb, default
# 1024, env FUZZ_RSS_MB) and one input may take at most FUZZ_TIMEOUT seconds
# (default 10). Prints one line per target (runs, execs/s, coverage, result)
# and exits 1 when any target crashed, hung or ran out of memory, naming the
# input that did it (fuzz/artifacts/<target>/...). Needs only crates.io.
set -euo pipefail

FUZZ="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TIME=60
JOBS=1
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --time) TIME="$2"; shift 2 ;;
        --jobs) JOBS="$2"; shift 2 ;;
        -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}"; exit 0 ;;
        -*) echo "fuzz/run.sh: unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: needs a nightly toolchain (rustup toolchain install nightly)" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

SANITIZER="${FUZZ_SANITIZER:-none}"
# The instrumented build has its own target dir (FUZZ_TARGET_DIR), never
# the main workspace's.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$FUZZ/target}"
RSS_MB="${FUZZ_RSS_MB:-1024}"
TIMEOUT="${FUZZ_TIMEOUT:-10}"
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list --fuzz-dir "$FUZZ")
fi

build_start=$(date +%s)
mkdir -p "$FUZZ/logs"
if ! cargo +nightly fuzz build --fuzz-dir "$FUZZ" -O -a -s "$SANITIZER" >"$FUZZ/logs/build.log" 2>&1; then
    tail -40 "$FUZZ/logs/build.log" >&2
    echo "fuzz/run.sh: build failed (log: $FUZZ/logs/build.log)" >&2
    exit 2
fi
echo "fuzz: build $(( $(date +%s) - build_start )) s (sanitizer $SANITIZER)"

triple="$(rustc +nightly -vV | sed -n 's/^host: //p')"
BIN="$CARGO_TARGET_DIR/$triple/release"

# run_one TARGET: fuzzes TARGET for $TIME s; the log holds the verdict.
run_one() {
    local t="$1"
    local corpus="$FUZZ/corpus/$t" artifacts="$FUZZ/artifacts/$t/"
    mkdir -p "$corpus" "$artifacts"
    if [ -d "$FUZZ/seeds/$t" ]; then
        cp -f "$FUZZ/seeds/$t"/* "$corpus"/ 2>/dev/null || true
    fi
    local status=0
    "$BIN/$t" "$corpus" -max_total_time="$TIME" -rss_limit_mb="$RSS_MB" \
        -timeout="$TIMEOUT" -artifact_prefix="$artifacts" -print_final_stats=1 \
        >"$FUZZ/logs/$t.log" 2>&1 || status=$?
    echo "$status" >"$FUZZ/logs/$t.status"
}

running=0
for t in "${targets[@]}"; do
    if [ ! -x "$BIN/$t" ]; then
        echo "fuzz/run.sh: no such target $t (see cargo fuzz list --fuzz-dir fuzz)" >&2
        exit 2
    fi
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait

failed=0
printf 'fuzz: %-16s %12s %10s %8s  %s\n' target runs execs/s cov result
for t in "${targets[@]}"; do
    log="$FUZZ/logs/$t.log"
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    status=$(cat "$FUZZ/logs/$t.status")
    if [ "$status" -eq 0 ]; then
        result=ok
    else
        failed=1
        kind=$(grep -o -m1 -E 'out-of-memory|timeout|deadly signal|panicked at [^ ]*' "$log" || echo "exit $status")
        input=$(sed -n 's/.*Test unit written to //p' "$log" | tail -1)
        result="FAILED ($kind): ${input:-see $log}"
    fi
    printf 'fuzz: %-16s %12s %10s %8s  %s\n' "$t" "${runs:-?}" "${rate:-?}" "${cov:-?}" "$result"
done
if [ "$failed" -ne 0 ]; then
    echo "fuzz: FAILED — reproduce with $BIN/<target> <input>; logs in $FUZZ/logs/" >&2
fi
exit "$failed"
