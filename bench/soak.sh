#!/usr/bin/env bash
# bench/soak.sh — the mixed soak: PostgreSQL, MySQL and HTTP traffic through
# one danxia (default policy pack enforced, audit on with fsync = "batch",
# behaviour baselines on) for a long while, with policy reloads (good and
# broken), alert bursts, a latency probe and samples of danxia's RSS, fds,
# CPU and metrics every 10 s. Loopback only.
#
# Owns the set-up (config, private copies of the policies, the HTTP upstream
# tests/upstream/citizens_api.py, the pgbench and sysbench tables); the run
# and every check are in bench/soak.py. Prints a summary, writes it to
# $OUT/summary.txt with the samples as $OUT/samples.csv, and exits non-zero
# when a check failed (or something could not run).
#
# Usage: bash bench/soak.sh [--minutes N | --seconds N] [--out DIR] [--no-build]
# Env: DANXIA_BIN (default target/release/danxia), SOAK_PGBENCH_RATE,
# SOAK_SYSBENCH_RATE, SOAK_HTTP_RATE.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

SECONDS_TOTAL=$((20 * 60))
OUT=""
BUILD=1
DANXIA_BIN=${DANXIA_BIN:-$ROOT/target/release/danxia}
PG_PORT=${BENCH_PG_PORT:-5432}
MY_PORT=${BENCH_MYSQL_PORT:-3306}
PG_DB=danxia_bench
MY_DB=danxia_soak
APP_USER=app # non-administrator PostgreSQL role for the refused statements
SCALE=10     # pgbench scale of danxia_bench (bench/pg.sh uses the same)

usage() {
    cat <<EOF
Usage: bash bench/soak.sh [--minutes N | --seconds N] [--out DIR] [--no-build]
  --minutes N   soak duration (default 20)
  --seconds N   soak duration in seconds (CI: 60)
  --out DIR     where summary.txt, samples.csv, probe.csv and the logs go
                (default: a new directory under \${TMPDIR:-/tmp})
  --no-build    do not run cargo build; use \$DANXIA_BIN ($DANXIA_BIN)
EOF
}

while [[ $# -gt 0 ]]; do
    case $1 in
    --minutes) SECONDS_TOTAL=$((${2:?--minutes needs a number} * 60)); shift 2 ;;
    --seconds) SECONDS_TOTAL=${2:?--seconds needs a number}; shift 2 ;;
    --out) OUT=${2:?--out needs a directory}; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
    esac
done
[[ $SECONDS_TOTAL =~ ^[1-9][0-9]*$ ]] || die "duration must be a positive number of seconds"
[[ $SECONDS_TOTAL -ge 30 ]] || die "a soak shorter than 30 s measures nothing"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/danxia-soak.XXXXXX")
OUT=${OUT:-$TMP/out}
mkdir -p "$OUT"
DANXIA_PID=""
UPSTREAM_PID=""

