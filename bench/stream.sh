#!/usr/bin/env bash
# bench/stream.sh — streaming a large result through danxia, one run.
#
# Owns the streaming benchmark described in bench/README.md: installs what it
# needs, builds danxia, seeds `danxia_bench.citizens` (synthetic personal
# data from tests/fixtures/citizens.sql: identity numbers, phones, cards,
# e-mail in every row) in database `test`, starts four danxias in front of
# 127.0.0.1:5432 that differ only in what they do to result rows:
#
#   off     [data] scan = "off"
#   all     [data] scan = "all"
#   sample  [data] scan = "sample", sample_every = 10
#   mask    [data] scan = "all", and the policy masks id_number, phone and
#           bank_card for the connecting user (danxia_bench_masked)
#
# and reads the whole table through each of them and directly, interleaved
# so that a noisy shared machine hurts every configuration alike, with two
# clients: psql (simple query protocol) and pgbench -M extended (extended
# protocol). It prints each configuration's median time, rows/s, MB/s and
# ratio to direct, and the targets (scan all >= 0.80 of direct, sample
# >= 0.90). Exits non-zero only when something failed to run or a check
# failed (a danxia that does not start, a read that errors, returns other
# rows than direct, or a mask that did not mask); a missed target is a
# result, not an error. Loopback only; everything it starts is stopped on
# exit.
#
# Usage: bash bench/stream.sh [--rows N] [--rounds N] [--quick] [--no-build]
#                             [--keep]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

# ---------------------------------------------------------------- options

ROWS=1000000       # rows of danxia_bench.citizens
ROUNDS=5           # interleaved rounds
PGBENCH_READS=3    # whole-table reads per pgbench run (-t)
BUILD=1
KEEP=0
DB=test
SCHEMA=danxia_bench
TABLE=$SCHEMA.citizens
ADMIN_USER=postgres
MASKED_USER=danxia_bench_masked
PG_HOST=127.0.0.1
PG_PORT=${BENCH_PG_PORT:-5432}
DANXIA_BIN=${DANXIA_BIN:-$ROOT/target/release/danxia}
FIXTURE=$ROOT/tests/fixtures/citizens.sql
# Targets: throughput of each configuration relative to direct.
TARGET_ALL=0.80
TARGET_SAMPLE=0.90
# Longest a single read may take before the run is declared hung.
READ_TIMEOUT=900

usage() {
    cat <<EOF
Usage: bash bench/stream.sh [options]
  --rows N      rows in $TABLE (default $ROWS; reseeded when different)
  --rounds N    interleaved rounds (default $ROUNDS)
  --quick       smoke run: 200000 rows, 1 round
  --no-build    do not run cargo build; use \$DANXIA_BIN ($DANXIA_BIN)
  --keep        keep the temp directory (configs, logs, audit, raw results)
Backend: 127.0.0.1:\$BENCH_PG_PORT (default 5432), database $DB, user
postgres with trust auth; the masked run connects as $MASKED_USER
(created by the script).
EOF
}

while [[ $# -gt 0 ]]; do
    case $1 in
    --rows) ROWS=${2:?--rows needs a number}; shift 2 ;;
    --rounds) ROUNDS=${2:?--rounds needs a number}; shift 2 ;;
    --quick) ROWS=200000; ROUNDS=1; shift ;;
    --no-build) BUILD=0; shift ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
    esac
done
for v in ROWS ROUNDS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done

# The configurations, in the order of the report; `direct` is PostgreSQL.
CONFIGS=(direct off all sample mask)
declare -A CFG_PORT=([direct]=$PG_PORT)
declare -A CFG_PID=([direct]="")
declare -A CFG_ADMIN=()
declare -A CFG_USER=([direct]=$ADMIN_USER [off]=$ADMIN_USER [all]=$ADMIN_USER
    [sample]=$ADMIN_USER [mask]=$MASKED_USER)
