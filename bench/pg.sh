#!/usr/bin/env bash
# bench/pg.sh — PostgreSQL benchmark: direct vs danxia vs PgBouncer, one run.
#
# Owns the whole benchmark procedure described in bench/README.md: installs
# what it needs, builds danxia, prepares the `danxia_bench` database, starts
# danxia (audit on) and PgBouncer (session mode) in front of 127.0.0.1:5432,
# then measures, interleaved so that a noisy shared machine hurts every target
# alike:
#   1. pgbench -S (select-only), -M simple and -M prepared: TPS, latency, the
#      ratio to direct, and the proxies' CPU time per transaction;
#   2. streaming: COPY ... TO STDOUT of > 1 GB, direct vs danxia, MB/s;
#   3. memory: danxia's RSS growth per idle client connection (1000 by
#      default, against a throw-away PostgreSQL cluster with max_connections
#      large enough, so the shared server is left alone).
# It prints a summary with targets and PASS/MISS and exits 0; it exits
# non-zero only when something failed to run (a missed target is a result,
# not an error). Loopback only; everything it starts is stopped on exit.
#
# Usage: bash bench/pg.sh [--duration S] [--clients N] [--rounds N] [--quick]
#                         [--idle N] [--copy-rows N] [--no-build] [--keep]
#                         [--skip-danxia]
# Env: BEHAVIOUR=off runs danxia without behaviour baselines (to measure
# their cost); the default is the shipped configuration, baselines on.
# AUDIT_FSYNC=every|none sets danxia's audit.fsync (default batch, the
# shipped default) to measure what the durability mode costs.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

# ---------------------------------------------------------------- options

DURATION=15     # seconds per pgbench run
CLIENTS=8       # pgbench -c
ROUNDS=3        # interleaved rounds (direct, danxia, pgbouncer in rotated order)
IDLE_CONNS=1000 # idle client connections for the memory figure
COPY_ROWS=1100000 # rows of ~1 KB each: the COPY streams ~1.1 GB
SCALE=10        # pgbench scale of danxia_bench
BUILD=1
KEEP=0
WITH_DANXIA=1
DB=danxia_bench
PG_HOST=127.0.0.1
PG_PORT=${BENCH_PG_PORT:-5432}
DANXIA_BIN=${DANXIA_BIN:-$ROOT/target/release/danxia}
POLICY_DIR=$ROOT/policies/packs/default # danxia's policy, enforced

usage() {
    cat <<EOF
Usage: bash bench/pg.sh [options]
  --duration S    seconds per pgbench run (default $DURATION)
  --clients N     pgbench clients, -c N (default $CLIENTS; threads -j = min(2, N))
  --rounds N      interleaved rounds (default $ROUNDS)
  --quick         smoke run: 5 s runs, 1 round
  --idle N        idle connections for the memory figure (default $IDLE_CONNS)
  --copy-rows N   rows of the COPY TO STDOUT stream, ~1 KB each (default $COPY_ROWS)
  --no-build      do not run cargo build; use \$DANXIA_BIN ($DANXIA_BIN)
  --keep          keep the temp directory (configs, logs, audit, raw results)
  --policy DIR    policy directory danxia enforces (default: the shipped
                  default pack); "none" runs danxia without a policy
  --skip-danxia   development only: measure direct and PgBouncer only
                  (danxia's figures are then reported as NOT RUN)
Backend: 127.0.0.1:\$BENCH_PG_PORT (default 5432), user postgres, trust auth.
EOF
}

while [[ $# -gt 0 ]]; do
    case $1 in
    --duration) DURATION=${2:?--duration needs seconds}; shift 2 ;;
    --clients) CLIENTS=${2:?--clients needs a number}; shift 2 ;;
    --rounds) ROUNDS=${2:?--rounds needs a number}; shift 2 ;;
    --quick) DURATION=5; ROUNDS=1; shift ;;
    --idle) IDLE_CONNS=${2:?--idle needs a number}; shift 2 ;;
    --copy-rows) COPY_ROWS=${2:?--copy-rows needs a number}; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --keep) KEEP=1; shift ;;
    --skip-danxia) WITH_DANXIA=0; shift ;;
    --policy) POLICY_DIR=${2:?--policy needs a directory or none}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
    esac
done
for v in DURATION CLIENTS ROUNDS IDLE_CONNS COPY_ROWS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
THREADS=$((CLIENTS < 2 ? CLIENTS : 2))

# ---------------------------------------------------------------- state + cleanup

TMP=""
DANXIA_PID=""
DANXIA_IDLE_PID=""
PGB_PID=""
IDLE_PGDATA=""
PGBIN=""

