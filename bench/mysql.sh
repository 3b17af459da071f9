#!/usr/bin/env bash
# bench/mysql.sh — MySQL/MariaDB benchmark: direct vs danxia, one run.
#
# Owns the MySQL benchmark procedure described in bench/README.md: checks its
# tools, builds danxia, creates the `danxia_bench` database on the MariaDB
# server at 127.0.0.1:3306 and fills it with sysbench's tables, starts danxia
# (a MySQL listener; audit on; the default policy pack enforced) in front of
# it, then measures sysbench oltp_point_select and oltp_read_only, with
# server-side prepared statements (--db-ps-mode=auto) and with plain queries
# (--db-ps-mode=disable), direct and through danxia back to back in each
# round, so that a noisy shared machine hurts both alike. It prints QPS/TPS,
# latency (mean, p95), the ratio danxia/direct and danxia's CPU per query,
# checks danxia's audit trail (`danxia audit verify`), and states whether the
# goal (>= 0.95 of direct on point selects) was met.
#
# It exits 0 when everything ran, whatever the figures, and non-zero only when
# something failed to run. It never touches anything but its own temp
# directory, the `danxia_bench` database (dropped at exit) and the processes
# it started. Loopback only.
#
# Usage: bash bench/mysql.sh [--duration S] [--threads N] [--rounds N] [--quick]
#                            [--prepared | --plain | --ps-mode M] [--workloads L]
#                            [--tables N] [--table-size N] [--policy DIR|none]
#                            [--no-build] [--keep] [--self-test]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

# ---------------------------------------------------------------- options

DURATION=15      # seconds per sysbench run
THREADS=8        # sysbench --threads (client connections)
ROUNDS=3         # interleaved rounds
TABLES=4         # sysbench --tables
TABLE_SIZE=10000 # sysbench --table-size (rows per table)
WORKLOADS="oltp_point_select,oltp_read_only"
PS_MODES="auto,disable"
WARMUP=2 # seconds of warm-up per target and ps-mode
GOAL=0.95
BUILD=1
KEEP=0
SELF_TEST=0
DB=danxia_bench
MY_PORT=${BENCH_MYSQL_PORT:-3306}
MY_USER=${BENCH_MYSQL_USER:-root}
MY_PWD=${MYSQL_PWD:-}
POLICY_DIR=$ROOT/policies/packs/default # danxia's policy, enforced
# A DANXIA_BIN from the environment is used as it is (no build); otherwise
# cargo builds into its target directory (CARGO_TARGET_DIR is honoured).
if [[ -n ${DANXIA_BIN:-} ]]; then
    BUILD=0
    BIN_FROM_ENV=1