declare -A CFG_DATA=(
    [off]='scan = "off"'
    [all]='scan = "all"'
    [sample]='scan = "sample"
sample_every = 10'
    [mask]='scan = "all"'
)
# Whole-table reads done through each configuration (for the metrics check).
declare -A CFG_READS=([direct]=0 [off]=0 [all]=0 [sample]=0 [mask]=0)

# ---------------------------------------------------------------- state + cleanup

TMP=""

cleanup() {
    local rc=$?
    set +e
    trap - ERR
    local c
    for c in "${CONFIGS[@]}"; do
        [[ -n ${CFG_PID[$c]:-} ]] && stop_pid "${CFG_PID[$c]}" "danxia ($c)"
    done
    if [[ -n $TMP && -d $TMP ]]; then
        if [[ $KEEP -eq 1 || $rc -ne 0 ]]; then
            log "temp directory kept: $TMP"
        else
            rm -rf "$TMP"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
# Any unexpected failure names its line instead of ending the run silently.
set -E
trap 'printf "[bench] ERROR: command failed (exit %s) at %s line %s: %s\n" "$?" "${BASH_SOURCE[0]##*/}" "$LINENO" "$BASH_COMMAND" >&2' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

psql_backend() { psql -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U "$ADMIN_USER" "$@"; }

# ---------------------------------------------------------------- 1. dependencies + build

install_deps() {
    if [[ -f $ROOT/tests/install-deps.sh ]]; then
        log "installing dependencies with tests/install-deps.sh"
        bash "$ROOT/tests/install-deps.sh" >&2 || die "tests/install-deps.sh failed"
    fi
    need_cmd python3 python3
    need_cmd psql postgresql-client
    need_cmd pgbench postgresql-client
    [[ -f $FIXTURE ]] || die "fixture $FIXTURE not found"
}

build_danxia() {
    if [[ $BUILD -eq 1 ]]; then
        command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs) or use --no-build with DANXIA_BIN"
        log "cargo build --release -p danxia"
        (cd "$ROOT" && cargo build --release -p danxia >&2) || die "cargo build --release -p danxia failed"
    fi
    [[ -x $DANXIA_BIN ]] || die "danxia binary not found at $DANXIA_BIN"
    # Run a private copy: a rebuild in the work tree during the benchmark
    # must not swap the binary between configurations.
    cp "$DANXIA_BIN" "$TMP/danxia"
    DANXIA_BIN=$TMP/danxia
}

# ---------------------------------------------------------------- 2. data

# The table's comment records what it was seeded from; a table with another
# comment or row count is seeded again.
seed_marker() {
    local sum
    sum=$(sha256sum "$FIXTURE" | cut -c1-16)
    echo "danxia_citizens($ROWS, 0) from tests/fixtures/citizens.sql sha256:$sum"
}