cleanup() {
    local rc=$?
    set +e
    trap - ERR
    stop_pid "$DANXIA_PID" danxia
    stop_pid "$DANXIA_IDLE_PID" "danxia (idle test)"
    stop_pid "$PGB_PID" pgbouncer
    if [[ -n $IDLE_PGDATA && -f $IDLE_PGDATA/postmaster.pid ]]; then
        as_pg "$PGBIN/pg_ctl" -D "$IDLE_PGDATA" -m immediate -w stop >/dev/null 2>&1
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

# as_pg CMD... — runs CMD as the postgres OS user when we are root (initdb,
# pg_ctl and PgBouncer refuse to run as root), else as ourselves.
as_pg() {
    if [[ $EUID -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

psql_backend() { psql -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U postgres "$@"; }

# ---------------------------------------------------------------- 1. dependencies

install_deps() {
    if [[ -f $ROOT/tests/install-deps.sh ]]; then
        log "installing dependencies with tests/install-deps.sh"
        bash "$ROOT/tests/install-deps.sh" >&2 || die "tests/install-deps.sh failed"
    fi
    need_cmd python3 python3
    need_cmd psql postgresql-client
    need_cmd pgbench postgresql-client
    need_cmd pgbouncer pgbouncer
    if [[ $EUID -eq 0 ]]; then
        id postgres >/dev/null 2>&1 ||
            die "OS user 'postgres' missing: PgBouncer and initdb must not run as root (apt-get install postgresql creates it)"
    fi
    # 2 fds per proxied connection plus the client side of the idle test.
    local want=$((IDLE_CONNS * 3 + 1024))
    if [[ $(ulimit -n) -lt $want ]]; then
        ulimit -n "$want" 2>/dev/null ||
            die "open-file limit $(ulimit -n) < $want needed for $IDLE_CONNS idle connections; raise it (ulimit -n) or use --idle"
    fi
}

# ---------------------------------------------------------------- 2. build + database

build_danxia() {
    if [[ $WITH_DANXIA -eq 0 ]]; then
        warn "--skip-danxia: danxia is not built, started or measured"
        return
    fi
    if [[ $BUILD -eq 1 ]]; then
        command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs) or use --no-build with DANXIA_BIN"
        log "cargo build --release -p danxia"
        (cd "$ROOT" && cargo build --release -p danxia >&2) || die "cargo build --release -p danxia failed"
    fi
    [[ -x $DANXIA_BIN ]] || die "danxia binary not found at $DANXIA_BIN"
    # Run a private copy: a rebuild in the work tree during the benchmark
    # (other people build here too) must not swap the binary between phases.
    cp "$DANXIA_BIN" "$TMP/danxia"
    DANXIA_BIN=$TMP/danxia
}

prepare_db() {
    psql_backend -d postgres -tAc 'SELECT 1' >/dev/null 2>&1 ||
        die "PostgreSQL not reachable at $PG_HOST:$PG_PORT as user postgres (trust auth expected)"
    # The server's postmaster, when it runs on this machine and we may read its
    # pid file: its CPU (and its backends') is then known, so the CPU used by
    # everything else on the machine during a run can be reported.
    local datadir
    datadir=$(psql_backend -d postgres -tAc 'SHOW data_directory' 2>/dev/null || true)
    PG_PM_PID=""
    if [[ -n $datadir && -r $datadir/postmaster.pid ]]; then
        PG_PM_PID=$(head -n 1 "$datadir/postmaster.pid")
        [[ -r /proc/$PG_PM_PID/stat ]] || PG_PM_PID=""
    fi
    [[ -n $PG_PM_PID ]] || warn "PostgreSQL's postmaster is not readable here: 'other load' will not be reported"
    local exists scale=""
    exists=$(psql_backend -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")
    if [[ $exists == 1 ]]; then
        # Scale = rows in pgbench_branches; accounts must be complete too.
        scale=$(psql_backend -d "$DB" -tAc \
            "SELECT CASE WHEN (SELECT count(*) FROM pgbench_accounts) = count(*) * 100000
                         THEN count(*) END FROM pgbench_branches" 2>/dev/null || true)
    else
        log "creating database $DB"
        psql_backend -d postgres -c "CREATE DATABASE $DB" >/dev/null
    fi
    if [[ $scale != "$SCALE" ]]; then
        log "initialising $DB: pgbench -i -s $SCALE (found scale '${scale:-none}')"
        pgbench -h "$PG_HOST" -p "$PG_PORT" -U postgres -i -s "$SCALE" -q "$DB" >"$TMP/pgbench-init.log" 2>&1 ||
            { tail_log "$TMP/pgbench-init.log"; die "pgbench -i -s $SCALE $DB failed"; }
    else
        log "database $DB ready (scale $SCALE)"
    fi
}

# ---------------------------------------------------------------- 2. proxies

# write_danxia_config FILE LISTEN_PORT ADMIN_PORT BACKEND_PORT AUDIT_DIR
# The shipped danxia.toml with audit on, full statement text, batched fsync,
# and the policy ($POLICY_DIR) in enforce mode.
write_danxia_config() {
    local policy=""
    if [[ $POLICY_DIR != none ]]; then
        policy="[policy]
dir = \"$POLICY_DIR\"
mode = \"enforce\"
allowlist = \"$(dirname "$5")/allowlist.toml\"
"
    fi
    cat >"$1" <<EOF
[admin]
listen = "127.0.0.1:$3"

[audit]
dir = "$5"
statement_text = "full"
queue_capacity = 65536
on_full = "block"
on_error = "block"
fsync = "${AUDIT_FSYNC:-batch}"
fsync_interval = "1s"
rotate_bytes = 268435456
rotate_daily = true

[limits]
max_message_bytes = 67108864
startup_timeout = "30s"
backend_connect_timeout = "5s"
shutdown_grace = "5s"

$policy
[behaviour]
# Baselines on (the shipped default) unless BEHAVIOUR=off.
enabled = $([[ ${BEHAVIOUR:-on} == off ]] && echo false || echo true)
dir = "$(dirname "$5")/behaviour"

[[listener]]
name = "pg"
protocol = "postgres"
listen = "127.0.0.1:$2"
backend = "127.0.0.1:$4"
EOF
}

# start_danxia NAME BACKEND_PORT — starts danxia; sets STARTED_PID and
# STARTED_PORT. Waits for /healthz (/readyz needs the admin token) and a real query through it.
start_danxia() {
    local name=$1 backend_port=$2 port admin dir=$TMP/$1
    mkdir -p "$dir/audit"
    port=$(free_port)
    admin=$(free_port)
    write_danxia_config "$dir/danxia.toml" "$port" "$admin" "$backend_port" "$dir/audit"
    "$DANXIA_BIN" run --config "$dir/danxia.toml" 2>"$dir/danxia.log" &
    STARTED_PID=$!
    STARTED_PORT=$port
    STARTED_ADMIN=$admin
    wait_http_ok "http://127.0.0.1:$admin/healthz" 30 "$STARTED_PID" ||
        { tail_log "$dir/danxia.log"; die "danxia ($name) not ready on admin 127.0.0.1:$admin/healthz within 30 s"; }
    wait_pg "$port" 30 "$STARTED_PID" ||
        { tail_log "$dir/danxia.log"; die "danxia ($name): SELECT 1 through 127.0.0.1:$port failed"; }
    log "danxia ($name) pid $STARTED_PID listening on 127.0.0.1:$port (admin $admin) -> 127.0.0.1:$backend_port, policy: $POLICY_DIR (enforce)"
}

start_pgbouncer() {
    local dir=$TMP/pgbouncer port
    mkdir -p "$dir"
    port=$(free_port)
    cat >"$dir/userlist.txt" <<'EOF'
"postgres" ""
EOF
    cat >"$dir/pgbouncer.ini" <<EOF
[databases]
* = host=127.0.0.1 port=$PG_PORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = session
max_client_conn = 2000
default_pool_size = 20
log_connections = 0
log_disconnections = 0
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOF
    if [[ $EUID -eq 0 ]]; then
        # PgBouncer refuses to run as root; -u switches to postgres after
        # start-up, keeping the same pid. It must be able to write its log.
        chown -R postgres "$dir"
        pgbouncer -u postgres "$dir/pgbouncer.ini" 2>>"$dir/stderr.log" &
    else
        pgbouncer "$dir/pgbouncer.ini" 2>>"$dir/stderr.log" &
    fi
    PGB_PID=$!
    PGB_PORT=$port
    wait_pg "$port" 30 "$PGB_PID" "$DB" ||
        { tail_log "$dir/pgbouncer.log"; tail_log "$dir/stderr.log"; die "pgbouncer not answering on 127.0.0.1:$port"; }
    log "pgbouncer pid $PGB_PID listening on 127.0.0.1:$port (session mode) -> 127.0.0.1:$PG_PORT"
}

# ---------------------------------------------------------------- 3. pgbench

RUNS_TSV=""

target_port() {
    case $1 in
    direct) echo "$PG_PORT" ;;
    danxia) echo "$DANXIA_PORT" ;;
    pgbouncer) echo "$PGB_PORT" ;;
    esac
}
target_pid() {
    case $1 in
    direct) echo "" ;;
    danxia) echo "$DANXIA_PID" ;;
    pgbouncer) echo "$PGB_PID" ;;
    esac
}

