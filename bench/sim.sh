#!/usr/bin/env bash
# bench/sim.sh — the behaviour simulation end to end, for a human.
#
# Builds danxia (release), sets up the simulation's data on the PostgreSQL
# (127.0.0.1:5432) and MariaDB (127.0.0.1:3306) servers, starts the alert
# webhook and danxia (PostgreSQL and MySQL listeners, the simulation's
# policy, behaviour baselines on disk, a scaled clock) in a temp directory,
# plays the learning days (Wed–Sun), restarts danxia with the same behaviour
# directory, plays Monday and Tuesday (normal traffic + the five scenarios),
# and prints the report of tests/sim/simulate.py with a few checks of its
# own: the restart kept the baselines, every audited alert reached the
# webhook, the audit chains verify. See tests/sim/README.md.
#
# Exits 0 when every goal is met, 1 when one is missed or something failed
# to run. It never touches anything but its temp directory, the simulation's
# schema `sim` / database `simhr` / roles and users (rebuilt by `simulate.py
# setup`), and the processes it started. Loopback only.
#
# Usage: bash bench/sim.sh [--speed S] [--judged-speed S] [--seed N] [--no-build] [--keep]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

SIM=$ROOT/tests/sim/simulate.py
SPEED=8640        # sim seconds per real second while learning: 1 day = 10 s
JUDGED_SPEED=2880 # on Monday and Tuesday: 1 day = 30 s (see tests/sim/README.md)
SEED=1
BUILD=1
KEEP=0
MAX_ERRORS=5
WEEK_START=1793721600 # Wed 2026-11-04 00:00 +08:00
PHASE1_END=$((WEEK_START + 4 * 86400 + 23 * 3600 + 1800)) # Sun 23:30: the restart
PORTAL_IDENTITY='portal_svc|gov-portal|127.0.0.0/24'
PYTHON=${PYTHON:-python3}
if [[ -n ${DANXIA_BIN:-} ]]; then
    BUILD=0
    BIN_FROM_ENV=1