prepare_data() {
    psql_backend -d "$DB" -tAc 'SELECT 1' >/dev/null 2>&1 ||
        die "PostgreSQL not reachable at $PG_HOST:$PG_PORT (database $DB) as user $ADMIN_USER (trust auth expected)"
    # The server's postmaster, when it runs here and we may read its pid
    # file: then the CPU used by everything else during a run is reported.
    local datadir
    datadir=$(psql_backend -d "$DB" -tAc 'SHOW data_directory' 2>/dev/null || true)
    PG_PM_PID=""
    if [[ -n $datadir && -r $datadir/postmaster.pid ]]; then
        PG_PM_PID=$(head -n 1 "$datadir/postmaster.pid")
        [[ -r /proc/$PG_PM_PID/stat ]] || PG_PM_PID=""
    fi
    [[ -n $PG_PM_PID ]] || warn "PostgreSQL's postmaster is not readable here: 'other load' will not be reported"

    local marker have count=""
    marker=$(seed_marker)
    have=$(psql_backend -d "$DB" -tAc \
        "SELECT coalesce(obj_description(to_regclass('$TABLE'), 'pg_class'), '')")
    if [[ $have == "$marker" ]]; then
        count=$(psql_backend -d "$DB" -tAc "SELECT count(*) FROM $TABLE")
    fi
    if [[ $count == "$ROWS" ]]; then
        log "$TABLE ready ($ROWS rows, $marker)"
    else
        log "seeding $TABLE with $ROWS rows (found: ${have:-no table}${count:+, $count rows})"
        local t0 t1
        t0=$(date +%s%N)
        psql_backend -d "$DB" >"$TMP/seed.log" 2>&1 <<EOF || { tail_log "$TMP/seed.log"; die "seeding $TABLE failed"; }
SET client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS $SCHEMA;
SET search_path = $SCHEMA;
\i '$FIXTURE'
BEGIN;
DROP TABLE IF EXISTS $TABLE;
CREATE TABLE $TABLE AS SELECT * FROM danxia_citizens($ROWS);
COMMENT ON TABLE $TABLE IS '$marker';
COMMIT;
VACUUM (FREEZE, ANALYZE) $TABLE;
EOF
        t1=$(date +%s%N)
        log "seeded $TABLE in $(((t1 - t0) / 1000000)) ms (generation, write, VACUUM FREEZE)"
    fi
    # The masked run's role: may read the table, nothing else.
    psql_backend -d "$DB" >"$TMP/role.log" 2>&1 <<EOF || { tail_log "$TMP/role.log"; die "creating role $MASKED_USER failed"; }
SET client_min_messages = warning;
DO \$\$ BEGIN CREATE ROLE $MASKED_USER LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$;
GRANT USAGE ON SCHEMA $SCHEMA TO $MASKED_USER;
GRANT SELECT ON ALL TABLES IN SCHEMA $SCHEMA TO $MASKED_USER;
EOF
    TABLE_MB=$(psql_backend -d "$DB" -tAc "SELECT round(pg_table_size('$TABLE') / 1e6)")
}

# ---------------------------------------------------------------- 3. danxia

# The policy every danxia enforces: mask three columns for MASKED_USER,
# allow everything else. The same for all configurations, so that they
# differ only in [data] and in the connecting user.
write_policy() {
    mkdir -p "$TMP/policy"
    cat >"$TMP/policy/10-bench.toml" <<EOF
# Written by bench/stream.sh.
[[rule]]
id = "mask-bench"
description = "The benchmark's masked user sees identity, phone and card numbers masked."
users = ["$MASKED_USER"]
action = "mask"
[rule.mask.columns]
id_number = "keep(6,4)"
phone = "keep(3,4)"
bank_card = "keep(0,4)"

[[rule]]
id = "allow-all"
description = "Everything else is allowed: the benchmark measures result handling, not refusals."
action = "allow"
EOF
}

# write_danxia_config FILE LISTEN_PORT ADMIN_PORT AUDIT_DIR DATA_TOML
# bench/pg.sh's configuration (audit on, full statement text, batched
# fsync) with the benchmark's policy in enforce mode and a [data] table.
write_danxia_config() {
    cat >"$1" <<EOF
[admin]
listen = "127.0.0.1:$3"

[audit]
dir = "$4"
statement_text = "full"
queue_capacity = 65536
on_full = "block"
on_error = "block"
fsync = "batch"
fsync_interval = "1s"
rotate_bytes = 268435456
rotate_daily = true

[limits]
max_message_bytes = 67108864
startup_timeout = "30s"
backend_connect_timeout = "5s"
shutdown_grace = "5s"

[policy]
dir = "$TMP/policy"
mode = "enforce"
allowlist = "$(dirname "$4")/allowlist.toml"

[data]
$5

[[listener]]
name = "pg"
protocol = "postgres"
listen = "127.0.0.1:$2"
backend = "$PG_HOST:$PG_PORT"
EOF
}