# load_snapshot — "wall_ns machine_busy_ticks our_ticks": our ticks are this
# script's reaped children (pgbench, psql, wc), the PostgreSQL server with its
# backends, and the proxies. machine − ours over a run = load from others.
PG_PM_PID=""
load_snapshot() {
    local ours pg=0 p
    ours=$(proc_children_ticks $$)
    [[ -n $PG_PM_PID ]] && pg=$(proc_tree_ticks "$PG_PM_PID")
    for p in ${DANXIA_PID:-} ${PGB_PID:-}; do ours=$((ours + $(proc_cpu_ticks "$p"))); done
    echo "$(date +%s%N) $(machine_busy_ticks) $((ours + pg))"
}

# other_cores "SNAP_BEFORE" "SNAP_AFTER" — cores' worth of CPU used by
# processes other than ours between the two snapshots ("" when unknown).
other_cores() {
    [[ -n $PG_PM_PID ]] || { echo ""; return; }
    awk -v a="$1" -v b="$2" -v hz="$CLK_TCK" 'BEGIN {
        split(a, x, " "); split(b, y, " ");
        other = (y[2] - x[2]) - (y[3] - x[3]); if (other < 0) other = 0;
        printf "%.2f", other / hz / ((y[1] - x[1]) / 1e9) }'
}