cleanup() {
    local rc=$?
    set +e
    stop_pid "$DANXIA_PID" danxia
    stop_pid "$UPSTREAM_PID" "citizens upstream"
    [[ -d $TMP/danxia ]] && cp "$TMP/danxia/danxia.log" "$OUT/" 2>/dev/null
    # The audit files stay for inspection only when the run failed.
    if [[ $rc -eq 0 ]]; then rm -rf "$TMP/danxia/audit"; fi
    [[ $OUT == "$TMP"/* ]] || rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- dependencies

if ! pgbench --version >/dev/null 2>&1 || ! command -v sysbench >/dev/null 2>&1 ||
    ! python3 -c 'import psycopg2, pymysql' 2>/dev/null; then
    log "installing dependencies with tests/install-deps.sh"
    bash "$ROOT/tests/install-deps.sh" >&2 || die "tests/install-deps.sh failed"
fi
if [[ $BUILD -eq 1 ]]; then
    log "cargo build --release -p danxia --bins"
    (cd "$ROOT" && cargo build --release -p danxia --bins >&2) || die "cargo build failed"
fi
[[ -x $DANXIA_BIN ]] || die "danxia binary not found at $DANXIA_BIN"
cp "$DANXIA_BIN" "$TMP/danxia-bin"
DANXIA_BIN=$TMP/danxia-bin

# ---------------------------------------------------------------- databases

psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -tAc 'SELECT 1' >/dev/null 2>&1 ||
    die "PostgreSQL not reachable at 127.0.0.1:$PG_PORT as postgres"
if [[ $(psql -X -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'") != 1 ]]; then
    psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c "CREATE DATABASE $PG_DB"
fi
if ! psql -X -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$PG_DB" -tAc \
    'SELECT 1 FROM pgbench_branches LIMIT 1' >/dev/null 2>&1; then
    log "pgbench -i -s $SCALE $PG_DB"
    pgbench -h 127.0.0.1 -p "$PG_PORT" -U postgres -i -s "$SCALE" -q "$PG_DB" >"$OUT/pgbench-init.log" 2>&1 ||
        die "pgbench -i failed (see $OUT/pgbench-init.log)"
fi
psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c \
    "DO \$\$ BEGIN CREATE ROLE $APP_USER LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$" >/dev/null
mysql --no-defaults --protocol=tcp -h 127.0.0.1 -P "$MY_PORT" -u root -e "CREATE DATABASE IF NOT EXISTS $MY_DB" ||
    die "MariaDB not reachable at 127.0.0.1:$MY_PORT as root"
if [[ $(mysql --no-defaults --protocol=tcp -h 127.0.0.1 -P "$MY_PORT" -u root -NBe \
    "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '$MY_DB' AND table_name = 'sbtest1'") != 1 ]]; then
    log "sysbench oltp_read_only prepare ($MY_DB)"
    sysbench oltp_read_only --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$MY_PORT" \
        --mysql-user=root --mysql-db="$MY_DB" --mysql-ssl=off --tables=1 --table-size=10000 prepare \
        >"$OUT/sysbench-prepare.log" 2>&1 || die "sysbench prepare failed (see $OUT/sysbench-prepare.log)"
fi

# ---------------------------------------------------------------- upstream + danxia

mkdir -p "$TMP/danxia/audit"
cp -r "$ROOT/policies/packs/default" "$TMP/policy"
python3 "$ROOT/tests/upstream/citizens_api.py" --port 0 --seed 7 >"$TMP/upstream.out" 2>"$OUT/upstream.log" &
UPSTREAM_PID=$!
for _ in $(seq 100); do grep -q '^READY ' "$TMP/upstream.out" 2>/dev/null && break; sleep 0.1; done
UPSTREAM_PORT=$(awk '/^READY / { print $2; exit }' "$TMP/upstream.out")
[[ -n $UPSTREAM_PORT ]] || die "tests/upstream/citizens_api.py did not print READY"

API_KEY=$("$DANXIA_BIN" api key add dept-audit --keys "$TMP/keys.toml" 2>/dev/null)
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TMP/admin.token"
chmod 600 "$TMP/admin.token"
LISTEN_PG=$(free_port)
LISTEN_MY=$(free_port)
LISTEN_API=$(free_port)
ADMIN_PORT=$(free_port)
cat >"$TMP/danxia/danxia.toml" <<EOF
# generated by bench/soak.sh
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
token_file = "$TMP/admin.token"

[audit]
dir = "$TMP/danxia/audit"
fsync = "batch"

[policy]
dir = "$TMP/policy"
mode = "enforce"
allowlist = "$TMP/danxia/allowlist.toml"

[behaviour]
enabled = true
store = "memory"

[api]
store = "memory"
timezone = "UTC"

[[listener]]
name = "pg"
protocol = "postgres"
listen = "127.0.0.1:$LISTEN_PG"
backend = "127.0.0.1:$PG_PORT"

[[listener]]
name = "mysql"
protocol = "mysql"
listen = "127.0.0.1:$LISTEN_MY"
backend = "127.0.0.1:$MY_PORT"

[[listener]]
name = "api"
protocol = "http"
listen = "127.0.0.1:$LISTEN_API"
api_policy = "$ROOT/policies/packs/api-example"

[[listener.upstream]]
prefix = "/api/"
url = "http://127.0.0.1:$UPSTREAM_PORT"

[listener.auth]
api_key_header = "x-api-key"
keys_file = "$TMP/keys.toml"
EOF
"$DANXIA_BIN" run --config "$TMP/danxia/danxia.toml" >"$TMP/danxia/danxia.log" 2>&1 &
DANXIA_PID=$!
wait_http_ok "http://127.0.0.1:$ADMIN_PORT/healthz" 30 "$DANXIA_PID" ||
    { tail_log "$TMP/danxia/danxia.log"; die "danxia did not start"; }
wait_pg "$LISTEN_PG" 30 "$DANXIA_PID" "$PG_DB" ||
    { tail_log "$TMP/danxia/danxia.log"; die "SELECT 1 through danxia's pg listener failed"; }
wait_mysql "$LISTEN_MY" 30 "$DANXIA_PID" ||
    { tail_log "$TMP/danxia/danxia.log"; die "SELECT 1 through danxia's mysql listener failed"; }
wait_http_status "http://127.0.0.1:$LISTEN_API/api/v1/stats" 200 30 "$DANXIA_PID" -H "x-api-key: $API_KEY" ||
    { tail_log "$TMP/danxia/danxia.log"; die "GET /api/v1/stats through danxia's api listener did not answer 200"; }
log "danxia pid $DANXIA_PID: pg $LISTEN_PG, mysql $LISTEN_MY, api $LISTEN_API, admin $ADMIN_PORT; out $OUT"

SOAK_OUT=$OUT SOAK_SECONDS=$SECONDS_TOTAL DANXIA_PID=$DANXIA_PID DANXIA_BIN=$DANXIA_BIN \
    DANXIA_PG_PORT=$LISTEN_PG DANXIA_MY_PORT=$LISTEN_MY DANXIA_API_PORT=$LISTEN_API \
    DANXIA_ADMIN_PORT=$ADMIN_PORT DANXIA_TOKEN=$(cat "$TMP/admin.token") SOAK_API_KEY=$API_KEY \
    SOAK_POLICY_DIR=$TMP/policy SOAK_AUDIT_DIR=$TMP/danxia/audit SOAK_PG_DB=$PG_DB \
    SOAK_MY_DB=$MY_DB SOAK_APP_USER=$APP_USER PG_DIRECT_PORT=$PG_PORT \
    python3 "$HERE/soak.py"
