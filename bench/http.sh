#!/usr/bin/env bash
# bench/http.sh — HTTP API benchmark: direct nginx vs nginx reverse proxy vs
# danxia's http listener (scan off and scan full), one run.
#
# Owns the HTTP benchmark procedure described in bench/README.md: checks its
# tools (nginx, wrk, python3, curl), builds danxia, generates two static JSON
# files of synthetic citizens with tests/upstream/citizens_api.py's generator
# (small.json: one page of 20 records, ~5 KB; large.json: 10 000 records,
# ~2.3 MB), serves them with nginx ("direct"), puts a tuned nginx reverse
# proxy in front of that (the peer danxia is compared with) and two danxia
# processes (http listener, `scan = "off"` and `scan = "full"`), then runs
# `wrk --latency` against every target for both files, interleaved round by
# round so that a noisy shared machine hurts every target alike. It prints
# req/s, MB/s, p50/p99 latency, the ratios to direct and to the nginx proxy
# (median of per-round ratios) and each proxy's CPU time per 1000 requests.
#
# It exits 0 when everything ran, whatever the figures, and non-zero only when
# something failed to run (a server that does not start, a wrk run with
# non-2xx answers, a response that is not the file served). It never touches
# anything but its own temp directory and the processes it started. Loopback
# only.
#
# Usage: bash bench/http.sh [--duration S] [--rounds N] [--connections C]
#                           [--threads T] [--nginx-workers N|auto] [--quick]
#                           [--no-build] [--keep]
# Env: DANXIA=off measures nginx only (danxia is not built or started);
#      BEHAVIOUR=off runs danxia without behaviour baselines;
#      DANXIA_BIN=path uses that binary (implies --no-build);
#      DANXIA_SCANS="off full mask" the danxia variants to run: scan = "off"
#      (bodies pass untouched), "full" (every body inspected: records and
#      personal data counted, the caller sees every field), "mask" (scan
#      "full" and the caller's grant masks identity numbers and phones and
#      removes addresses: every body rewritten).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

# ---------------------------------------------------------------- options

DURATION=10      # seconds per wrk run
ROUNDS=3         # interleaved rounds
CONNECTIONS=32   # wrk -c
THREADS=2        # wrk -t
WARMUP=1         # seconds of warm-up per target and file
NGINX_WORKERS=1  # worker_processes of both nginx instances ("auto": one per CPU);
                 # danxia gets the same: runtime.worker_threads = N (auto: 0, one per CPU)
SEED=42          # generator seed of the static files
BUILD=1
KEEP=0
WITH_DANXIA=1
[[ ${DANXIA:-on} == off ]] && WITH_DANXIA=0
SCANS=${DANXIA_SCANS:-off full mask}
BENCH_KEY="danxia-bench-key-7f3a9c2e41d86b05" # API key wrk sends (x-api-key); fake, bench only
SIZES=(small large)
# A DANXIA_BIN from the environment is used as it is (no build); otherwise
# cargo builds into its target directory (CARGO_TARGET_DIR is honoured).
if [[ -n ${DANXIA_BIN:-} ]]; then
    BUILD=0