# run_pgbench ROUND MODE TARGET — one pgbench -S run; appends a row to RUNS_TSV.
run_pgbench() {
    local round=$1 mode=$2 target=$3 port pid out cpu0=0 cpu1=0 sw0=0 sw1=0 snap0 snap1
    port=$(target_port "$target")
    pid=$(target_pid "$target")
    out=$TMP/runs/pgbench-r$round-$mode-$target.txt
    if [[ -n $pid ]]; then
        kill -0 "$pid" 2>/dev/null || die "$target (pid $pid) died before round $round"
        cpu0=$(proc_cpu_ticks "$pid")
        sw0=$(proc_ctxsw "$pid")
    fi
    snap0=$(load_snapshot)
    # timeout: a hung proxy must end the benchmark with an error, not stall it.
    if ! timeout $((DURATION + 60)) pgbench -h 127.0.0.1 -p "$port" -U postgres -n -S -M "$mode" \
        -c "$CLIENTS" -j "$THREADS" -T "$DURATION" "$DB" >"$out" 2>&1; then
        tail_log "$out"
        die "pgbench -M $mode against $target (port $port) failed in round $round"
    fi
    if [[ -n $pid ]]; then
        cpu1=$(proc_cpu_ticks "$pid")
        sw1=$(proc_ctxsw "$pid")
    fi
    sleep 0.2 # let the postmaster reap pgbench's backends (their CPU is ours)
    snap1=$(load_snapshot)
    local other
    other=$(other_cores "$snap0" "$snap1")
    local tps lat txns failed
    tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time).*/\1/p' "$out")
    lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$out")
    txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")
    [[ -n $tps && -n $lat && -n $txns ]] ||
        { tail_log "$out"; die "could not parse pgbench output for $target -M $mode (see $out)"; }
    [[ ${failed:-0} -eq 0 ]] ||
        { tail_log "$out"; die "pgbench -M $mode against $target: $failed failed transactions"; }
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$mode" "$target" "$tps" "$lat" "$txns" \
        $((cpu1 - cpu0)) $((sw1 - sw0)) "$other" >>"$RUNS_TSV"
    log "  round $round  -M $mode  $(printf '%-9s' "$target") tps $tps  latency $lat ms  other load ${other:-n/a} cores"
}

# ---------------------------------------------------------------- 4. COPY streaming

COPY_TSV=""

run_copy() {
    local round=$1 target=$2 port t0 t1 bytes out
    port=$(target_port "$target")
    out=$TMP/runs/copy-r$round-$target
    local snap0 snap1 other
    snap0=$(load_snapshot)
    t0=$(date +%s%N)
    if ! timeout 900 psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d "$DB" \
        -c "COPY (SELECT g, repeat('x', 1000) FROM generate_series(1, $COPY_ROWS) g) TO STDOUT" \
        2>"$out.err" | wc -c >"$out.bytes"; then
        tail_log "$out.err"
        die "COPY TO STDOUT through $target (port $port) failed"
    fi
    t1=$(date +%s%N)
    sleep 0.2 # let the postmaster reap the COPY's backend (its CPU is ours)
    snap1=$(load_snapshot)
    other=$(other_cores "$snap0" "$snap1")
    bytes=$(tr -d ' ' <"$out.bytes")
    printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$target" "$bytes" $((t1 - t0)) "$other" >>"$COPY_TSV"
    log "  round $round  COPY $(printf '%-9s' "$target") $bytes bytes in $(((t1 - t0) / 1000000)) ms  other load ${other:-n/a} cores"
}

# ---------------------------------------------------------------- 5. idle connections

