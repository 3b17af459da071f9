# bench/lib.sh — shell helpers shared by the benchmark scripts under bench/.
#
# Owns: messages, dependency installation, free ports, waiting for services,
# reading a process's CPU time / context switches / RSS from /proc, and
# starting/stopping the processes a benchmark puts in front of PostgreSQL.
# It must never touch anything outside the benchmark's own temp directory and
# the processes it started itself (the machine is shared).
#
# Source it from a script that already ran `set -euo pipefail`.

# ---------------------------------------------------------------- messages

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
warn() { printf '[bench %(%H:%M:%S)T] WARNING: %s\n' -1 "$*" >&2; }
die() {
    printf '[bench %(%H:%M:%S)T] ERROR: %s\n' -1 "$*" >&2
    exit 1
}

# ---------------------------------------------------------------- installing

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run '$*' (not root and no sudo)"
    fi
}

# apt_install PKG... — installs Debian packages idempotently (apt-get only
# installs what is missing). `apt-get update` runs once per script run.
APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 ||
        die "apt-get not found: install these packages by hand: $*"
    if [[ $APT_UPDATED -eq 0 ]]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 ||
            die "apt-get update failed"
        APT_UPDATED=1
    fi
    log "apt-get install -y $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2 ||
        die "apt-get install $* failed"
}

# need_cmd CMD PKG — installs PKG when `CMD --version` does not run (on
# Debian /usr/bin/pgbench is a wrapper that fails without the versioned client
# package behind it), then insists that it runs.
need_cmd() {
    local cmd=$1 pkg=$2
    "$cmd" --version >/dev/null 2>&1 || apt_install "$pkg"
    "$cmd" --version >/dev/null 2>&1 ||
        die "'$cmd --version' still fails after installing '$pkg'"
}

# pg_bindir — the server binaries directory (initdb, pg_ctl) of the newest
# PostgreSQL installed from Debian packages; PG_BINDIR overrides. Prints
# nothing when there is none.
pg_bindir() {
    if [[ -n ${PG_BINDIR:-} ]]; then
        echo "$PG_BINDIR"
        return
    fi
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -n $d && -x $d/initdb && -x $d/pg_ctl ]]; then echo "$d"; fi
}

# ---------------------------------------------------------------- ports