else
    case ${CARGO_TARGET_DIR:-} in
    "") DANXIA_BIN=$ROOT/target/release/danxia ;;
    /*) DANXIA_BIN=$CARGO_TARGET_DIR/release/danxia ;;
    *) DANXIA_BIN=$ROOT/$CARGO_TARGET_DIR/release/danxia ;;
    esac
fi

usage() {
    cat <<EOF
Usage: bash bench/http.sh [options]
  --duration S       seconds per wrk run (default $DURATION)
  --rounds N         interleaved rounds (default $ROUNDS)
  --connections C    wrk connections, -c C (default $CONNECTIONS)
  --threads T        wrk threads, -t T (default $THREADS)
  --nginx-workers W  worker_processes of the nginx upstream and proxy: a
                     number or auto (default $NGINX_WORKERS)
  --quick            smoke run: 3 s runs, 1 round
  --no-build         do not run cargo build; use \$DANXIA_BIN ($DANXIA_BIN)
  --keep             keep the temp directory (configs, logs, raw wrk output)
Env: DANXIA=off (nginx only), BEHAVIOUR=off (danxia without behaviour
baselines), DANXIA_BIN=path (implies --no-build), DANXIA_SCANS="off full mask".
EOF
}

while [[ $# -gt 0 ]]; do
    case $1 in
    --duration) DURATION=${2:?--duration needs seconds}; shift 2 ;;
    --rounds) ROUNDS=${2:?--rounds needs a number}; shift 2 ;;
    --connections) CONNECTIONS=${2:?--connections needs a number}; shift 2 ;;
    --threads) THREADS=${2:?--threads needs a number}; shift 2 ;;
    --nginx-workers) NGINX_WORKERS=${2:?--nginx-workers needs a number or auto}; shift 2 ;;
    --quick) DURATION=3; ROUNDS=1; shift ;;
    --no-build) BUILD=0; shift ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
    esac
done
for v in DURATION ROUNDS CONNECTIONS THREADS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
[[ $NGINX_WORKERS == auto || $NGINX_WORKERS =~ ^[1-9][0-9]*$ ]] ||
    die "--nginx-workers must be a positive integer or auto, got '$NGINX_WORKERS'"
((THREADS <= CONNECTIONS)) || die "--threads ($THREADS) must not exceed --connections ($CONNECTIONS)"
for s in $SCANS; do
    [[ $s == off || $s == full || $s == mask ]] || die "DANXIA_SCANS: unknown variant '$s' (off, full, mask)"
done

# ---------------------------------------------------------------- state + cleanup

TMP=""
STATIC_PID=""   # nginx serving the files ("direct")
PROXY_PID=""    # nginx reverse proxy in front of it
declare -A DANXIA_PID=() DANXIA_PORT=() DANXIA_ADMIN=()

cleanup() {
    local rc=$?
    set +e
    trap - ERR
    local s
    for s in "${!DANXIA_PID[@]}"; do stop_pid "${DANXIA_PID[$s]}" "danxia (scan=$s)"; done
    stop_pid "$PROXY_PID" "nginx proxy"
    stop_pid "$STATIC_PID" "nginx static"
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

# ---------------------------------------------------------------- 1. dependencies + build

NGINX=""
install_deps() {
    if [[ -z $(nginx_bin) ]] || ! command -v wrk >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
        # tests/install-deps.sh installs nginx without letting the package
        # start a system nginx on port 80.
        log "installing dependencies with tests/install-deps.sh"
        bash "$ROOT/tests/install-deps.sh" >&2 || die "tests/install-deps.sh failed"
    fi
    need_cmd python3 python3
    command -v curl >/dev/null 2>&1 || apt_install curl
    command -v wrk >/dev/null 2>&1 || die "wrk not found (Debian: apt-get install wrk)"
    NGINX=$(nginx_bin)
    [[ -n $NGINX ]] || die "nginx not found (Debian: apt-get install nginx-light)"
    "$NGINX" -v >/dev/null 2>&1 || die "'$NGINX -v' fails"
    # wrk's connections, nginx's both sides and danxia's both sides.
    local want=$((CONNECTIONS * 4 + 1024))
    if [[ $(ulimit -n) -lt $want ]]; then
        ulimit -n "$want" 2>/dev/null || die "open-file limit $(ulimit -n) < $want; raise it (ulimit -n) or use fewer --connections"
    fi
}

build_danxia() {
    [[ $WITH_DANXIA -eq 1 ]] || { warn "DANXIA=off: danxia is not built, started or measured"; return; }
    if [[ $BUILD -eq 1 ]]; then
        command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust or use --no-build with DANXIA_BIN"
        log "cargo build --release -p danxia"
        (cd "$ROOT" && cargo build --release -p danxia >&2) || die "cargo build --release -p danxia failed"
    fi
    [[ -x $DANXIA_BIN ]] || die "danxia binary not found at $DANXIA_BIN"
    # Run a private copy: a rebuild in the work tree during the benchmark
    # must not swap the binary between phases.
    cp "$DANXIA_BIN" "$TMP/danxia"
    DANXIA_BIN=$TMP/danxia
}

# ---------------------------------------------------------------- 2. files

# make_files — $TMP/www/{small,large}.json from the test upstream's generator
# (same records the e2e tests see), written as that API writes them.
make_files() {
    mkdir -p "$TMP/www"
    PYTHONPATH=$ROOT/tests/upstream python3 - "$TMP/www" "$SEED" <<'EOF'
import os, sys
import citizens_api as c
out, seed = sys.argv[1], int(sys.argv[2])
people = c.Citizens(seed, 10_000)
with open(os.path.join(out, "small.json"), "w", encoding="utf-8") as f:
    f.write(c.dumps(people.page(1, 20)))
with open(os.path.join(out, "large.json"), "w", encoding="utf-8") as f:
    f.write(c.dumps([c.person(seed, i) for i in range(1, 10_001)]))
EOF
    chmod 755 "$TMP/www"
    chmod 644 "$TMP/www"/*.json
    log "files: small.json $(stat -c %s "$TMP/www/small.json") B (20 records), large.json $(stat -c %s "$TMP/www/large.json") B (10000 records)"
}

# ---------------------------------------------------------------- 3. nginx

# nginx_temp_paths DIR — temp path directives inside DIR, so that a non-root
# nginx does not need /var/lib/nginx. Modules left out of the build are skipped.
nginx_temp_paths() {
    local dir=$1 m
    echo "    client_body_temp_path $dir/tmp/body;"
    echo "    proxy_temp_path $dir/tmp/proxy;"
    for m in fastcgi uwsgi scgi; do
        "$NGINX" -V 2>&1 | grep -q -- "--without-http_${m}_module" || echo "    ${m}_temp_path $dir/tmp/$m;"
    done
}

# nginx_main_conf DIR — the parts both nginx instances share.
nginx_main_conf() {
    local dir=$1
    cat <<EOF
worker_processes $NGINX_WORKERS;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
$([[ $EUID -eq 0 ]] && echo "user nobody nogroup;")
events {
    worker_connections 4096;
}
EOF
}

# start_nginx NAME — runs nginx in the foreground (daemon off) with prefix
# $TMP/NAME and config $TMP/NAME/nginx.conf; sets STARTED_PID.
start_nginx() {
    local name=$1 dir=$TMP/$1
    mkdir -p "$dir/tmp"
    "$NGINX" -t -q -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/check.log" 2>&1 ||
        { tail_log "$dir/check.log"; die "nginx ($name): configuration test failed"; }
    "$NGINX" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" -g 'daemon off;' 2>>"$dir/error.log" &
    STARTED_PID=$!
}

start_static() {
    local dir=$TMP/static
    STATIC_PORT=$(free_port)
    mkdir -p "$dir"
    {
        nginx_main_conf "$dir"
        cat <<EOF
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
$(nginx_temp_paths "$dir")
    server {
        listen 127.0.0.1:$STATIC_PORT backlog=4096;
        location /api/v1/ {
            alias $TMP/www/;
            default_type application/json;
            charset utf-8;
            charset_types application/json;
        }
    }
}
EOF
    } >"$dir/nginx.conf"
    start_nginx static
    STATIC_PID=$STARTED_PID
    wait_http_ok "http://127.0.0.1:$STATIC_PORT/api/v1/small.json" 30 "$STATIC_PID" ||
        { tail_log "$dir/error.log"; die "nginx static not answering on 127.0.0.1:$STATIC_PORT"; }
    log "nginx static pid $STATIC_PID on 127.0.0.1:$STATIC_PORT (worker_processes $NGINX_WORKERS)"
}

# The reference proxy: keep-alive to the upstream (keepalive 64, HTTP/1.1,
# Connection cleared) and buffering in memory only (proxy_max_temp_file_size 0:
# a 2.3 MB answer is never spooled to disk, danxia does not spool either).
start_proxy() {
    local dir=$TMP/proxy
    PROXY_PORT=$(free_port)
    mkdir -p "$dir"
    {
        nginx_main_conf "$dir"
        cat <<EOF
http {
    access_log off;
    tcp_nodelay on;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
$(nginx_temp_paths "$dir")
    upstream upstream {
        server 127.0.0.1:$STATIC_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$PROXY_PORT backlog=4096;
        location / {
            proxy_pass http://upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffer_size 16k;
            proxy_buffers 64 16k;
            proxy_busy_buffers_size 64k;
            proxy_max_temp_file_size 0;
        }
    }
}
EOF
    } >"$dir/nginx.conf"
    start_nginx proxy
    PROXY_PID=$STARTED_PID
    wait_http_ok "http://127.0.0.1:$PROXY_PORT/api/v1/small.json" 30 "$PROXY_PID" ||
        { tail_log "$dir/error.log"; die "nginx proxy not answering on 127.0.0.1:$PROXY_PORT"; }
    log "nginx proxy pid $PROXY_PID on 127.0.0.1:$PROXY_PORT -> 127.0.0.1:$STATIC_PORT (keepalive 64)"
}

# ---------------------------------------------------------------- 4. danxia

# write_api_policy DIR + write_keys FILE — the scope danxia enforces: the two
# files as routes, one caller "bench" allowed both with all fields, and its
# API key (stored as the SHA-256 of the key, never the key itself).
write_api_policy() {
    mkdir -p "$1"
    local grant=''
    if [[ ${2:-} == mask ]]; then
        grant='  fields = ["$.items[*].id", "$.items[*].name", "$.items[*].gender", "$.items[*].birth",
            "$.items[*].id_number", "$.items[*].phone", "$.items[*].district",
            "$[*].id", "$[*].name", "$[*].gender", "$[*].birth", "$[*].id_number", "$[*].phone", "$[*].district",
            "$.page", "$.size", "$.total"]
  mask = { "$..id_number" = "keep(6,4)", "$..phone" = "keep(3,4)" }'
    fi
    cat >"$1/bench.toml" <<EOF
# API scope of bench/http.sh: two static files, one caller (every field, or
# for the "mask" variant: addresses removed, identity numbers and phones masked).
[settings]
unknown_route = "deny"
outside = "remove"

[[route]]
id = "bench.small"
method = "GET"
path = "/api/v1/small.json"
records = "\$.items[*]"

[[route]]
id = "bench.large"
method = "GET"
path = "/api/v1/large.json"
records = "\$[*]"

[[caller]]
id = "bench"
name = "bench/http.sh load generator"
night = "allow"

  [[caller.grant]]
  routes = ["bench.*"]
$grant
EOF
}

write_keys() {
    local sha
    sha=$(printf '%s' "$BENCH_KEY" | sha256sum | cut -d' ' -f1)
    cat >"$1" <<EOF
# API keys of bench/http.sh: SHA-256 (hex) of the key wrk sends in x-api-key.
[[key]]
id = "bench"
caller = "bench"
sha256 = "$sha"
created = "2026-01-01T00:00:00Z"
EOF
}

# write_danxia_config FILE PORT ADMIN SCAN DIR — danxia's whole configuration
# for one variant; the one place to adjust when the http listener's options
# change.
write_danxia_config() {
    local file=$1 port=$2 admin=$3 scan=$4 dir=$5
    cat >"$file" <<EOF
[admin]
listen = "127.0.0.1:$admin"

[runtime]
# As many threads as nginx has workers (--nginx-workers).
worker_threads = $([[ $NGINX_WORKERS == auto ]] && echo 0 || echo "$NGINX_WORKERS")

[audit]
dir = "$dir/audit"

[behaviour]
# Baselines on (the shipped default) unless BEHAVIOUR=off.
enabled = $([[ ${BEHAVIOUR:-on} == off ]] && echo false || echo true)
store = "memory"

[api]
store = "memory"

[[listener]]
name = "api"
protocol = "http"
listen = "127.0.0.1:$port"
api_policy = "$TMP/api-policy-$scan"

[[listener.upstream]]
prefix = "/api/"
url = "http://127.0.0.1:$STATIC_PORT"

[listener.auth]
api_key_header = "x-api-key"
keys_file = "$TMP/keys.toml"

[listener.http]
scan = "$([[ $scan == off ]] && echo off || echo full)"
EOF
}

# start_danxia SCAN — one danxia process with scan = SCAN in front of the
# static nginx; waits for /readyz and a 200 through it with the bench key.
start_danxia() {
    local scan=$1 dir=$TMP/danxia-$1 port admin pid
    mkdir -p "$dir/audit"
    port=$(free_port)
    admin=$(free_port)
    write_danxia_config "$dir/danxia.toml" "$port" "$admin" "$scan" "$dir"
    "$DANXIA_BIN" run --config "$dir/danxia.toml" 2>"$dir/danxia.log" &
    pid=$!
    DANXIA_PID[$scan]=$pid
    DANXIA_PORT[$scan]=$port
    DANXIA_ADMIN[$scan]=$admin
    wait_http_ok "http://127.0.0.1:$admin/readyz" 30 "$pid" ||
        { tail_log "$dir/danxia.log"; die "danxia (scan=$scan) not ready on admin 127.0.0.1:$admin/readyz within 30 s"; }
    wait_http_status "http://127.0.0.1:$port/api/v1/small.json" 200 30 "$pid" -H "x-api-key: $BENCH_KEY" ||
        { tail_log "$dir/danxia.log"; die "danxia (scan=$scan): GET /api/v1/small.json through 127.0.0.1:$port did not answer 200"; }
    log "danxia (scan=$scan) pid $pid on 127.0.0.1:$port (admin $admin) -> 127.0.0.1:$STATIC_PORT"
}

# ---------------------------------------------------------------- 5. targets

TARGETS=()
target_url() {
    case $1 in
    direct) echo "http://127.0.0.1:$STATIC_PORT" ;;
    nginx-proxy) echo "http://127.0.0.1:$PROXY_PORT" ;;
    danxia-*) echo "http://127.0.0.1:${DANXIA_PORT[${1#danxia-}]}" ;;
    esac
}
# The process whose CPU a run is charged: the server itself for direct, the
# proxy otherwise (nginx: master + workers).
target_ticks() {
    case $1 in
    direct) proc_tree_ticks "$STATIC_PID" ;;
    nginx-proxy) proc_tree_ticks "$PROXY_PID" ;;
    danxia-*) proc_cpu_ticks "${DANXIA_PID[${1#danxia-}]}" ;;
    esac
}
target_args() {
    case $1 in
    danxia-*) printf '%s\n' -H "x-api-key: $BENCH_KEY" ;;
    esac
}

# check_targets — every target must serve both files, and what arrives must
# be the file's JSON (danxia's scope allows every field, so nothing changes).
check_targets() {
    local t s args
    for t in "${TARGETS[@]}"; do
        mapfile -t args < <(target_args "$t")
        for s in "${SIZES[@]}"; do
            curl -sS --fail --max-time 30 -H 'Accept-Encoding: identity' "${args[@]}" \
                -o "$TMP/check-$t-$s.json" "$(target_url "$t")/api/v1/$s.json" 2>"$TMP/check-$t-$s.err" ||
                { tail_log "$TMP/check-$t-$s.err"; die "GET /api/v1/$s.json through $t failed"; }
            python3 - "$TMP/www/$s.json" "$TMP/check-$t-$s.json" "$t" <<'EOF' ||
import json, os, sys
want, got, t = sys.argv[1:4]
a, b = json.load(open(want, encoding="utf-8")), json.load(open(got, encoding="utf-8"))
if t == "danxia-mask":
    # The same records, addresses removed, identity numbers and phones masked.
    ra = a["items"] if isinstance(a, dict) else a
    rb = b["items"] if isinstance(b, dict) else b
    ok = len(ra) == len(rb) and all(
        "address" not in y and y["name"] == x["name"] and y["id_number"] != x["id_number"]
        and y["id_number"][:6] == x["id_number"][:6] and "*" in y["phone"]
        for x, y in zip(ra, rb))
    if not ok:
        sys.exit(f"{t}: {os.path.basename(got)} is not the file's records, masked")
    sys.exit(0)
if a != b:
    sys.exit(f"{t}: {os.path.basename(got)} is not the file's JSON")
if os.path.getsize(want) != os.path.getsize(got):
    print(f"[bench] NOTE: {t} returns the same JSON in {os.path.getsize(got)} bytes "
          f"(file: {os.path.getsize(want)})", file=sys.stderr)
EOF
                die "$t does not serve $s.json unchanged"
        done
    done
    log "checked: every target serves both files unchanged"
}

# ---------------------------------------------------------------- 6. wrk

# load_snapshot — "wall_ns machine_busy_ticks our_ticks": ours are this
# script's reaped children (wrk, curl, python), both nginx and danxia.
load_snapshot() {
    local ours p
    ours=$(($(proc_children_ticks $$) + $(proc_tree_ticks "$STATIC_PID") + $(proc_tree_ticks "$PROXY_PID")))
    for p in "${DANXIA_PID[@]}"; do ours=$((ours + $(proc_cpu_ticks "$p"))); done
    echo "$(date +%s%N) $(machine_busy_ticks) $ours"
}

# run_wrk ROUND SIZE TARGET DURATION — one wrk run; appends a line to
# $RUNS_TSV (ROUND 0 = warm-up, not recorded).
run_wrk() {
    local round=$1 size=$2 t=$3 secs=$4 out args before after c0 c1 json
    out=$TMP/runs/r$round-$size-$t.txt
    mapfile -t args < <(target_args "$t")
    before=$(load_snapshot)
    c0=$(target_ticks "$t")
    # timeout: a target that stops answering must not hang the benchmark.
    timeout $((secs + 60)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${secs}s" --latency --timeout 10s \
        -s "$TMP/report.lua" -H 'Accept-Encoding: identity' "${args[@]}" \
        "$(target_url "$t")/api/v1/$size.json" >"$out" 2>&1 ||
        { tail_log "$out"; die "wrk against $t ($size.json) failed"; }
    c1=$(target_ticks "$t")
    after=$(load_snapshot)
    json=$(sed -n 's/^WRK_JSON //p' "$out")
    [[ -n $json ]] || { tail_log "$out"; die "wrk against $t ($size.json) printed no summary"; }
    ((round > 0)) || return 0
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$size" "$t" "$json" "$((c1 - c0))" "$before" "$after" >>"$RUNS_TSV"
    python3 - "$json" "$t" "$size" <<'EOF' >&2
import json, sys
r, t, size = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
s = r["duration_us"] / 1e6
print(f"[bench]   {size:<6}{t:<13}{r['requests'] / s:>10.0f} req/s {r['bytes'] / s / 1e6:>8.1f} MB/s "
      f"p50 {r['p50_us'] / 1e3:.2f} ms p99 {r['p99_us'] / 1e3:.2f} ms"
      + (f"  non-2xx {r['status']}" if r["status"] else ""))
EOF
    local status
    status=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["status"])' "$json")
    [[ $status == 0 ]] || { tail_log "$out"; die "$t answered $status requests for $size.json with a non-2xx/3xx status: the run measures errors, not the proxy"; }
}

# ---------------------------------------------------------------- 7. report

report() {
    python3 - "$RUNS_TSV" "$TMP/meta.json" "$CLK_TCK" <<'PYEOF'
import json, os, statistics, sys
runs_tsv, meta_json, clk = sys.argv[1], sys.argv[2], int(sys.argv[3])
meta = json.load(open(meta_json))
runs = []
for line in open(runs_tsv):
    rnd, size, t, js, ticks, before, after = line.rstrip("\n").split("\t")
    r = json.loads(js)
    w0, b0, o0 = map(int, before.split())
    w1, b1, o1 = map(int, after.split())
    wall = (w1 - w0) / 1e9
    s = r["duration_us"] / 1e6
    runs.append(dict(round=int(rnd), size=size, target=t, rps=r["requests"] / s, mbs=r["bytes"] / s / 1e6,
                     p50=r["p50_us"] / 1e3, p99=r["p99_us"] / 1e3, requests=r["requests"], bytes=r["bytes"],
                     cpu_s=int(ticks) / clk,
                     sock_err=r["connect"] + r["read"] + r["write"] + r["timeout"],
                     other=max(0.0, ((b1 - b0) - (o1 - o0)) / clk / wall) if wall > 0 else None))
med = statistics.median
sizes = [s for s in ("small", "large") if any(r["size"] == s for r in runs)]
targets = [t for t in ("direct", "nginx-proxy", "danxia-off", "danxia-full", "danxia-mask") if any(r["target"] == t for r in runs)]

def ratios(size, t, ref):
    out = []
    for r in runs:
        if r["size"] == size and r["target"] == t:
            d = [x for x in runs if x["size"] == size and x["target"] == ref and x["round"] == r["round"]]
            if d:
                out.append(r["rps"] / d[0]["rps"])
    return out

print()
print(f"== HTTP benchmark: {meta['date']}; {meta['cpu']} ({meta['nproc']} CPUs, {meta['mem']}), kernel {meta['kernel']}")
print(f"   {meta['nginx']} (worker_processes {meta['workers']}); {meta['wrk']}; danxia: {meta['danxia']}")
print(f"   wrk -t{meta['threads']} -c{meta['connections']} -d{meta['duration']}s --latency, "
      f"{meta['rounds']} interleaved round(s); load average at start {meta['load']}")
print(f"   files: small.json {meta['small_bytes']} B (20 records), large.json {meta['large_bytes']} B (10000 records)")
print()
hdr = (f"{'file':<7}{'target':<13}{'req/s med':>10}{'MB/s':>8}{'p50 ms':>8}{'p99 ms':>8}"
       f"{'vs direct':>10}{'vs proxy':>10}{'range vs proxy':>16}{'CPU s/1k req':>13}{'sock err':>9}")
print(hdr)
print("-" * len(hdr))
results = {}
for size in sizes:
    for t in targets:
        rs = [r for r in runs if r["size"] == size and r["target"] == t]
        if not rs:
            continue
        vd = med(ratios(size, t, "direct"))
        vp_list = ratios(size, t, "nginx-proxy")
        vp = med(vp_list) if vp_list else None
        cpu = sum(r["cpu_s"] for r in rs) / sum(r["requests"] for r in rs) * 1000
        row = dict(rps=med([r["rps"] for r in rs]), mbs=med([r["mbs"] for r in rs]),
                   p50=med([r["p50"] for r in rs]), p99=med([r["p99"] for r in rs]),
                   vs_direct=vd, vs_proxy=vp, cpu_s_per_1k=cpu, sock_err=sum(r["sock_err"] for r in rs))
        results[f"{size}/{t}"] = row
        rng = f"{min(vp_list):.2f}-{max(vp_list):.2f}" if vp_list and t not in ("direct", "nginx-proxy") else ""
        print(f"{size:<7}{t:<13}{row['rps']:>10.0f}{row['mbs']:>8.1f}{row['p50']:>8.2f}{row['p99']:>8.2f}"
              f"{vd:>10.3f}{'' if vp is None else f'{vp:.3f}':>10}{rng:>16}{cpu:>13.4f}{row['sock_err']:>9}")
print("(req/s, MB/s (10^6 B), p50/p99: medians over rounds of wrk's figures; vs direct / vs proxy: the req/s")
print(" ratio within each round, median over rounds; CPU s/1k req: CPU time (user+system, 10 ms ticks) of")
print(" the serving process over its runs per 1000 requests: nginx master+workers for direct and")
print(" nginx-proxy, the danxia process for danxia-*)")
print()
def fmt_other(v):
    return "n/a" if v is None else f"{v:.2f}"
print("per run: req/s [other load in cores: CPU used during the run by processes other than wrk, nginx, danxia]")
for size in sizes:
    for t in targets:
        rs = sorted((r for r in runs if r["size"] == size and r["target"] == t), key=lambda r: r["round"])
        cells = "  ".join(f"r{r['round']} {r['rps']:>7.0f} [{fmt_other(r['other'])}]" for r in rs)
        print(f"  {size:<7}{t:<13}{cells}")
others = [r["other"] for r in runs if r["other"] is not None]
if others and max(others) > 0.25:
    print(f"NOTE: other processes used up to {max(others):.2f} cores during some runs (this machine has "
          f"{meta['nproc']}): trust the per-round ratios more than absolute figures; rerun on a quiet machine.")
print()
print("== summary (req/s ratios, median of per-round ratios)")
for size in sizes:
    for t in ("danxia-off", "danxia-full", "danxia-mask"):
        r = results.get(f"{size}/{t}")
        if r is None:
            print(f"  {size:<6} {t + ' / nginx-proxy':<26} NOT RUN")
            continue
        print(f"  {size:<6} {t + ' / nginx-proxy':<26} {r['vs_proxy']:.3f}    {t + ' / direct':<21} {r['vs_direct']:.3f}"
              f"    CPU {r['cpu_s_per_1k']:.4f} s/1k req")
    p = results.get(f"{size}/nginx-proxy")
    if p:
        print(f"  {size:<6} {'nginx-proxy / direct':<26} {p['vs_direct']:.3f}    (reference)"
              f"{'':<22}CPU {p['cpu_s_per_1k']:.4f} s/1k req")
json.dump({"meta": meta, "runs": runs, "results": results},
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
  "nginx": """$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')""",
  "wrk": """$({ wrk --version 2>&1 || true; } | head -n 1 | cut -d' ' -f1-2)""",
  "danxia": """${danxia_ver:-unknown}""",
  "workers": "$NGINX_WORKERS",
  "threads": $THREADS, "connections": $CONNECTIONS, "duration": $DURATION, "rounds": $ROUNDS,
  "scans": "$SCANS", "behaviour": "${BEHAVIOUR:-on}",
  "small_bytes": $(stat -c %s "$TMP/www/small.json"), "large_bytes": $(stat -c %s "$TMP/www/large.json"),
  "load": "$(cut -d' ' -f1-3 /proc/loadavg)",
}, open(sys.argv[1], "w"))
EOF
}

# after_danxia — danxia's own side: still alive, audit events written, a few
# metrics; then stopped and its audit log verified.
after_danxia() {
    local s pid dir events
    for s in "${!DANXIA_PID[@]}"; do
        pid=${DANXIA_PID[$s]}
        dir=$TMP/danxia-$s
        kill -0 "$pid" 2>/dev/null || { tail_log "$dir/danxia.log"; die "danxia (scan=$s) died during the benchmark"; }
        events=$(cat "$dir"/audit/*.jsonl 2>/dev/null | wc -l)
        log "danxia (scan=$s) wrote $events audit events (audit dir $dir/audit)"
        python3 - "http://127.0.0.1:${DANXIA_ADMIN[$s]}/metrics" <<'EOF' >&2 || warn "could not read danxia /metrics"
import sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
shown = 0
for line in text.splitlines():
    if line.startswith(("danxia_http_", "danxia_audit_events_dropped_total", "danxia_audit_write_failures_total",
                        "danxia_audit_events_written_total")) and shown < 40:
        print("  metric:", line)
        shown += 1
EOF
        stop_pid "$pid" "danxia (scan=$s)"
        unset "DANXIA_PID[$s]"
        ((events > 0)) || die "danxia (scan=$s) wrote no audit events: one per request is expected"
        "$DANXIA_BIN" audit verify "$dir/audit" >"$dir/verify.out" 2>&1 ||
            { tail_log "$dir/verify.out"; die "danxia audit verify failed on the scan=$s audit log"; }
        log "danxia (scan=$s) audit verify: $(head -n 1 "$dir/verify.out")"
    done
}

# ---------------------------------------------------------------- main

main() {
    install_deps
    TMP=$(mktemp -d /tmp/danxia-bench-http.XXXXXX)
    # nginx's workers run as nobody when we are root: they must read the files.
    chmod 755 "$TMP"
    mkdir -p "$TMP/runs"
    RUNS_TSV=$TMP/runs.tsv
    : >"$RUNS_TSV"
    write_wrk_report_lua "$TMP/report.lua"

    build_danxia
    make_files
    write_meta
    start_static
    start_proxy
    TARGETS=(direct nginx-proxy)
    if [[ $WITH_DANXIA -eq 1 ]]; then
        write_keys "$TMP/keys.toml"
        local s
        for s in $SCANS; do
            write_api_policy "$TMP/api-policy-$s" "$s"
            start_danxia "$s"
            TARGETS+=("danxia-$s")
        done
    fi
    check_targets

    local t size
    log "warm-up: ${WARMUP} s of wrk per target and file"
    for size in "${SIZES[@]}"; do
        for t in "${TARGETS[@]}"; do run_wrk 0 "$size" "$t" "$WARMUP"; done
    done

    local n=${#TARGETS[@]} round i order
    for ((round = 1; round <= ROUNDS; round++)); do
        # Rotated each round (A B C D, B C D A, ...): drift on a shared machine
        # and any first/last-position effect fall on every target alike.
        order=()
        for ((i = 0; i < n; i++)); do order+=("${TARGETS[$(((i + round - 1) % n))]}"); done
        log "round $round/$ROUNDS: order ${order[*]}"
        for size in "${SIZES[@]}"; do
            for t in "${order[@]}"; do run_wrk "$round" "$size" "$t" "$DURATION"; done
        done
    done

    report
    [[ $WITH_DANXIA -eq 1 ]] && after_danxia
    if [[ $KEEP -eq 1 ]]; then
        log "raw results: $TMP/results.json"
    else
        log "raw results, configs and logs are deleted on exit; --keep keeps them"
    fi
}

main