# The idle-connection client: opens N connections through danxia, each doing a
# real PostgreSQL startup (protocol 3.0, trust auth) up to ReadyForQuery, so
# that each holds a backend connection; measures danxia's VmRSS before and
# after; checks with pg_stat_activity that N backends exist; prints JSON.
write_idle_client() {
    cat >"$1" <<'PYEOF'
"""Idle-connection memory probe for bench/pg.sh (stdlib only)."""
import json
import socket
import struct
import sys
import time

host, port, n, pid, db = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
APP = "danxia-bench-idle"


def fail(msg):
    print(f"idle client: {msg}", file=sys.stderr)
    sys.exit(1)


def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    fail(f"no VmRSS for pid {pid}")


def recv_exact(s, k):
    buf = b""
    while len(buf) < k:
        chunk = s.recv(k - len(buf))
        if not chunk:
            fail("server closed the connection")
        buf += chunk
    return buf


def read_msg(s):
    hdr = recv_exact(s, 5)
    typ, length = hdr[:1], struct.unpack("!I", hdr[1:])[0]
    return typ, recv_exact(s, length - 4)


def error_text(body):
    # ErrorResponse fields: type byte + cstring, terminated by a zero byte.
    parts = [p for p in body.split(b"\0") if p]
    return "; ".join(p[1:].decode(errors="replace") for p in parts if p[:1] in (b"S", b"C", b"M"))


def until_ready(s):
    """Reads messages until ReadyForQuery; returns DataRow bodies seen."""
    rows = []
    while True:
        typ, body = read_msg(s)
        if typ == b"Z":
            return rows
        if typ == b"E":
            fail("ErrorResponse: " + error_text(body))
        if typ == b"R" and struct.unpack("!I", body[:4])[0] != 0:
            fail("backend asked for a password: the benchmark needs trust auth for user postgres")
        if typ == b"D":
            rows.append(body)


def connect():
    s = socket.create_connection((host, port), timeout=60)
    params = b"".join(k + b"\0" + v + b"\0" for k, v in
                      ((b"user", b"postgres"), (b"database", db.encode()),
                       (b"application_name", APP.encode()))) + b"\0"
    s.sendall(struct.pack("!II", 8 + len(params), 196608) + params)
    until_ready(s)
    return s


# Warm-up: one connection opened and closed, so one-off allocations (runtime,
# audit writer, first session) are in the baseline, not in the per-connection
# figure.
connect().close()
time.sleep(1.0)
before = rss_kib()

t0 = time.time()
conns = []
for i in range(n):
    try:
        conns.append(connect())
    except (OSError, socket.timeout) as e:
        fail(f"connection {i + 1} of {n} failed: {e}")
open_s = time.time() - t0
time.sleep(2.0)
after = rss_kib()

# Proof that every client holds its own backend connection.
q = b"SELECT count(*) FROM pg_stat_activity WHERE application_name = '" + APP.encode() + b"'\0"
s = conns[-1]
s.sendall(b"Q" + struct.pack("!I", 4 + len(q)) + q)
rows = until_ready(s)
if not rows:
    fail("no row from pg_stat_activity")
body = rows[0]
(ln,) = struct.unpack("!I", body[2:6])
backends = int(body[6:6 + ln])
if backends != n:
    fail(f"expected {n} backend connections with application_name={APP}, pg_stat_activity shows {backends}")

for c in conns:
    c.close()
time.sleep(2.0)
after_close = rss_kib()
print(json.dumps({"connections": n, "backends": backends, "rss_before_kib": before,
                  "rss_after_kib": after, "rss_after_close_kib": after_close,
                  "open_seconds": round(open_s, 2)}))
PYEOF
}

# idle_test — sets IDLE_JSON (written to $TMP/idle.json).
idle_test() {
    local backend_port note="" n=$IDLE_CONNS
    PGBIN=$(pg_bindir)
    if [[ -n $PGBIN ]]; then
        # A throw-away cluster with room for all the idle backends: the shared
        # server keeps its max_connections and its connection slots.
        local dir=$TMP/idle-pg
        mkdir -p "$dir"
        if [[ $EUID -eq 0 ]]; then chown postgres "$dir"; fi
        IDLE_PGDATA=$dir/data
        backend_port=$(free_port)
        log "idle test: initdb a throw-away cluster (max_connections=$((n + 100))) on 127.0.0.1:$backend_port"
        as_pg "$PGBIN/initdb" -D "$IDLE_PGDATA" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1 ||
            { tail_log "$dir/initdb.log"; die "initdb failed for the idle-connection cluster"; }
        as_pg "$PGBIN/pg_ctl" -D "$IDLE_PGDATA" -l "$dir/server.log" -w -t 60 \
            -o "-p $backend_port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c max_connections=$((n + 100)) -c shared_buffers=32MB -c fsync=off" \
            start >"$dir/pg_ctl.log" 2>&1 ||
            { tail_log "$dir/server.log"; die "could not start the idle-connection cluster"; }
        note="dedicated throw-away cluster, max_connections=$((n + 100))"
    else
        # No server binaries: use the shared server with what fits.
        backend_port=$PG_PORT
        local maxc used
        maxc=$(psql_backend -d postgres -tAc 'SHOW max_connections')
        used=$(psql_backend -d postgres -tAc 'SELECT count(*) FROM pg_stat_activity')
        if ((n > maxc - used - 20)); then
            n=$((maxc - used - 20))
            ((n >= 50)) || die "shared server has only $maxc max_connections ($used used): too few for the idle test; install the PostgreSQL server binaries (initdb)"
            warn "no initdb found: idle test on the shared server with $n connections (max_connections=$maxc, $used in use), not $IDLE_CONNS"
        fi
        note="shared server, $n connections (max_connections=$maxc)"
    fi
    start_danxia idle "$backend_port"
    DANXIA_IDLE_PID=$STARTED_PID
    write_idle_client "$TMP/idle_client.py"
    local db=postgres
    log "idle test: opening $n idle connections through danxia"
    timeout 600 python3 "$TMP/idle_client.py" 127.0.0.1 "$STARTED_PORT" "$n" "$DANXIA_IDLE_PID" "$db" \
        >"$TMP/idle.json" 2>"$TMP/idle.err" ||
        { tail_log "$TMP/idle.err"; tail_log "$TMP/idle/danxia.log"; die "idle-connection test failed"; }
    python3 - "$TMP/idle.json" "$note" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1])); d["note"] = sys.argv[2]