# start_danxia CONFIG — starts danxia for CONFIG; fails with danxia's own
# log when it exits (e.g. rejects the configuration) or does not answer.
start_danxia() {
    local c=$1 port admin dir=$TMP/$1 pid
    mkdir -p "$dir/audit"
    port=$(free_port)
    admin=$(free_port)
    while [[ $admin == "$port" ]]; do admin=$(free_port); done
    write_danxia_config "$dir/danxia.toml" "$port" "$admin" "$dir/audit" "${CFG_DATA[$c]}"
    "$DANXIA_BIN" run --config "$dir/danxia.toml" 2>"$dir/danxia.log" &
    pid=$!
    CFG_PID[$c]=$pid
    CFG_PORT[$c]=$port
    CFG_ADMIN[$c]=$admin
    if ! wait_http_ok "http://127.0.0.1:$admin/readyz" 30 "$pid"; then
        tail_log "$dir/danxia.log"
        if ! kill -0 "$pid" 2>/dev/null; then
            die "danxia ($c) exited at start-up: it rejected its configuration or could not start (log above, config $dir/danxia.toml)"
        fi
        die "danxia ($c) not ready on admin 127.0.0.1:$admin/readyz within 30 s"
    fi
    # A real query as the user this configuration is measured with.
    if ! PGCONNECT_TIMEOUT=3 timeout 10 psql -X -q -h 127.0.0.1 -p "$port" -U "${CFG_USER[$c]}" \
        -d "$DB" -tAc 'SELECT 1' >"$dir/select1.out" 2>&1; then
        tail_log "$dir/select1.out"
        tail_log "$dir/danxia.log"
        die "danxia ($c): SELECT 1 as ${CFG_USER[$c]} through 127.0.0.1:$port failed"
    fi
    log "danxia ($c) pid $pid on 127.0.0.1:$port (admin $admin), [data] $(tr '\n' ' ' <<<"${CFG_DATA[$c]}")"
}

# ---------------------------------------------------------------- 4. checks

# check_read CONFIG — one whole-table read (also the warm-up): as many rows
# as the table has, and the same bytes as direct unless masked.
DIRECT_BYTES=""
check_read() {
    local c=$1 out=$TMP/runs/check-$1 lines bytes
    if ! timeout "$READ_TIMEOUT" psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${CFG_PORT[$c]}" \
        -U "${CFG_USER[$c]}" "$DB" -c "select * from $TABLE" 2>"$out.err" | wc -lc >"$out.wc"; then
        tail_log "$out.err"
        [[ $c != direct ]] && tail_log "$TMP/$c/danxia.log"
        die "reading $TABLE through $c failed"
    fi
    read -r lines bytes <"$out.wc"
    CFG_READS[$c]=$((CFG_READS[$c] + 1))
    [[ $lines == "$ROWS" ]] ||
        die "reading $TABLE through $c returned $lines lines, expected $ROWS"
    if [[ $c == direct ]]; then
        DIRECT_BYTES=$bytes
    elif [[ $c != mask && $bytes != "$DIRECT_BYTES" ]]; then
        die "reading $TABLE through $c returned $bytes bytes, direct $DIRECT_BYTES: danxia changed the result"
    fi
    log "  check $(printf '%-7s' "$c") $lines rows, $bytes bytes"
}

# check_masked — the masked user really gets masked values: the first rows
# through danxia differ from direct in exactly the masked columns, and keep
# the characters the strategies keep.
check_masked() {
    local q="select id, name, id_number, phone, bank_card, email from $TABLE order by id limit 3"
    local direct masked
    direct=$(psql_backend -d "$DB" -At -F '|' -c "$q")
    masked=$(PGCONNECT_TIMEOUT=3 timeout 30 psql -X -q -At -F '|' -v ON_ERROR_STOP=1 -h 127.0.0.1 \
        -p "${CFG_PORT[mask]}" -U "$MASKED_USER" "$DB" -c "$q" 2>"$TMP/mask-check.err") ||
        { tail_log "$TMP/mask-check.err"; tail_log "$TMP/mask/danxia.log"; die "masked spot check query failed"; }
    python3 - "$direct" "$masked" <<'EOF' || die "the mask run does not mask: its figures would be meaningless"
import sys
direct, masked = (s.splitlines() for s in sys.argv[1:3])
if len(direct) != len(masked) or not direct:
    sys.exit(f"masked spot check: {len(masked)} rows, direct {len(direct)}")
# column: (kept at start, kept at end), as the policy's keep(a,b)
keep = {2: (6, 4), 3: (3, 4), 4: (0, 4)}
for d, m in zip(direct, masked):
    d, m = d.split("|"), m.split("|")
    for i, (dv, mv) in enumerate(zip(d, m)):
        if i in keep:
            a, b = keep[i]
            if mv == dv or mv[:a] != dv[:a] or mv[len(mv) - b:] != dv[len(dv) - b:]:
                sys.exit(f"column {i}: direct {dv!r}, through the mask {mv!r}: expected keep({a},{b})")
        elif mv != dv:
            sys.exit(f"column {i} (not masked) differs: direct {dv!r}, masked run {mv!r}")
print(f"masked spot check ok: {d[2]} -> {m[2]}, {d[3]} -> {m[3]}, {d[4]} -> {m[4]}", file=sys.stderr)
EOF
}