else
    BIN_FROM_ENV=0
    case ${CARGO_TARGET_DIR:-} in
    "") DANXIA_BIN=$ROOT/target/release/danxia ;;
    /*) DANXIA_BIN=$CARGO_TARGET_DIR/release/danxia ;;
    *) DANXIA_BIN=$ROOT/$CARGO_TARGET_DIR/release/danxia ;; # cargo runs in $ROOT
    esac
fi

usage() {
    cat <<EOF
Usage: bash bench/mysql.sh [options]
  --duration S     seconds per sysbench run (default $DURATION)
  --threads N      sysbench threads = client connections (default $THREADS)
  --rounds N       interleaved rounds (default $ROUNDS)
  --quick          smoke run: 5 s runs, 1 round
  --ps-mode M      auto (server-side prepared statements), disable (plain
                   queries) or both (default both)
  --prepared       = --ps-mode auto
  --plain          = --ps-mode disable
  --workloads L    comma-separated sysbench OLTP scripts
                   (default $WORKLOADS)
  --tables N       sysbench tables (default $TABLES)
  --table-size N   rows per table (default $TABLE_SIZE)
  --policy DIR     policy directory danxia enforces (default: the shipped
                   default pack); "none" runs danxia without a policy
  --no-build       do not run cargo build; use \$DANXIA_BIN ($DANXIA_BIN)
  --keep           keep the temp directory (config, logs, audit, raw results)
  --self-test      development only: no danxia; the second target is the
                   server again (direct vs direct, ratios should be ~1.00)
Environment: DANXIA_BIN (a binary to use as is: implies --no-build),
CARGO_TARGET_DIR (where cargo builds), BENCH_MYSQL_PORT (default 3306),
BENCH_MYSQL_USER (default root), MYSQL_PWD (default empty).
Backend: MariaDB or MySQL on 127.0.0.1:\$BENCH_MYSQL_PORT; the user must be
allowed to create and drop the database $DB.
EOF
}

while [[ $# -gt 0 ]]; do
    case $1 in
    --duration) DURATION=${2:?--duration needs seconds}; shift 2 ;;
    --threads) THREADS=${2:?--threads needs a number}; shift 2 ;;
    --rounds) ROUNDS=${2:?--rounds needs a number}; shift 2 ;;
    --quick) DURATION=5; ROUNDS=1; shift ;;
    --ps-mode)
        case ${2:?--ps-mode needs auto, disable or both} in
        auto | disable) PS_MODES=$2 ;;
        both) PS_MODES="auto,disable" ;;
        *) die "--ps-mode: expected auto, disable or both, got '$2'" ;;
        esac
        shift 2
        ;;
    --prepared) PS_MODES=auto; shift ;;
    --plain) PS_MODES=disable; shift ;;
    --workloads) WORKLOADS=${2:?--workloads needs a list}; shift 2 ;;
    --tables) TABLES=${2:?--tables needs a number}; shift 2 ;;
    --table-size) TABLE_SIZE=${2:?--table-size needs a number}; shift 2 ;;
    --policy) POLICY_DIR=${2:?--policy needs a directory or none}; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --keep) KEEP=1; shift ;;
    --self-test) SELF_TEST=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
    esac
done
for v in DURATION THREADS ROUNDS TABLES TABLE_SIZE; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
IFS=, read -r -a WORKLOAD_LIST <<<"$WORKLOADS"
IFS=, read -r -a PS_MODE_LIST <<<"$PS_MODES"
((${#WORKLOAD_LIST[@]} > 0)) || die "--workloads: empty list"
for w in "${WORKLOAD_LIST[@]}"; do
    case $w in
    oltp_point_select | oltp_read_only | oltp_read_write | oltp_write_only | oltp_update_index | \
        oltp_update_non_index | oltp_insert | oltp_delete | select_random_points | select_random_ranges) ;;
    *) die "--workloads: unknown sysbench workload '$w'" ;;
    esac
done
if [[ $POLICY_DIR != none ]]; then
    [[ -d $POLICY_DIR ]] || die "policy directory not found: $POLICY_DIR"
    POLICY_DIR=$(cd "$POLICY_DIR" && pwd)
    POLICY_LABEL="${POLICY_DIR#"$ROOT"/} (enforce)"
else
    POLICY_LABEL="none"
fi
# The target compared with direct: danxia, or the server again in --self-test.
if [[ $SELF_TEST -eq 1 ]]; then B=direct-b; else B=danxia; fi

# ---------------------------------------------------------------- state + cleanup

TMP=""
DANXIA_PID=""
DANXIA_PORT=""
DANXIA_ADMIN=""
DANXIA_BIN_ORIG=""
DB_CREATED=0
MY_SERVER_PID=""

cleanup() {
    local rc=$?
    set +e
    trap - ERR
    stop_pid "$DANXIA_PID" danxia
    if [[ $DB_CREATED -eq 1 ]]; then
        mysql_backend -e "DROP DATABASE IF EXISTS \`$DB\`" >/dev/null 2>&1 ||
            warn "could not drop database $DB on 127.0.0.1:$MY_PORT"
    fi
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

# mysql_backend ARGS... — the mysql client on the server itself, as MY_USER.
mysql_backend() {
    MYSQL_PWD=$MY_PWD mysql --no-defaults --protocol=tcp -h 127.0.0.1 -P "$MY_PORT" -u "$MY_USER" -NB "$@"
}

# sysbench_cmd PORT WORKLOAD ARGS... — sets SB_CMD to the sysbench command
# line against 127.0.0.1:PORT on the benchmark database (an array, so that
# `timeout` can run it); ARGS end with the command (prepare, run).
SB_CMD=()
sysbench_cmd() {
    local port=$1 workload=$2
    shift 2
    SB_CMD=(sysbench "$workload" --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$port"
        --mysql-user="$MY_USER" --mysql-password="$MY_PWD" --mysql-db="$DB"
        --tables="$TABLES" --table-size="$TABLE_SIZE" "$@")
}

# ---------------------------------------------------------------- 1. tools

check_tools() {
    local missing=()
    command -v sysbench >/dev/null 2>&1 || missing+=(sysbench)
    command -v mysql >/dev/null 2>&1 || missing+=("mysql (mariadb-client)")
    command -v python3 >/dev/null 2>&1 || missing+=(python3)
    if ((${#missing[@]} > 0)); then
        die "missing: ${missing[*]}; run 'bash tests/install-deps.sh' (or apt-get install -y sysbench mariadb-client python3)"
    fi
    sysbench --version >/dev/null 2>&1 || die "'sysbench --version' fails; reinstall it (bash tests/install-deps.sh)"
}

# ---------------------------------------------------------------- 2. build + database

build_danxia() {
    if [[ $SELF_TEST -eq 1 ]]; then
        warn "--self-test: danxia is not built, started or measured; the second target is the server itself"
        return
    fi
    if [[ $BUILD -eq 1 ]]; then
        command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs) or use --no-build with DANXIA_BIN"
        log "cargo build --release -p danxia${CARGO_TARGET_DIR:+ (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)}"
        (cd "$ROOT" && cargo build --release -p danxia >&2) || die "cargo build --release -p danxia failed"
    elif [[ $BIN_FROM_ENV -eq 1 ]]; then
        log "using DANXIA_BIN=$DANXIA_BIN as it is (no build)"
    fi
    [[ -x $DANXIA_BIN ]] || die "danxia binary not found at $DANXIA_BIN"
    # Run a private copy: a rebuild in the work tree during the benchmark
    # (other people build here too) must not swap the binary between phases.
    cp "$DANXIA_BIN" "$TMP/danxia"
    DANXIA_BIN_ORIG=$DANXIA_BIN
    DANXIA_BIN=$TMP/danxia
}

# check_server — the server answers; finds its process for the "other load".
check_server() {
    mysql_backend -e 'SELECT 1' >/dev/null 2>&1 ||
        die "MySQL/MariaDB not reachable at 127.0.0.1:$MY_PORT as user $MY_USER (password from MYSQL_PWD, empty by default)"
    # The server process, when it runs on this machine and its pid file is
    # readable: its CPU is then known, so the CPU used by everything else on
    # the machine during a run can be reported.
    local pidfile
    pidfile=$(mysql_backend -e 'SELECT @@pid_file' 2>/dev/null || true)
    if [[ -n $pidfile && -r $pidfile ]]; then
        MY_SERVER_PID=$(head -n 1 "$pidfile")
        [[ -r /proc/$MY_SERVER_PID/stat ]] || MY_SERVER_PID=""
    fi
    [[ -n $MY_SERVER_PID ]] || warn "the database server's process is not readable here: 'other load' will not be reported"
}

# prepare_db — creates danxia_bench and sysbench's tables in it.
prepare_db() {
    local exists
    exists=$(mysql_backend -e "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '$DB'")
    # The name belongs to this benchmark: a database of that name is what an
    # earlier run left behind (killed before its cleanup), never anyone's data.
    if [[ $exists == 1 ]]; then log "dropping database $DB left over from an earlier run"; fi
    mysql_backend -e "DROP DATABASE IF EXISTS \`$DB\`; CREATE DATABASE \`$DB\`" ||
        die "could not create database $DB on 127.0.0.1:$MY_PORT as $MY_USER"
    DB_CREATED=1
    local pthreads=$((TABLES < 4 ? TABLES : 4))
    log "preparing $DB: sysbench --tables=$TABLES --table-size=$TABLE_SIZE prepare"
    sysbench_cmd "$MY_PORT" oltp_read_only --threads="$pthreads" prepare
    "${SB_CMD[@]}" >"$TMP/sysbench-prepare.log" 2>&1 ||
        { tail_log "$TMP/sysbench-prepare.log"; die "sysbench prepare failed"; }
}

# ---------------------------------------------------------------- 3. danxia

# write_danxia_config FILE LISTEN_PORT ADMIN_PORT AUDIT_DIR
# pg.sh's configuration (audit on, full statement text, batched fsync, the
# policy in enforce mode) with one MySQL listener in front of the server.
write_danxia_config() {
    local policy=""
    if [[ $POLICY_DIR != none ]]; then
        policy="[policy]
dir = \"$POLICY_DIR\"
mode = \"enforce\"
allowlist = \"$(dirname "$4")/allowlist.toml\"
"
    fi
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

$policy
[[listener]]
name = "mysql"
protocol = "mysql"
listen = "127.0.0.1:$2"
backend = "127.0.0.1:$MY_PORT"
EOF
}

# start_danxia — starts danxia; sets DANXIA_PID, DANXIA_PORT, DANXIA_ADMIN.
# Waits for /readyz and a real query through it.
start_danxia() {
    local dir=$TMP/danxia.d
    mkdir -p "$dir/audit"
    DANXIA_PORT=$(free_port)
    DANXIA_ADMIN=$(free_port)
    write_danxia_config "$dir/danxia.toml" "$DANXIA_PORT" "$DANXIA_ADMIN" "$dir/audit"
    "$DANXIA_BIN" run --config "$dir/danxia.toml" 2>"$dir/danxia.log" &
    DANXIA_PID=$!
    if ! wait_http_ok "http://127.0.0.1:$DANXIA_ADMIN/readyz" 30 "$DANXIA_PID"; then
        tail_log "$dir/danxia.log"
        if ! kill -0 "$DANXIA_PID" 2>/dev/null; then
            if grep -qF "unknown variant \`mysql\`" "$dir/danxia.log"; then
                die "this danxia build has no MySQL listener: it rejects protocol = \"mysql\" ($DANXIA_BIN_ORIG)"
            fi
            die "danxia exited at start-up (config: $dir/danxia.toml, log above)"
        fi
        die "danxia not ready on admin 127.0.0.1:$DANXIA_ADMIN/readyz within 30 s"
    fi
    MYSQL_PWD=$MY_PWD wait_mysql "$DANXIA_PORT" 30 "$DANXIA_PID" "$MY_USER" ||
        { tail_log "$dir/danxia.log"; die "danxia: SELECT 1 through 127.0.0.1:$DANXIA_PORT failed"; }
    log "danxia pid $DANXIA_PID listening on 127.0.0.1:$DANXIA_PORT (admin $DANXIA_ADMIN) -> 127.0.0.1:$MY_PORT, policy: $POLICY_LABEL"
}

# ---------------------------------------------------------------- 4. sysbench

RUNS_TSV=""
PROXIED_QUERIES=0 # statements sysbench sent through danxia (runs + warm-up)

target_port() {
    case $1 in
    direct | direct-b) echo "$MY_PORT" ;;
    danxia) echo "$DANXIA_PORT" ;;
    esac
}
target_pid() {
    case $1 in
    danxia) echo "$DANXIA_PID" ;;
    *) echo "" ;;
    esac
}

# load_snapshot — "wall_ns machine_busy_ticks our_ticks": our ticks are this
# script's reaped children (sysbench, mysql), the database server and danxia.
# machine − ours over a run = load from others.
load_snapshot() {
    local ours srv=0
    ours=$(proc_children_ticks $$)
    if [[ -n $MY_SERVER_PID ]]; then srv=$(proc_cpu_ticks "$MY_SERVER_PID"); fi
    if [[ -n $DANXIA_PID ]]; then ours=$((ours + $(proc_cpu_ticks "$DANXIA_PID"))); fi
    echo "$(date +%s%N) $(machine_busy_ticks) $((ours + srv))"
}

# other_cores "SNAP_BEFORE" "SNAP_AFTER" — cores' worth of CPU used by
# processes other than ours between the two snapshots ("" when unknown).
other_cores() {
    [[ -n $MY_SERVER_PID ]] || { echo ""; return; }
    awk -v a="$1" -v b="$2" -v hz="$CLK_TCK" 'BEGIN {
        split(a, x, " "); split(b, y, " ");
        other = (y[2] - x[2]) - (y[3] - x[3]); if (other < 0) other = 0;
        printf "%.2f", other / hz / ((y[1] - x[1]) / 1e9) }'
}

# sb_field FILE LABEL — the first number after "LABEL:" in sysbench's report.
sb_field() {
    sed -n "s/^[[:space:]]*$2:[[:space:]]*\([0-9.]*\).*/\1/p" "$1" | head -n 1
}
# sb_rate FILE LABEL — the "(N per sec.)" figure of a sysbench counter line.
sb_rate() {
    sed -n "s/^[[:space:]]*$2:.*(\([0-9.]*\) per sec\.).*/\1/p" "$1" | head -n 1
}

