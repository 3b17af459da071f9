#!/usr/bin/env bash
# bench/audit_search.sh — how fast `danxia audit search` is on ~180 days of
# audit files.
#
# Generates a corpus in the writer's real, chained format with the ignored
# test `audit::search::tests::generate_bench_corpus` (one file per day over
# 180 days, $MB MB in all, 40 users plus one `rare` record a day), then times
# `danxia audit search` (the release binary) for a selective query
# (`--user rare --since 30d`), a table + decision query over the whole
# period, a table query that must parse every line, and a full scan (`--text` of a string that never occurs), each
# twice: the first run after dropping nothing (the page cache holds what the
# generator wrote when memory allows), so read the figures as CPU-bound
# scanning speed. Prints wall time, MB read and MB/s from search's summary.
# Deletes the corpus at the end unless --keep.
#
# Usage: bash bench/audit_search.sh [--mb N] [--keep]
# Env: CARGO_TARGET_DIR as for cargo; DANXIA_BIN=path uses that binary.
set -euo pipefail
cd "$(dirname "$0")/.."
MB=2048
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --mb) MB="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
TARGET="${CARGO_TARGET_DIR:-target}"
BIN="${DANXIA_BIN:-$TARGET/release/danxia}"
[ -n "${DANXIA_BIN:-}" ] || cargo build --release -p danxia --bins
DIR="$(mktemp -d /tmp/danxia-audit-bench.XXXXXX)"
cleanup() { [ "$KEEP" = 1 ] && echo "corpus kept in $DIR" || rm -rf "$DIR"; }
trap cleanup EXIT
echo "generating ~$MB MB into $DIR"
gen_start=$(date +%s.%N)
DANXIA_AUDIT_BENCH_DIR="$DIR" DANXIA_AUDIT_BENCH_MB="$MB" \
  cargo nextest run --release -p danxia --run-ignored ignored-only \
  -E 'test(generate_bench_corpus)' >/dev/null
gen_end=$(date +%s.%N)
echo "corpus: $(ls "$DIR" | wc -l) files, $(du -sm "$DIR" | cut -f1) MB, generated in $(echo "$gen_end - $gen_start" | bc) s"
run() {
  local label="$1"; shift
  for round in 1 2; do
    local s e summary
    s=$(date +%s.%N)
    summary=$("$BIN" audit search "$DIR" "$@" --format json 2>&1 >/dev/null || true)
    e=$(date +%s.%N)
    printf '%-34s round %d: %6.2f s wall; %s\n' "$label" "$round" "$(echo "$e - $s" | bc)" "$summary"
  done
}
run "selective (--user rare --since 30d)" --user rare --since 30d
run "deny on payroll, 180 days" --table payroll --decision deny
run "table payroll, 180 days (parses all)" --table payroll
run "full scan (--text never)" --text never-occurs-anywhere
"$BIN" audit verify "$DIR" | cut -c1-120