# metric_total ADMIN NAME — sum of a counter over all its series; empty when
# danxia does not export it.
metric_total() {
    python3 - "http://127.0.0.1:$1/metrics" "$2" <<'EOF'
import sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
vals = [float(l.split()[-1]) for l in text.splitlines()
        if l.startswith(sys.argv[2] + "{") or l.startswith(sys.argv[2] + " ")]
print(int(sum(vals)) if vals else "")
EOF
}

# check_metrics — what each danxia says it did agrees with its
# configuration (rows scanned, values masked). A metric danxia does not
# export is a warning; one that contradicts the configuration is an error:
# the figures would not measure what they claim.
check_metrics() {
    local c scanned masked reads expect
    for c in off all sample mask; do
        kill -0 "${CFG_PID[$c]}" 2>/dev/null || { tail_log "$TMP/$c/danxia.log"; die "danxia ($c) died during the benchmark"; }
        scanned=$(metric_total "${CFG_ADMIN[$c]}" danxia_result_rows_scanned_total) ||
            die "could not read danxia ($c) /metrics"
        masked=$(metric_total "${CFG_ADMIN[$c]}" danxia_masked_values_total)
        reads=${CFG_READS[$c]}
        expect=$((reads * ROWS))
        log "  danxia ($c): $reads whole-table reads ($expect rows); rows scanned ${scanned:-not exported}, values masked ${masked:-not exported}"
        if [[ -z $scanned ]]; then
            warn "danxia ($c) exports no danxia_result_rows_scanned_total: cannot confirm its scan mode"
        else
            case $c in
            off) ((scanned == 0)) || die "danxia (off) scanned $scanned rows with scan = \"off\"" ;;
            all | mask) ((scanned >= expect)) || die "danxia ($c) scanned $scanned rows of $expect read with scan = \"all\"" ;;
            sample) ((scanned * 20 >= expect && scanned * 5 <= expect)) ||
                die "danxia (sample) scanned $scanned rows of $expect read with sample_every = 10" ;;
            esac
        fi
        if [[ $c == mask ]]; then
            if [[ -z $masked ]]; then
                warn "danxia (mask) exports no danxia_masked_values_total"
            else
                # Three columns of every row read by the masked user.
                ((masked >= 3 * expect)) || die "danxia (mask) masked $masked values, expected at least $((3 * expect))"
            fi
        fi
    done
}

# ---------------------------------------------------------------- 5. timed reads

RUNS_TSV=""
PG_PM_PID=""

# load_snapshot — "wall_ns machine_busy_ticks our_ticks": ours are this
# script's reaped children (psql, pgbench), the PostgreSQL server with its
# backends and the danxias. machine - ours over a run = load from others.
load_snapshot() {
    local ours pg=0 c p
    ours=$(proc_children_ticks $$)
    [[ -n $PG_PM_PID ]] && pg=$(proc_tree_ticks "$PG_PM_PID")
    for c in "${CONFIGS[@]}"; do
        p=${CFG_PID[$c]:-}
        [[ -n $p ]] && ours=$((ours + $(proc_cpu_ticks "$p")))
    done
    echo "$(date +%s%N) $(machine_busy_ticks) $((ours + pg))"
}