else
    BIN_FROM_ENV=0
    case ${CARGO_TARGET_DIR:-} in
    "") DANXIA_BIN=$ROOT/target/release/danxia ;;
    /*) DANXIA_BIN=$CARGO_TARGET_DIR/release/danxia ;;
    *) DANXIA_BIN=$ROOT/$CARGO_TARGET_DIR/release/danxia ;;
    esac
fi

usage() {
    cat <<EOF
Usage: bash bench/sim.sh [options]
  --speed S     sim seconds per real second on the learning days (default
                $SPEED: 1 day = 10 s; lower it on a slow machine if the report
                warns that streams fell behind the clock)
  --judged-speed S
                the same on Monday and Tuesday (default $JUDGED_SPEED: 1 day =
                30 s, so an enumeration can send its hundreds of statements per
                10-sim-minute window)
  --seed N      the plan's random seed (default $SEED)
  --no-build    do not run cargo build; use \$DANXIA_BIN ($DANXIA_BIN)
  --keep        keep the temp directory (configs, logs, audit, alerts, stats,
                report.json)
Environment: DANXIA_BIN (a binary to use as is: implies --no-build),
CARGO_TARGET_DIR, PYTHON (a python3 with psycopg2, PyMySQL and
mysql-connector-python; tests/install-deps.sh installs them).
EOF
}

while [[ $# -gt 0 ]]; do
    case $1 in
    --speed) SPEED=${2:?--speed needs a number}; shift 2 ;;
    --judged-speed) JUDGED_SPEED=${2:?--judged-speed needs a number}; shift 2 ;;
    --seed) SEED=${2:?--seed needs a number}; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
    esac
done
for v in SPEED JUDGED_SPEED; do
    [[ ${!v} =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "$v must be a number, got '${!v}'"
done
[[ $SEED =~ ^[0-9]+$ ]] || die "--seed must be an integer, got '$SEED'"

# ---------------------------------------------------------------- state + cleanup

TMP=""
DANXIA_PID=""
RECV_PID=""
FAILED_CHECKS=()

cleanup() {
    local rc=$?
    set +e
    stop_pid "$DANXIA_PID" danxia
    stop_pid "$RECV_PID" "webhook receiver" 5
    if [[ -n $TMP && -d $TMP ]]; then
        if [[ $KEEP -eq 1 || $rc -ne 0 ]]; then
            log "kept $TMP (configs, logs, audit, alerts.jsonl, stats, report.json)"
        else
            rm -rf "$TMP"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { "$PYTHON" -c 'import time; print(f"{time.time():.3f}")'; }
py() { "$PYTHON" -c "$@"; }

# ---------------------------------------------------------------- 1. tools, build, data

check_tools() {
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found"
    if ! "$PYTHON" -c 'import psycopg2, pymysql, mysql.connector' >/dev/null 2>&1; then
        log "installing the Python client libraries (tests/install-deps.sh)"
        PYTHON=$PYTHON bash "$ROOT/tests/install-deps.sh" >&2 || die "tests/install-deps.sh failed"
    fi
    pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1 ||
        die "PostgreSQL is not answering on 127.0.0.1:5432"
    mariadb-admin --no-defaults -h127.0.0.1 --protocol=TCP -uroot --skip-ssl ping >/dev/null 2>&1 ||
        die "MariaDB is not answering on 127.0.0.1:3306 (root without a password)"
}

build_danxia() {
    if [[ $BUILD -eq 1 ]]; then
        command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust or use --no-build with DANXIA_BIN"
        log "cargo build --release -p danxia${CARGO_TARGET_DIR:+ (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)}"
        (cd "$ROOT" && cargo build --release -p danxia >&2) || die "cargo build --release -p danxia failed"
    elif [[ $BIN_FROM_ENV -eq 1 ]]; then
        log "using DANXIA_BIN=$DANXIA_BIN as it is (no build)"
    fi
    [[ -x $DANXIA_BIN ]] || die "danxia binary not found at $DANXIA_BIN"
    # A private copy: a rebuild in the work tree must not swap the binary
    # between the two phases.
    cp "$DANXIA_BIN" "$TMP/danxia"
    DANXIA_BIN=$TMP/danxia
}

# ---------------------------------------------------------------- 2. receiver + danxia

start_receiver() {
    WEBHOOK_PORT=$(free_port)
    "$PYTHON" "$SIM" receive --port "$WEBHOOK_PORT" --out "$TMP/alerts.jsonl" \
        >"$TMP/receiver.log" 2>&1 &
    RECV_PID=$!
    wait_http_ok "http://127.0.0.1:$WEBHOOK_PORT/" 10 "$RECV_PID" ||
        { tail_log "$TMP/receiver.log"; die "the webhook receiver did not start"; }
    log "webhook receiver pid $RECV_PID on 127.0.0.1:$WEBHOOK_PORT"
}

# write_config N CLOCK_START ANCHOR SPEED — $TMP/danxia-N/danxia.toml; sets
# PG_PORT, MY_PORT, ADMIN_PORT, DDIR.
write_config() {
    local n=$1 start=$2 anchor=$3 speed=$4
    DDIR=$TMP/danxia-$n
    mkdir -p "$DDIR/audit"
    PG_PORT=$(free_port)
    MY_PORT=$(free_port)
    ADMIN_PORT=$(free_port)
    cat >"$DDIR/danxia.toml" <<EOF
[admin]
listen = "127.0.0.1:$ADMIN_PORT"

[audit]
dir = "$DDIR/audit"
fsync_interval = "100ms"

[[listener]]
name = "pg"
protocol = "postgres"
listen = "127.0.0.1:$PG_PORT"
backend = "127.0.0.1:5432"

[[listener]]
name = "mysql"
protocol = "mysql"
listen = "127.0.0.1:$MY_PORT"
backend = "127.0.0.1:3306"

EOF
    "$PYTHON" "$SIM" config --behaviour-dir "$TMP/behaviour" --webhook-port "$WEBHOOK_PORT" \
        --clock-start "$start" --anchor "$anchor" --speed "$speed" >>"$DDIR/danxia.toml"
}

# start_danxia N CLOCK_START ANCHOR SPEED
start_danxia() {
    write_config "$@"
    if ! "$DANXIA_BIN" check --config "$DDIR/danxia.toml" >"$DDIR/check.out" 2>&1; then
        tail_log "$DDIR/check.out"
        die "this danxia does not accept the simulation's configuration (behaviour baselines, alerts, 'anomaly' rules not there yet?)"
    fi
    (cd "$DDIR" && exec "$DANXIA_BIN" run --config "$DDIR/danxia.toml") >"$DDIR/danxia.log" 2>&1 &
    DANXIA_PID=$!
    wait_http_ok "http://127.0.0.1:$ADMIN_PORT/readyz" 20 "$DANXIA_PID" ||
        { tail_log "$DDIR/danxia.log"; die "danxia $1 not ready within 20 s (config $DDIR/danxia.toml)"; }
    log "danxia $1 pid $DANXIA_PID: pg 127.0.0.1:$PG_PORT, mysql 127.0.0.1:$MY_PORT, admin $ADMIN_PORT"
}

# identities FILE — GET /behaviour/identities into FILE.
identities() {
    py "import sys, urllib.request
sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:$ADMIN_PORT/behaviour/identities', timeout=5).read().decode())" \
        >"$1" 2>/dev/null || { warn "GET /behaviour/identities failed"; echo '[]' >"$1"; }
}

# portal_field FILE FIELD — the portal identity's FIELD in an identities file
# ("missing" when it is not listed).
portal_field() {
    py "import json, sys
v = json.load(open(sys.argv[1]))
if isinstance(v, dict):
    v = next((x for x in v.values() if isinstance(x, list)), [])
for x in v:
    if x.get('identity') == sys.argv[2]:
        print(json.dumps(x.get(sys.argv[3])))
        break
else:
    print('missing')" "$1" "$PORTAL_IDENTITY" "$2"
}

# run_phase NAME CLOCK_START ANCHOR SPEED FROM UNTIL
run_phase() {
    log "phase $1: $5 .. $6 (sim), speed $4"
    "$PYTHON" "$SIM" run --pg-port "$PG_PORT" --mysql-port "$MY_PORT" --clock-start "$2" \
        --anchor "$3" --speed "$4" --from "$5" --until "$6" --seed "$SEED" \
        --stats "$TMP/stats-$1.json" --plan-cache "$TMP/plan.pickle" ||
        { tail_log "$DDIR/danxia.log"; die "simulate.py run ($1) failed"; }
}

# audit_alerts DIR — alert events in an audit directory.
audit_alerts() {
    py "import glob, json, sys
n = 0
for f in sorted(glob.glob(sys.argv[1] + '/audit-*.jsonl')):
    for line in open(f, encoding='utf-8'):
        try:
            n += json.loads(line).get('kind') == 'alert'
        except ValueError:
            pass
print(n)" "$1"
}

# webhook_alerts — alerts the receiver recorded.
webhook_alerts() {
    py "import json, sys
n = 0
for line in open(sys.argv[1], encoding='utf-8'):
    try:
        n += isinstance(json.loads(line).get('alert'), dict)
    except ValueError:
        pass
print(n)" "$TMP/alerts.jsonl" 2>/dev/null || echo 0
}

# ---------------------------------------------------------------- main

main() {
    check_tools
    TMP=$(mktemp -d /tmp/danxia-sim.XXXXXX)
    build_danxia
    "$PYTHON" "$SIM" selftest >"$TMP/selftest.log" 2>&1 ||
        { tail_log "$TMP/selftest.log"; die "the simulator's unit tests fail"; }
    "$PYTHON" "$SIM" setup || die "simulate.py setup failed"
    "$PYTHON" "$SIM" plan --seed "$SEED" --plan-cache "$TMP/plan.pickle" >&2 ||
        die "simulate.py plan failed"
    start_receiver

    # Phase 1: learning, Wed 00:00 .. Sun 23:30.
    local anchor1 stopped clock2 anchor2 d1
    anchor1=$(py "import time; print(f'{time.time() + 2:.3f}')")
    start_danxia 1 "$WEEK_START" "$anchor1" "$SPEED"
    d1=$DDIR
    run_phase learning "$WEEK_START" "$anchor1" "$SPEED" "Wed 00:00" "Sun 23:30"
    identities "$TMP/identities-before.json"
    stop_pid "$DANXIA_PID" danxia 40
    DANXIA_PID=""
    stopped=$(now)

    # Restart: the same behaviour directory; the clock resumes where it
    # stopped (it pauses over the restart; never backwards).
    clock2=$(py "print(f'{max($PHASE1_END, $WEEK_START + ($stopped - $anchor1) * $SPEED):.3f}')")
    anchor2=$(now)
    start_danxia 2 "$clock2" "$anchor2" "$JUDGED_SPEED"
    identities "$TMP/identities-restart.json"
    local n_before n_after
    n_before=$(portal_field "$TMP/identities-before.json" statements)
    n_after=$(portal_field "$TMP/identities-restart.json" statements)
    log "portal_svc's baseline: $n_before statements before the restart, $n_after after"
    if [[ $n_after == missing || $n_after == null || $n_before == missing ]] ||
        ((n_after * 2 < n_before)); then
        FAILED_CHECKS+=("the restart lost portal_svc's baseline ($n_before statements before, $n_after after)")
    fi

    # Phase 2: Monday and Tuesday.
    run_phase judged "$clock2" "$anchor2" "$JUDGED_SPEED" "Mon 00:00" end
    identities "$TMP/identities-end.json"
    local learning
    learning=$(portal_field "$TMP/identities-end.json" learning)
    [[ $learning == false ]] ||
        FAILED_CHECKS+=("portal_svc's identity is not out of learning at the end (learning = $learning)")
    if "$DANXIA_BIN" baseline show "$PORTAL_IDENTITY" --config "$DDIR/danxia.toml" \
        >"$TMP/baseline-show.txt" 2>&1 && grep -q portal_svc "$TMP/baseline-show.txt"; then
        log "danxia baseline show $PORTAL_IDENTITY:"
        sed 's/^/    | /' "$TMP/baseline-show.txt" | head -n 40 >&2
    else
        tail_log "$TMP/baseline-show.txt"
        FAILED_CHECKS+=("danxia baseline show '$PORTAL_IDENTITY' failed or does not mention portal_svc")
    fi

    # Every audited alert reaches the webhook (delivery is asynchronous).
    local audited received i
    for ((i = 0; i < 75; i++)); do
        audited=$(($(audit_alerts "$d1/audit") + $(audit_alerts "$DDIR/audit")))
        received=$(webhook_alerts)
        [[ $audited -eq $received && $audited -gt 0 ]] && break
        sleep 0.2
    done
    stop_pid "$DANXIA_PID" danxia 40
    DANXIA_PID=""
    stop_pid "$RECV_PID" "webhook receiver" 5
    RECV_PID=""
    audited=$(($(audit_alerts "$d1/audit") + $(audit_alerts "$DDIR/audit")))
    received=$(webhook_alerts)
    [[ $audited -eq $received ]] ||
        FAILED_CHECKS+=("the audit logs hold $audited alert events, the webhook received $received")
    local d
    for d in "$d1" "$DDIR"; do
        "$DANXIA_BIN" audit verify "$d/audit" >"$d/verify.out" 2>&1 ||
            FAILED_CHECKS+=("danxia audit verify $d/audit: $(head -n 1 "$d/verify.out")")
    done

    local rc=0
    "$PYTHON" "$SIM" report --alerts "$TMP/alerts.jsonl" --stats "$TMP/stats-learning.json" \
        "$TMP/stats-judged.json" --max-errors "$MAX_ERRORS" --report "$TMP/report.json" || rc=1
    echo
    echo "restart: portal_svc baseline $n_before statements before, $n_after after; learning at the end: $learning"
    echo "alerts: $audited in the audit logs, $received received by the webhook"
    if ((${#FAILED_CHECKS[@]} > 0)); then
        for c in "${FAILED_CHECKS[@]}"; do echo "CHECK FAILED: $c"; done
        rc=1
    fi
    if [[ $KEEP -eq 1 ]]; then log "report: $TMP/report.json"; fi
    return "$rc"
}

main