json.dump(d, open(sys.argv[1], "w"))
EOF
    stop_pid "$DANXIA_IDLE_PID" "danxia (idle test)"
    DANXIA_IDLE_PID=""
    if [[ -n $IDLE_PGDATA ]]; then
        as_pg "$PGBIN/pg_ctl" -D "$IDLE_PGDATA" -m fast -w stop >/dev/null 2>&1 || warn "idle cluster did not stop cleanly"
    fi
}

# Idle test against PgBouncer-less "direct" is meaningless (no proxy); in
# --skip-danxia mode the client is exercised against PgBouncer instead, so the
# probe itself is tested. PgBouncer multiplexes idle clients, so its figure is
# not comparable and is only printed as a development aid.
idle_test_pgbouncer_dev() {
    write_idle_client "$TMP/idle_client.py"
    log "idle test (--skip-danxia): $IDLE_CONNS idle connections through pgbouncer (dev check only)"
    timeout 600 python3 "$TMP/idle_client.py" 127.0.0.1 "$PGB_PORT" "$IDLE_CONNS" "$PGB_PID" "$DB" \
        >"$TMP/idle-pgbouncer.json" 2>"$TMP/idle.err" && {
        log "pgbouncer idle probe: $(cat "$TMP/idle-pgbouncer.json")"
    } || { tail_log "$TMP/idle.err"; warn "idle probe against pgbouncer failed (expected when pgbouncer multiplexes: backends != clients)"; }
}

# ---------------------------------------------------------------- 6. report