# other_cores "SNAP_BEFORE" "SNAP_AFTER" — cores' worth of CPU used by other
# processes between the two snapshots ("" when unknown).
other_cores() {
    [[ -n $PG_PM_PID ]] || { echo ""; return; }
    awk -v a="$1" -v b="$2" -v hz="$CLK_TCK" 'BEGIN {
        split(a, x, " "); split(b, y, " ");
        other = (y[2] - x[2]) - (y[3] - x[3]); if (other < 0) other = 0;
        printf "%.2f", other / hz / ((y[1] - x[1]) / 1e9) }'
}

# record ROUND WORKLOAD CONFIG SECONDS_PER_READ CPU_TICKS READS OTHER
record() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RUNS_TSV"
}

danxia_ticks() {
    local p=${CFG_PID[$1]:-}
    if [[ -n $p ]]; then proc_cpu_ticks "$p"; else echo 0; fi
}

# run_psql ROUND CONFIG — one whole-table read with psql (simple protocol).
run_psql() {
    local r=$1 c=$2 out=$TMP/runs/psql-r$1-$2 t0 t1 cpu0 cpu1 snap0 snap1 other
    cpu0=$(danxia_ticks "$c")
    snap0=$(load_snapshot)
    t0=$(date +%s%N)
    if ! timeout "$READ_TIMEOUT" psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${CFG_PORT[$c]}" \
        -U "${CFG_USER[$c]}" "$DB" -c "select * from $TABLE" >/dev/null 2>"$out.err"; then
        tail_log "$out.err"
        [[ $c != direct ]] && tail_log "$TMP/$c/danxia.log"
        die "psql read through $c failed in round $r"
    fi
    t1=$(date +%s%N)
    cpu1=$(danxia_ticks "$c")
    sleep 0.2 # let the postmaster reap the backend (its CPU is ours)
    snap1=$(load_snapshot)
    other=$(other_cores "$snap0" "$snap1")
    CFG_READS[$c]=$((CFG_READS[$c] + 1))
    local secs
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", (b - a) / 1e9 }')
    record "$r" psql "$c" "$secs" $((cpu1 - cpu0)) 1 "$other"
    log "  round $r  psql     $(printf '%-7s' "$c") ${secs} s  other load ${other:-n/a} cores"
}

# run_pgbench ROUND CONFIG — PGBENCH_READS whole-table reads with pgbench
# -M extended (Parse/Bind/Execute); time per read from its tps.
run_pgbench() {
    local r=$1 c=$2 out=$TMP/runs/pgbench-r$1-$2.txt cpu0 cpu1 snap0 snap1 other
    cpu0=$(danxia_ticks "$c")
    snap0=$(load_snapshot)
    if ! timeout $((READ_TIMEOUT * PGBENCH_READS)) pgbench -h 127.0.0.1 -p "${CFG_PORT[$c]}" \
        -U "${CFG_USER[$c]}" -n -M extended -c 1 -t "$PGBENCH_READS" -f "$TMP/read.sql" "$DB" \
        >"$out" 2>&1; then
        tail_log "$out"
        [[ $c != direct ]] && tail_log "$TMP/$c/danxia.log"
        die "pgbench -M extended through $c failed in round $r"
    fi
    cpu1=$(danxia_ticks "$c")
    sleep 0.2
    snap1=$(load_snapshot)
    other=$(other_cores "$snap0" "$snap1")
    local tps done_ failed secs
    tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time).*/\1/p' "$out")
    done_=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")
    [[ -n $tps && -n $done_ ]] || { tail_log "$out"; die "could not parse pgbench output for $c (see $out)"; }
    [[ $done_ == "$PGBENCH_READS" && ${failed:-0} -eq 0 ]] ||
        { tail_log "$out"; die "pgbench through $c: $done_ of $PGBENCH_READS reads done, ${failed:-0} failed"; }
    CFG_READS[$c]=$((CFG_READS[$c] + PGBENCH_READS))
    secs=$(awk -v t="$tps" 'BEGIN { printf "%.4f", 1 / t }')
    record "$r" pgbench "$c" "$secs" $((cpu1 - cpu0)) "$PGBENCH_READS" "$other"
    log "  round $r  pgbench  $(printf '%-7s' "$c") ${secs} s/read  other load ${other:-n/a} cores"
}