# check_sysbench_out FILE WHAT — the run had no errors and no reconnects.
check_sysbench_out() {
    local out=$1 what=$2 errors reconnects
    errors=$(sb_field "$out" "ignored errors")
    reconnects=$(sb_field "$out" "reconnects")
    [[ ${errors:-0} == 0 && ${reconnects:-0} == 0 ]] ||
        { tail_log "$out"; die "$what: $errors ignored errors, $reconnects reconnects"; }
}

# run_sysbench ROUND WORKLOAD PS_MODE TARGET — one measured run; appends a row
# to RUNS_TSV.
run_sysbench() {
    local round=$1 workload=$2 mode=$3 target=$4 port pid out cpu0=0 cpu1=0 sw0=0 sw1=0 snap0 snap1 other
    port=$(target_port "$target")
    pid=$(target_pid "$target")
    out=$TMP/runs/r$round-$workload-$mode-$target.txt
    if [[ -n $pid ]]; then
        kill -0 "$pid" 2>/dev/null || { tail_log "$TMP/danxia.d/danxia.log"; die "$target (pid $pid) died before round $round"; }
        cpu0=$(proc_cpu_ticks "$pid")
        sw0=$(proc_ctxsw "$pid")
    fi
    snap0=$(load_snapshot)
    # timeout: a hung proxy must end the benchmark with an error, not stall it.
    sysbench_cmd "$port" "$workload" --threads="$THREADS" --time="$DURATION" --events=0 \
        --percentile=95 --db-ps-mode="$mode" run
    if ! timeout $((DURATION + 60)) "${SB_CMD[@]}" >"$out" 2>&1; then
        tail_log "$out"
        die "sysbench $workload --db-ps-mode=$mode against $target (port $port) failed in round $round"
    fi
    if [[ -n $pid ]]; then
        cpu1=$(proc_cpu_ticks "$pid")
        sw1=$(proc_ctxsw "$pid")
    fi
    snap1=$(load_snapshot)
    other=$(other_cores "$snap0" "$snap1")
    local tps qps txns queries avg p95
    tps=$(sb_rate "$out" transactions)
    qps=$(sb_rate "$out" queries)
    txns=$(sb_field "$out" transactions)
    queries=$(sb_field "$out" queries)
    avg=$(sb_field "$out" avg)
    p95=$(sb_field "$out" "95th percentile")
    [[ -n $tps && -n $qps && -n $txns && -n $queries && -n $avg && -n $p95 && $queries -gt 0 ]] ||
        { tail_log "$out"; die "could not parse sysbench output for $target $workload --db-ps-mode=$mode (see $out)"; }
    check_sysbench_out "$out" "sysbench $workload --db-ps-mode=$mode against $target"
    if [[ $target == danxia ]]; then PROXIED_QUERIES=$((PROXIED_QUERIES + queries)); fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$workload" "$mode" "$target" \
        "$tps" "$qps" "$txns" "$queries" "$avg" "$p95" $((cpu1 - cpu0)) $((sw1 - sw0)) "$other" >>"$RUNS_TSV"
    log "  round $round  $(printf '%-18s %-8s %-9s' "$workload" "$mode" "$target") qps $qps  tps $tps  avg $avg ms  p95 $p95 ms  other load ${other:-n/a} cores"
}