report() {
    python3 - "$RUNS_TSV" "$COPY_TSV" "$TMP/idle.json" "$TMP/meta.json" "$WITH_DANXIA" "$CLK_TCK" <<'PYEOF'
import json, os, statistics, sys

runs_tsv, copy_tsv, idle_json, meta_json, with_danxia, clk = sys.argv[1:7]
with_danxia, clk = with_danxia == "1", int(clk)
meta = json.load(open(meta_json))
med = statistics.median

runs = []
for line in open(runs_tsv):
    r, mode, target, tps, lat, txns, ticks, sw, other = line.rstrip("\n").split("\t")
    runs.append(dict(round=int(r), mode=mode, target=target, tps=float(tps), lat=float(lat),
                     txns=int(txns), ticks=int(ticks), sw=int(sw),
                     other=float(other) if other else None))
targets = ["direct", "danxia", "pgbouncer"] if with_danxia else ["direct", "pgbouncer"]
modes = ["simple", "prepared"]

def per_round_ratio(mode, num, den):
    out = []
    for r in sorted({x["round"] for x in runs}):
        a = [x["tps"] for x in runs if x["round"] == r and x["mode"] == mode and x["target"] == num]
        b = [x["tps"] for x in runs if x["round"] == r and x["mode"] == mode and x["target"] == den]
        if a and b:
            out.append(a[0] / b[0])
    return out

print()
print(f"== danxia PostgreSQL benchmark  {meta['date']}")
print(f"   machine: {meta['cpu']} x{meta['nproc']}, {meta['mem']}, kernel {meta['kernel']}")
print(f"   {meta['pg']};  {meta['pgbouncer']};  danxia {meta['danxia']}, policy {meta.get('policy', 'none')} (enforce)")
print(f"   pgbench -S -c {meta['clients']} -j {meta['threads']} -T {meta['duration']} x {meta['rounds']} rounds, "
      f"scale {meta['scale']}; load average at start {meta['load']}")
print()
hdr = f"{'mode':<9}{'target':<11}{'TPS med':>10}{'lat ms':>9}{'vs direct':>11}{'range':>14}{'CPU us/tx':>11}{'csw/tx':>8}"
print(hdr)
print("-" * len(hdr))
results = {}
for mode in modes:
    for t in targets:
        rs = [x for x in runs if x["mode"] == mode and x["target"] == t]
        if not rs:
            continue
        tps = med([x["tps"] for x in rs])
        lat = statistics.mean([x["lat"] for x in rs])
        ratios = per_round_ratio(mode, t, "direct")
        ratio = med(ratios)
        cpu = med([x["ticks"] / clk * 1e6 / x["txns"] for x in rs]) if t != "direct" else None
        sw = med([x["sw"] / x["txns"] for x in rs]) if t != "direct" else None
        results[(mode, t)] = dict(tps=tps, lat=lat, ratio=ratio, cpu=cpu, ratios=ratios)
        rng = f"{min(ratios):.2f}-{max(ratios):.2f}" if t != "direct" else ""
        print(f"{mode:<9}{t:<11}{tps:>10.0f}{lat:>9.3f}{ratio:>11.3f}{rng:>14}"
              f"{'' if cpu is None else f'{cpu:.1f}':>11}{'' if sw is None else f'{sw:.2f}':>8}")
    if with_danxia:
        r = per_round_ratio(mode, "danxia", "pgbouncer")
        results[(mode, "danxia/pgbouncer")] = dict(ratio=med(r))
        print(f"{mode:<9}{'danxia/pgbouncer (median of per-round ratios)':<50}{med(r):>.3f}")
print("(TPS: median over rounds; latency: mean of pgbench 'latency average'; vs direct: median of per-round")
print(" ratios; CPU us/tx: the proxy process's utime+stime over the run / transactions, 10 ms tick")
print(" resolution; csw/tx: context switches of its live threads per transaction)")
print()
def fmt_other(v):
    return "n/a" if v is None else f"{v:.2f}"
print("per run: TPS [other load in cores: CPU used during the run by processes other than pgbench,")
print("PostgreSQL and the proxies]")
for mode in modes:
    for t in targets:
        rs = sorted((x for x in runs if x["mode"] == mode and x["target"] == t), key=lambda x: x["round"])
        cells = [f"r{x['round']} {x['tps']:>6.0f} [{fmt_other(x['other'])}]" for x in rs]
        print(f"  {mode:<9}{t:<10} " + "  ".join(cells))
others = [x["other"] for x in runs if x["other"] is not None]
noisy = bool(others) and max(others) > 0.25
if noisy:
    print(f"NOTE: other processes used up to {max(others):.2f} cores during some runs (this machine has "
          f"{meta['nproc']}): those runs are disturbed; trust the per-round ratios and their range more "
          "than absolute TPS, and rerun on a quiet machine for publishable figures.")

copy = []
if os.path.getsize(copy_tsv) > 0:
    for line in open(copy_tsv):
        r, t, b, ns, other = line.rstrip("\n").split("\t")
        copy.append(dict(round=int(r), target=t, bytes=int(b), s=int(ns) / 1e9,
                         other=float(other) if other else None))
copy_ratio = None
if copy:
    print()
    print(f"{'COPY TO STDOUT':<16}{'bytes':>14}{'MB/s med':>10}{'vs direct':>11}   per run: MB/s [other load]")
    sizes = {c["bytes"] for c in copy}
    if len(sizes) != 1:
        print(f"ERROR: COPY byte counts differ between runs/targets: {sorted(sizes)}")
        sys.exit(1)
    for t in ["direct", "danxia"]:
        cs = [c for c in copy if c["target"] == t]
        if not cs:
            continue
        mbs = med([c["bytes"] / c["s"] / 1e6 for c in cs])
        ratios = []
        for c in cs:
            d = [x for x in copy if x["round"] == c["round"] and x["target"] == "direct"]
            ratios.append((c["bytes"] / c["s"]) / (d[0]["bytes"] / d[0]["s"]))
        if t == "danxia":
            copy_ratio = med(ratios)
        per = "  ".join(f"r{c['round']} {c['bytes'] / c['s'] / 1e6:.0f} [{fmt_other(c['other'])}]" for c in cs)
        print(f"{t:<16}{cs[0]['bytes']:>14}{mbs:>10.1f}{med(ratios):>11.3f}   {per}")

idle = json.load(open(idle_json)) if os.path.exists(idle_json) else None
idle_kib = None
if idle:
    idle_kib = (idle["rss_after_kib"] - idle["rss_before_kib"]) / idle["connections"]
    print()
    print(f"idle connections through danxia: {idle['connections']} ({idle['note']}); "
          f"{idle['backends']} backends seen in pg_stat_activity")
    print(f"  danxia VmRSS {idle['rss_before_kib']} KiB -> {idle['rss_after_kib']} KiB with all open "
          f"-> {idle['rss_after_close_kib']} KiB after closing; opened in {idle['open_seconds']} s")
    print(f"  = {idle_kib:.1f} KiB per idle connection")

print()
print("== summary")
rows = []
def add(name, value, op, target, fmt="{:.4f}"):
    if value is None:
        rows.append((name, "NOT RUN", f"{op} {target}", "NOT RUN"))
        return
    ok = value >= target if op == ">=" else value <= target
    rows.append((name, fmt.format(value), f"{op} {target}", "PASS" if ok else "MISS"))
for mode in modes:
    add(f"danxia/direct TPS, -M {mode}", results.get((mode, "danxia"), {}).get("ratio"), ">=", 0.95)
for mode in modes:
    add(f"danxia/pgbouncer TPS, -M {mode}", results.get((mode, "danxia/pgbouncer"), {}).get("ratio"), ">=", 1.0)
add("COPY TO STDOUT danxia/direct MB/s", copy_ratio, ">=", 0.90)
add("danxia RSS per idle connection, KiB", idle_kib, "<=", 64, "{:.1f}")
w = max(len(r[0]) for r in rows)
for name, v, tgt, res in rows:
    print(f"  {name:<{w}}  {v:>8}  {tgt:>8}  {res}")
for mode in modes:
    p = results.get((mode, "pgbouncer"))
    if p:
        print(f"  (info) pgbouncer/direct TPS, -M {mode}: {p['ratio']:.3f}; "
              f"pgbouncer CPU {p['cpu']:.1f} us/tx"
              + (f", danxia CPU {results[(mode, 'danxia')]['cpu']:.1f} us/tx" if (mode, 'danxia') in results else ""))

json.dump({"meta": meta, "runs": runs, "copy": copy, "idle": idle,
           "summary": [dict(zip(("figure", "measured", "target", "result"), r)) for r in rows]},
          open(os.path.join(os.path.dirname(runs_tsv), "results.json"), "w"), indent=1)
PYEOF
}