# ---------------------------------------------------------------- 6. report

report() {
    python3 - "$RUNS_TSV" "$TMP/meta.json" "$CLK_TCK" "$TARGET_ALL" "$TARGET_SAMPLE" <<'PYEOF'
import json, os, statistics, sys

runs_tsv, meta_json, clk, target_all, target_sample = sys.argv[1:6]
clk, target_all, target_sample = int(clk), float(target_all), float(target_sample)
meta = json.load(open(meta_json))
med = statistics.median
rows_n, mb = meta["rows"], meta["bytes"] / 1e6

runs = []
for line in open(runs_tsv):
    r, w, c, secs, ticks, reads, other = line.rstrip("\n").split("\t")
    runs.append(dict(round=int(r), workload=w, config=c, s=float(secs), ticks=int(ticks),
                     reads=int(reads), other=float(other) if other else None))
configs = ["direct", "off", "all", "sample", "mask"]
label = {"direct": "direct", "off": "scan off", "all": "scan all", "sample": "sample 1/10",
         "mask": "all + mask"}
workloads = [("psql", "psql -At (simple)"), ("pgbench", "pgbench -M extended")]

def ratios(w, c):
    out = []
    for r in sorted({x["round"] for x in runs}):
        a = [x["s"] for x in runs if x["round"] == r and x["workload"] == w and x["config"] == c]
        d = [x["s"] for x in runs if x["round"] == r and x["workload"] == w and x["config"] == "direct"]
        if a and d:
            out.append(d[0] / a[0])  # throughput ratio: direct time / this time
    return out

print()
print(f"== danxia streaming benchmark  {meta['date']}")
print(f"   machine: {meta['cpu']} x{meta['nproc']}, {meta['mem']}, kernel {meta['kernel']}")
print(f"   {meta['pg']};  {meta['danxia']}")
print(f"   {meta['table']}: {rows_n} rows, {mb:.0f} MB as psql text, {meta['table_mb']} MB on disk; "
      f"rounds: {meta['rounds']}; load average at start {meta['load']}")
print()
hdr = (f"{'workload':<21}{'config':<13}{'med s':>8}{'rows/s':>11}{'MB/s':>8}{'vs direct':>11}"
       f"{'range':>12}{'danxia CPU s':>14}")
print(hdr)
print("-" * len(hdr))
results = {}
for w, wl in workloads:
    for c in configs:
        rs = [x for x in runs if x["workload"] == w and x["config"] == c]
        if not rs:
            continue
        s = med([x["s"] for x in rs])
        rt = ratios(w, c)
        ratio = med(rt)
        cpu = med([x["ticks"] / clk / x["reads"] for x in rs]) if c != "direct" else None
        results[(w, c)] = dict(s=s, ratio=ratio, ratios=rt, cpu=cpu)
        rng = f"{min(rt):.2f}-{max(rt):.2f}" if c != "direct" else ""
        print(f"{wl:<21}{label[c]:<13}{s:>8.3f}{rows_n / s:>11.0f}{mb / s:>8.1f}{ratio:>11.3f}{rng:>12}"
              f"{'' if cpu is None else f'{cpu:.3f}':>14}")
print("(med s: median seconds per whole-table read; rows/s and MB/s from it, MB = the psql -At text of")
print(" the table; vs direct: median over rounds of (direct time / this time) in the same round, range =")
print(" lowest-highest per-round ratio; danxia CPU s: the danxia process's utime+stime per read)")
print()
def fmt_other(v):
    return "n/a" if v is None else f"{v:.2f}"
print("per run: seconds per read [other load in cores: CPU used during the run by processes other than")
print("the clients, PostgreSQL and the danxias]")
for w, wl in workloads:
    for c in configs:
        rs = sorted((x for x in runs if x["workload"] == w and x["config"] == c), key=lambda x: x["round"])
        print(f"  {w:<8}{label[c]:<12} " + "  ".join(f"r{x['round']} {x['s']:.3f} [{fmt_other(x['other'])}]" for x in rs))
others = [x["other"] for x in runs if x["other"] is not None]
if others and max(others) > 0.25:
    print(f"NOTE: other processes used up to {max(others):.2f} cores during some runs (this machine has "
          f"{meta['nproc']}): trust the per-round ratios and their range more than absolute times, "
          "and rerun on a quiet machine for publishable figures.")

print()
print("== summary")
rows = []
def add(name, value, target):
    if target is None:
        rows.append((name, f"{value:.3f}", "", "info"))
    else:
        rows.append((name, f"{value:.3f}", f">= {target}", "PASS" if value >= target else "MISS"))
for w, wl in workloads:
    add(f"scan all / direct, {wl}", results[(w, "all")]["ratio"], target_all)
    add(f"sample 1/10 / direct, {wl}", results[(w, "sample")]["ratio"], target_sample)
for w, wl in workloads:
    add(f"scan off / direct, {wl}", results[(w, "off")]["ratio"], None)
    add(f"all + mask / direct, {wl}", results[(w, "mask")]["ratio"], None)
width = max(len(r[0]) for r in rows)
for name, v, tgt, res in rows:
    print(f"  {name:<{width}}  {v:>7}  {tgt:>8}  {res}")

json.dump({"meta": meta, "runs": runs,
           "summary": [dict(zip(("figure", "measured", "target", "result"), r)) for r in rows]},
          open(os.path.join(os.path.dirname(runs_tsv), "results.json"), "w"), indent=1)
PYEOF
}