# warm_up TARGET — a short oltp_read_only (every statement shape of both
# workloads) per ps-mode, so the first measured run pays no cold start.
warm_up() {
    local target=$1 mode out q
    for mode in "${PS_MODE_LIST[@]}"; do
        out=$TMP/runs/warmup-$target-$mode.txt
        sysbench_cmd "$(target_port "$target")" oltp_read_only --threads="$THREADS" --time="$WARMUP" \
            --events=0 --db-ps-mode="$mode" run
        if ! timeout $((WARMUP + 60)) "${SB_CMD[@]}" >"$out" 2>&1; then
            tail_log "$out"
            if [[ $target == danxia ]]; then tail_log "$TMP/danxia.d/danxia.log"; fi
            die "warm-up against $target (--db-ps-mode=$mode) failed"
        fi
        check_sysbench_out "$out" "warm-up against $target (--db-ps-mode=$mode)"
        q=$(sb_field "$out" queries)
        if [[ $target == danxia ]]; then PROXIED_QUERIES=$((PROXIED_QUERIES + ${q:-0})); fi
    done
}

# ---------------------------------------------------------------- 5. danxia's side

check_danxia() {
    kill -0 "$DANXIA_PID" 2>/dev/null || { tail_log "$TMP/danxia.d/danxia.log"; die "danxia died during the benchmark"; }
    python3 - "http://127.0.0.1:$DANXIA_ADMIN/metrics" <<'EOF' >&2 || warn "could not read danxia /metrics"
import sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
sums = {}
for line in text.splitlines():
    if line.startswith(("danxia_audit_events_dropped_total", "danxia_audit_write_failures_total",
                        "danxia_audit_events_written_total", "danxia_protocol_errors_total",
                        "danxia_policy_decisions_total", "danxia_policy_decision_cache_total")):
        print("  metric:", line)
    for h in ("danxia_proxy_added_seconds", "danxia_statement_duration_seconds"):
        for part in ("_sum", "_count"):
            if line.startswith(h + part):
                sums[h + part] = sums.get(h + part, 0.0) + float(line.split()[-1])
for h in ("danxia_proxy_added_seconds", "danxia_statement_duration_seconds"):
    if sums.get(h + "_count"):
        print(f"  {h}: mean {sums[h + '_sum'] / sums[h + '_count'] * 1e6:.1f} us over "
              f"{sums[h + '_count']:.0f} observations (whole benchmark)")
EOF
    stop_pid "$DANXIA_PID" danxia
    DANXIA_PID=""
    local events
    events=$(cat "$TMP"/danxia.d/audit/*.jsonl 2>/dev/null | wc -l)
    AUDIT_EVENTS=$events
    log "danxia wrote $events audit events for $PROXIED_QUERIES statements sysbench sent through it (audit dir $TMP/danxia.d/audit)"
    ((events > 0)) || die "danxia wrote no audit events: audit is supposed to be on"
    # The audit trail written under load must verify end to end.
    local t0 t1
    t0=$(date +%s%N)
    "$DANXIA_BIN" audit verify "$TMP/danxia.d/audit" >"$TMP/verify.out" 2>&1 ||
        { tail_log "$TMP/verify.out"; die "danxia audit verify failed on the benchmark's audit log"; }
    t1=$(date +%s%N)
    log "audit verify: $(head -n 1 "$TMP/verify.out") ($(((t1 - t0) / 1000000)) ms)"
    # The report keeps the verdict, not the advice that follows it.
    AUDIT_VERIFY="$(head -n 1 "$TMP/verify.out" | sed 's/\. Last hash.*//') ($(((t1 - t0) / 1000000)) ms)"
}

# ---------------------------------------------------------------- 6. report

AUDIT_EVENTS=""
AUDIT_VERIFY=""

write_meta() {
    local danxia_ver="not run (self-test)"
    if [[ $SELF_TEST -eq 0 ]]; then
        danxia_ver=$("$DANXIA_BIN" --version 2>&1 | head -n 1 || true)
    fi
    python3 - "$TMP/meta.json" <<EOF
import json, sys
json.dump({
  "date": "$(date -u '+%Y-%m-%d %H:%M UTC')",
  "cpu": """$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)""",
  "nproc": "$(nproc)",
  "mem": "$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)",
  "kernel": "$(uname -r)",
  "server": """$(mysql_backend -e 'SELECT VERSION()')""",
  "sysbench": """$(sysbench --version 2>&1 | head -n 1)""",
  "danxia": """${danxia_ver:-unknown}""",
  "policy": """$POLICY_LABEL""",
  "threads": $THREADS, "duration": $DURATION, "rounds": $ROUNDS,
  "tables": $TABLES, "table_size": $TABLE_SIZE, "load": "$(cut -d' ' -f1-3 /proc/loadavg)",
}, open(sys.argv[1], "w"))
EOF
}

report() {
    python3 - "$RUNS_TSV" "$TMP/meta.json" "$B" "$SELF_TEST" "$CLK_TCK" "$GOAL" \
        "$WORKLOADS" "$PS_MODES" "$AUDIT_EVENTS" "$AUDIT_VERIFY" "$PROXIED_QUERIES" <<'PYEOF'
import json, os, statistics, sys

(runs_tsv, meta_json, b, self_test, clk, goal, workloads, modes,
 audit_events, audit_verify, proxied) = sys.argv[1:12]
self_test, clk, goal = self_test == "1", int(clk), float(goal)
workloads, modes = workloads.split(","), modes.split(",")
meta = json.load(open(meta_json))
med = statistics.median

runs = []
for line in open(runs_tsv):
    (r, wl, mode, target, tps, qps, txns, queries, avg, p95, ticks, sw,
     other) = line.rstrip("\n").split("\t")
    runs.append(dict(round=int(r), workload=wl, mode=mode, target=target, tps=float(tps),
                     qps=float(qps), txns=int(txns), queries=int(queries), avg=float(avg),
                     p95=float(p95), ticks=int(ticks), sw=int(sw),
                     other=float(other) if other else None))
targets = ["direct", b]

def pick(wl, mode, t, r=None):
    return [x for x in runs if x["workload"] == wl and x["mode"] == mode and x["target"] == t
            and (r is None or x["round"] == r)]

def per_round_ratio(wl, mode, num, den):
    out = []
    for r in sorted({x["round"] for x in runs}):
        a, d = pick(wl, mode, num, r), pick(wl, mode, den, r)
        if a and d:
            out.append(a[0]["qps"] / d[0]["qps"])
    return out

print()
print(f"== danxia MySQL benchmark  {meta['date']}" + ("  [SELF-TEST: direct vs direct]" if self_test else ""))
print(f"   machine: {meta['cpu']} x{meta['nproc']}, {meta['mem']}, kernel {meta['kernel']}")
print(f"   server {meta['server']};  {meta['sysbench']};  danxia {meta['danxia']}"
      + ("" if self_test else f", policy {meta['policy']}, audit on"))
print(f"   sysbench --threads={meta['threads']} --time={meta['duration']} x {meta['rounds']} rounds, "
      f"--tables={meta['tables']} --table-size={meta['table_size']}; load average at start {meta['load']}")
print()
hdr = (f"{'workload':<19}{'ps-mode':<9}{'target':<10}{'QPS med':>10}{'TPS med':>10}{'avg ms':>8}"
       f"{'p95 ms':>8}{'vs direct':>11}{'range':>12}{'CPU us/q':>10}{'csw/q':>7}")
print(hdr)
print("-" * len(hdr))
results = {}
for wl in workloads:
    for mode in modes:
        for t in targets:
            rs = pick(wl, mode, t)
            if not rs:
                continue
            ratios = per_round_ratio(wl, mode, t, "direct")
            proxy = t == "danxia"
            cpu = med([x["ticks"] / clk * 1e6 / x["queries"] for x in rs]) if proxy else None
            sw = med([x["sw"] / x["queries"] for x in rs]) if proxy else None
            res = dict(qps=med([x["qps"] for x in rs]), tps=med([x["tps"] for x in rs]),
                       avg=statistics.mean([x["avg"] for x in rs]), p95=med([x["p95"] for x in rs]),
                       ratio=med(ratios), ratios=ratios, cpu=cpu, sw=sw)
            results[(wl, mode, t)] = res
            rng = f"{min(ratios):.2f}-{max(ratios):.2f}" if t != "direct" else ""
            print(f"{wl:<19}{mode:<9}{t:<10}{res['qps']:>10.0f}{res['tps']:>10.0f}{res['avg']:>8.3f}"
                  f"{res['p95']:>8.2f}{res['ratio']:>11.3f}{rng:>12}"
                  f"{'' if cpu is None else f'{cpu:.1f}':>10}{'' if sw is None else f'{sw:.2f}':>7}")
print("(QPS/TPS: median over rounds of sysbench's per-second rates; avg ms: mean of sysbench's average")
print(" latency per transaction; p95 ms: median of its 95th percentile; vs direct: median of per-round")
print(" QPS ratios; CPU us/q: danxia's utime+stime over the run / queries, 10 ms tick resolution;")
print(" csw/q: context switches of danxia's live threads per query)")
print()
def fmt_other(v):
    return "n/a" if v is None else f"{v:.2f}"
print("per run: QPS [other load in cores: CPU used during the run by processes other than sysbench,")
print("the database server and danxia]")
for wl in workloads:
    for mode in modes:
        for t in targets:
            rs = sorted(pick(wl, mode, t), key=lambda x: x["round"])
            cells = [f"r{x['round']} {x['qps']:>7.0f} [{fmt_other(x['other'])}]" for x in rs]
            print(f"  {wl:<19}{mode:<9}{t:<9} " + "  ".join(cells))
others = [x["other"] for x in runs if x["other"] is not None]
if others and max(others) > 0.25:
    print(f"NOTE: other processes used up to {max(others):.2f} cores during some runs (this machine has "
          f"{meta['nproc']}): those runs are disturbed; trust the per-round ratios and their range more "
          "than absolute QPS, and rerun on a quiet machine for publishable figures.")
if audit_events:
    print()
    print(f"audit: {audit_events} events written for {proxied} statements sysbench sent through danxia "
          f"(runs and warm-up); danxia audit verify: {audit_verify}")

print()
print("== summary" + ("  (SELF-TEST: both sides are the server itself; every ratio should be ~1.00)" if self_test else ""))
rows = []
for wl in workloads:
    for mode in modes:
        r = results.get((wl, mode, b))
        if r is None:
            continue
        name = f"{b}/direct QPS, {wl}, --db-ps-mode={mode}"
        if wl == "oltp_point_select":
            rows.append((name, f"{r['ratio']:.3f}", f">= {goal}", "PASS" if r["ratio"] >= goal else "MISS"))
        else:
            rows.append((name, f"{r['ratio']:.3f}", "", "(info)"))
w = max(len(x[0]) for x in rows)
for name, v, tgt, res in rows:
    print(f"  {name:<{w}}  {v:>6}  {tgt:>8}  {res}")
point = [(m, results[("oltp_point_select", m, b)]["ratio"]) for m in modes
         if ("oltp_point_select", m, b) in results]
goal_text = f"GOAL: {b} >= {goal} x direct QPS on oltp_point_select ({', '.join(modes)})"
if not point:
    verdict = "NOT MEASURED (oltp_point_select was not run)"
elif all(v >= goal for _, v in point):
    verdict = "MET (" + ", ".join(f"{m} {v:.3f}" for m, v in point) + ")"
else:
    verdict = "NOT MET (" + ", ".join(f"{m} {v:.3f}" for m, v in point) + ")"
print(f"{goal_text}: {verdict}" + ("  [self-test: not a danxia result]" if self_test else ""))

json.dump({"meta": meta, "runs": runs,
           "summary": [dict(zip(("figure", "measured", "target", "result"), r)) for r in rows],
           "goal": f"{goal_text}: {verdict}"},
          open(os.path.join(os.path.dirname(runs_tsv), "results.json"), "w"), indent=1)
PYEOF
}

# ---------------------------------------------------------------- main

main() {
    check_tools
    TMP=$(mktemp -d /tmp/danxia-bench-mysql.XXXXXX)
    mkdir -p "$TMP/runs"
    RUNS_TSV=$TMP/runs.tsv
    : >"$RUNS_TSV"

    build_danxia
    check_server
    # danxia first: a build that refuses the configuration fails before the
    # tables are written.
    if [[ $SELF_TEST -eq 0 ]]; then start_danxia; fi
    prepare_db
    write_meta

    log "warm-up: ${WARMUP} s of oltp_read_only per target and ps-mode"
    warm_up direct
    warm_up "$B"

    local round mode wl t order
    for ((round = 1; round <= ROUNDS; round++)); do
        # Alternate which side goes first, so neither always runs right after
        # the other's load (or always first in a round).
        if ((round % 2 == 1)); then order=(direct "$B"); else order=("$B" direct); fi
        log "round $round/$ROUNDS: order ${order[*]}"
        for mode in "${PS_MODE_LIST[@]}"; do
            for wl in "${WORKLOAD_LIST[@]}"; do
                for t in "${order[@]}"; do run_sysbench "$round" "$wl" "$mode" "$t"; done
            done
        done
    done

    if [[ $SELF_TEST -eq 0 ]]; then check_danxia; fi

    report
    if [[ $KEEP -eq 1 ]]; then
        log "raw results: $TMP/results.json"
    else
        log "raw results, logs and audit files are deleted on exit; --keep keeps them"
    fi
}

main