write_meta() {
    local danxia_ver="not run"
    if [[ $WITH_DANXIA -eq 1 ]]; then
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
  "pg": """$(psql_backend -d postgres -tAc "SELECT split_part(version(), ' on ', 1)")""",
  "pgbouncer": """$(pgbouncer --version 2>&1 | head -n 1)""",
  "danxia": """${danxia_ver:-unknown}""",
  "policy": """${POLICY_DIR#"$ROOT"/}""",
  "clients": $CLIENTS, "threads": $THREADS, "duration": $DURATION, "rounds": $ROUNDS,
  "scale": $SCALE, "load": "$(cut -d' ' -f1-3 /proc/loadavg)",
}, open(sys.argv[1], "w"))
EOF
}

# ---------------------------------------------------------------- main

main() {
    install_deps
    TMP=$(mktemp -d /tmp/danxia-bench.XXXXXX)
    # PgBouncer and the throw-away cluster run as postgres: let them in.
    chmod 755 "$TMP"
    mkdir -p "$TMP/runs"
    RUNS_TSV=$TMP/runs.tsv
    COPY_TSV=$TMP/copy.tsv
    : >"$RUNS_TSV"
    : >"$COPY_TSV"

    build_danxia
    prepare_db
    write_meta

    local targets=(direct pgbouncer)
    if [[ $WITH_DANXIA -eq 1 ]]; then
        start_danxia main "$PG_PORT"
        DANXIA_PID=$STARTED_PID
        DANXIA_PORT=$STARTED_PORT
        DANXIA_ADMIN=$STARTED_ADMIN
        targets=(direct danxia pgbouncer)
    fi
    start_pgbouncer

    log "warm-up: 3 s of pgbench -S per target"
    local t
    for t in "${targets[@]}"; do
        timeout 60 pgbench -h 127.0.0.1 -p "$(target_port "$t")" -U postgres -n -S -c "$CLIENTS" -j "$THREADS" -T 3 "$DB" \
            >"$TMP/runs/warmup-$t.txt" 2>&1 || { tail_log "$TMP/runs/warmup-$t.txt"; die "warm-up against $t failed"; }
    done

    local n=${#targets[@]} round i mode order
    for ((round = 1; round <= ROUNDS; round++)); do
        order=()
        for ((i = 0; i < n; i++)); do order+=("${targets[$(((i + round - 1) % n))]}"); done
        log "round $round/$ROUNDS: order ${order[*]}"
        for mode in simple prepared; do
            for t in "${order[@]}"; do run_pgbench "$round" "$mode" "$t"; done
        done
    done

    local copy_targets=(direct)
    if [[ $WITH_DANXIA -eq 1 ]]; then copy_targets=(direct danxia); fi
    log "streaming: COPY TO STDOUT of $COPY_ROWS rows (~$((COPY_ROWS * 1008 / 1000000)) MB)"
    for ((round = 1; round <= ROUNDS; round++)); do
        if ((round % 2 == 1)); then order=("${copy_targets[@]}"); else order=($(printf '%s\n' "${copy_targets[@]}" | tac)); fi
        for t in "${order[@]}"; do run_copy "$round" "$t"; done
    done

    if [[ $WITH_DANXIA -eq 1 ]]; then
        kill -0 "$DANXIA_PID" 2>/dev/null || { tail_log "$TMP/main/danxia.log"; die "danxia died during the benchmark"; }
        local events
        events=$(cat "$TMP"/main/audit/*.jsonl 2>/dev/null | wc -l)
        log "danxia wrote $events audit events during the benchmark (audit dir $TMP/main/audit)"
        ((events > 0)) || die "danxia wrote no audit events: audit is supposed to be on"
        python3 - "http://127.0.0.1:$DANXIA_ADMIN/metrics" <<'EOF' >&2 || warn "could not read danxia /metrics"
import sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
sums = {}
for line in text.splitlines():
    if line.startswith(("danxia_audit_events_dropped_total", "danxia_audit_write_failures_total",
                        "danxia_audit_events_written_total", "danxia_protocol_errors_total",
                        "danxia_policy_decisions_total", "danxia_policy_decision_cache_total",
                        "danxia_policy_rules")):
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
        # The audit trail written under load must verify end to end.
        local t0 t1
        t0=$(date +%s%N)
        "$DANXIA_BIN" audit verify "$TMP/main/audit" >"$TMP/verify.out" 2>&1 ||
            { tail_log "$TMP/verify.out"; die "danxia audit verify failed on the benchmark's audit log"; }
        t1=$(date +%s%N)
        log "audit verify: $(head -n 1 "$TMP/verify.out") ($(((t1 - t0) / 1000000)) ms)"
        idle_test
    else
        idle_test_pgbouncer_dev
    fi
    stop_pid "$PGB_PID" pgbouncer
    PGB_PID=""

    report
    if [[ $KEEP -eq 1 ]]; then
        log "raw results: $TMP/results.json"
    else
        log "raw results, logs and audit files are deleted on exit; --keep keeps them"
    fi
}

main