write_meta() {
    python3 - "$TMP/meta.json" <<EOF
import json, sys
json.dump({
  "date": "$(date -u '+%Y-%m-%d %H:%M UTC')",
  "cpu": """$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)""",
  "nproc": "$(nproc)",
  "mem": "$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)",
  "kernel": "$(uname -r)",
  "pg": """$(psql_backend -d "$DB" -tAc "SELECT split_part(version(), ' on ', 1)")""",
  "danxia": """$("$DANXIA_BIN" --version 2>&1 | head -n 1 || true)""",
  "table": "$TABLE", "rows": $ROWS, "bytes": $DIRECT_BYTES, "table_mb": "$TABLE_MB",
  "rounds": $ROUNDS, "pgbench_reads": $PGBENCH_READS,
  "load": "$(cut -d' ' -f1-3 /proc/loadavg)",
}, open(sys.argv[1], "w"))
EOF
}

# ---------------------------------------------------------------- main

main() {
    install_deps
    TMP=$(mktemp -d /tmp/danxia-bench-stream.XXXXXX)
    mkdir -p "$TMP/runs"
    RUNS_TSV=$TMP/runs.tsv
    : >"$RUNS_TSV"
    echo "select * from $TABLE;" >"$TMP/read.sql"

    build_danxia
    prepare_data
    write_policy
    local c
    for c in "${CONFIGS[@]}"; do
        [[ $c == direct ]] || start_danxia "$c"
    done

    log "checks and warm-up: one read of $TABLE per configuration"
    for c in "${CONFIGS[@]}"; do check_read "$c"; done
    check_masked
    write_meta

    local n=${#CONFIGS[@]} round i order
    for ((round = 1; round <= ROUNDS; round++)); do
        order=()
        for ((i = 0; i < n; i++)); do order+=("${CONFIGS[$(((i + round - 1) % n))]}"); done
        log "round $round/$ROUNDS: order ${order[*]}"
        for c in "${order[@]}"; do run_psql "$round" "$c"; done
        for c in "${order[@]}"; do run_pgbench "$round" "$c"; done
    done

    log "what each danxia counted"
    check_metrics
    for c in off all sample mask; do
        stop_pid "${CFG_PID[$c]}" "danxia ($c)"
        CFG_PID[$c]=""
    done

    report
    if [[ $KEEP -eq 1 ]]; then
        log "raw results: $TMP/results.json"
    else
        log "raw results, logs and audit files are deleted on exit; --keep keeps them"
    fi
}

main