# free_port — a TCP port on 127.0.0.1 that nothing listens on right now.
# (The kernel picks it; there is a small race until our server binds it.)
free_port() {
    python3 - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

# wait_http_ok URL SECONDS PID — waits until GET URL answers 200 while PID
# lives. Returns 1 on timeout or when PID died.
wait_http_ok() {
    local url=$1 secs=$2 pid=$3 i
    for ((i = 0; i < secs * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || return 1
        if python3 - "$url" <<'EOF' 2>/dev/null; then return 0; fi
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=1) as r:
    sys.exit(0 if r.status == 200 else 1)
EOF
        sleep 0.1
    done
    return 1
}

# wait_pg PORT SECONDS PID — waits until a real query (SELECT 1) succeeds on
# 127.0.0.1:PORT while PID lives.
wait_pg() {
    local port=$1 secs=$2 pid=$3 db=${4:-postgres} i
    for ((i = 0; i < secs * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || return 1
        # timeout: a proxy that accepts but never answers must not hang us.
        if PGCONNECT_TIMEOUT=3 timeout 5 psql -X -q -h 127.0.0.1 -p "$port" -U postgres \
            -d "$db" -tAc 'SELECT 1' >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# wait_mysql PORT SECONDS PID [USER] — waits until a real query (SELECT 1)
# succeeds on 127.0.0.1:PORT with the mysql client (MariaDB's or MySQL's) as
# USER (default root; the client reads a password from MYSQL_PWD) while PID
# lives. An empty PID waits for the port alone (a server we did not start).
wait_mysql() {
    local port=$1 secs=$2 pid=$3 user=${4:-root} i
    for ((i = 0; i < secs * 10; i++)); do
        if [[ -n $pid ]]; then kill -0 "$pid" 2>/dev/null || return 1; fi
        # timeout: a proxy that accepts but never answers must not hang us.
        if timeout 5 mysql --no-defaults --connect-timeout=3 --protocol=tcp -h 127.0.0.1 -P "$port" \
            -u "$user" -NBe 'SELECT 1' >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------- /proc

CLK_TCK=$(getconf CLK_TCK)

# proc_cpu_ticks PID — user+system CPU time of the whole process (all threads,
# including exited ones) in clock ticks (1/CLK_TCK s).
proc_cpu_ticks() {
    local stat
    stat=$(<"/proc/$1/stat") || die "process $1 is gone"
    # Fields after the ")" that closes the command name: state is 1st, so
    # utime (field 14 of the full line) is the 12th and stime the 13th.
    stat=${stat##*) }
    awk '{ print $12 + $13 }' <<<"$stat"
}

# proc_ctxsw PID — voluntary + involuntary context switches summed over the
# process's live threads.
proc_ctxsw() {
    # Threads may exit between the glob and the read: ignore those.
    { cat /proc/"$1"/task/*/status 2>/dev/null || true; } |
        awk '/^(voluntary|nonvoluntary)_ctxt_switches:/ { n += $2 } END { print n + 0 }'
}

# machine_busy_ticks — CPU ticks the whole machine (all CPUs) spent in user,
# nice, system and steal since boot. irq/softirq are left out: without
# CONFIG_IRQ_TIME_ACCOUNTING they are charged to no process, and on loopback
# they are mostly our own network traffic. steal (the hypervisor running
# someone else) is disturbance and stays in.
machine_busy_ticks() {
    awk '/^cpu / { print $2 + $3 + $4 + $9; exit }' /proc/stat
}

# proc_children_ticks PID — CPU ticks of PID's reaped children (cutime +
# cstime; recursive: a reaped child brings its own reaped children's time).
proc_children_ticks() {
    local stat
    stat=$(<"/proc/$1/stat") || die "process $1 is gone"
    stat=${stat##*) }
    awk '{ print $14 + $15 }' <<<"$stat"
}

# proc_tree_ticks PID — CPU ticks of PID itself, its reaped children and its
# live children (one level: enough for the postmaster, whose backends are its
# direct children). A child that exits between two readings moves from the
# live sum to cutime/cstime, so differences stay consistent.
proc_tree_ticks() {
    local pid=$1 total child stat
    total=$(($(proc_cpu_ticks "$pid") + $(proc_children_ticks "$pid")))
    for child in $(cat "/proc/$pid/task/$pid/children" 2>/dev/null || true); do
        stat=$(cat "/proc/$child/stat" 2>/dev/null) || continue
        stat=${stat##*) }
        total=$((total + $(awk '{ print $12 + $13 }' <<<"$stat")))
    done
    echo "$total"
}

# proc_rss_kib PID — resident set size (VmRSS) in KiB.
proc_rss_kib() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" || die "process $1 is gone"
}

# ---------------------------------------------------------------- processes

# stop_pid PID NAME [GRACE_SECONDS] — SIGTERM, wait, then SIGKILL. Only ever
# called with the id of a process this script started.
stop_pid() {
    local pid=$1 name=$2 grace=${3:-15} i
    [[ -n $pid ]] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    warn "$name (pid $pid) did not stop within ${grace}s after SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

# tail_log FILE — the last lines of a log, indented, for error messages.
tail_log() {
    [[ -f $1 ]] && tail -n 20 "$1" | sed 's/^/    | /' >&2 || true
}

# ---------------------------------------------------------------- HTTP (bench/http.sh)

# nginx_bin — the nginx executable (PATH, else /usr/sbin/nginx, which a
# non-root PATH may lack). Prints nothing when there is none.
nginx_bin() {
    if command -v nginx >/dev/null 2>&1; then
        command -v nginx
    elif [[ -x /usr/sbin/nginx ]]; then
        echo /usr/sbin/nginx
    fi
}

# wait_http_status URL STATUS SECONDS PID [CURL_ARGS...] — waits until
# `curl CURL_ARGS URL` answers with HTTP status STATUS while PID lives (extra
# arguments carry headers, e.g. -H "x-api-key: ..."). Returns 1 on timeout or
# when PID died.
wait_http_status() {
    local url=$1 want=$2 secs=$3 pid=$4 i got
    shift 4
    for ((i = 0; i < secs * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || return 1
        got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url" 2>/dev/null || true)
        [[ $got == "$want" ]] && return 0
        sleep 0.1
    done
    return 1
}

# write_wrk_report_lua FILE — a wrk script whose done() prints one line
# `WRK_JSON {...}` with the exact totals (requests, bytes, duration in us,
# latency p50/p90/p99/max in us, socket and status errors), so callers parse
# numbers instead of wrk's rounded, unit-suffixed text.
write_wrk_report_lua() {
    cat >"$1" <<'EOF_LUA'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"bytes":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, summary.bytes, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
EOF_LUA
}
