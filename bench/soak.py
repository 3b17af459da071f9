#!/usr/bin/env python3
"""bench/soak.py — the run and the checks of bench/soak.sh (which sets up
danxia, the upstream and the databases and passes everything in the
environment). One implementation of the checks: tests/tests/soak.rs runs
bench/soak.sh and reads its exit status and summary.

For the whole duration, concurrently:
  - pgbench -S at a fixed rate (-R) through danxia's pg listener,
  - sysbench oltp_read_only at a fixed rate through the mysql listener,
  - HTTP GETs at a fixed rate through the api listener,
  - a latency probe: SELECT 1 at a fixed low rate, direct and through danxia,
  - every RELOAD_EVERY s: a good policy reload (touch + SIGHUP, and
    POST /api/reload) alternating with a broken policy (POST /policy/reload
    must answer 422 and keep the running version),
  - every BURST_EVERY s: an alert burst (injection-marked statements by an
    administrator: alerted; by a non-administrator: refused with 42501),
  - every SAMPLE_EVERY s: danxia's RSS, fds, CPU and metrics into samples.csv.
Then it stops danxia (SIGTERM, so the audit queue is drained and synced),
compares what the clients were acknowledged with the audit per listener,
prints the summary, writes $OUT/summary.txt and exits 1 if a check failed.
"""

import csv
import glob
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone

import psycopg2
import pymysql

E = os.environ
OUT = E["SOAK_OUT"]
SECONDS = int(E["SOAK_SECONDS"])
PID = int(E["DANXIA_PID"])
PG_PORT = int(E["DANXIA_PG_PORT"])
MY_PORT = int(E["DANXIA_MY_PORT"])
API_PORT = int(E["DANXIA_API_PORT"])
ADMIN = f"http://127.0.0.1:{E['DANXIA_ADMIN_PORT']}"
TOKEN = E["DANXIA_TOKEN"]
API_KEY = E["SOAK_API_KEY"]
POLICY_DIR = E["SOAK_POLICY_DIR"]
AUDIT_DIR = E["SOAK_AUDIT_DIR"]
PG_DB = E["SOAK_PG_DB"]
MY_DB = E["SOAK_MY_DB"]
APP_USER = E["SOAK_APP_USER"]
DANXIA_BIN = E["DANXIA_BIN"]

# Rates: moderate, so that the 2-core machine is not saturated and the
# latencies mean something.
PGBENCH_RATE = int(E.get("SOAK_PGBENCH_RATE", "100"))  # transactions/s
PGBENCH_CLIENTS = 4
SYSBENCH_RATE = int(E.get("SOAK_SYSBENCH_RATE", "10"))  # transactions/s (16 statements each)
SYSBENCH_THREADS = 2
HTTP_RATE = int(E.get("SOAK_HTTP_RATE", "20"))  # requests/s
PROBE_RATE = 20  # probes/s, each direct and through danxia
SAMPLE_EVERY = 10
RELOAD_EVERY = 60 if SECONDS >= 300 else 20
BURST_EVERY = 150 if SECONDS >= 300 else 25
BURST_SIZE = 5  # statements of each kind per burst
WARMUP = min(120, SECONDS // 4)  # the RSS taken "after warm-up"
# Flat memory: the end RSS within this of the post-warm-up RSS.
RSS_SLACK_FRACTION = 0.10
RSS_SLACK_KIB = 8 * 1024
PROBE_APP = "soak-probe"
BURST_APP = "soak-burst"

stop = threading.Event()
lock = threading.Lock()
problems = []  # failed checks, in words


def fail(msg):
    with lock:
        problems.append(msg)
    print(f"[soak] CHECK FAILED: {msg}", file=sys.stderr, flush=True)


def log(msg):
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def admin(method, path, body=None):
    req = urllib.request.Request(ADMIN + path, method=method, data=body)
    req.add_header("Authorization", f"Bearer {TOKEN}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metrics():
    """{(name, frozenset(labels)): value} of danxia's /metrics."""
    _, text = admin("GET", "/metrics")
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$", line)
        if not m:
            continue
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        try:
            out[(m.group(1), labels)] = float(m.group(4))
        except ValueError:
            pass
    return out


def msum(ms, name, **want):
    return sum(v for (n, l), v in ms.items() if n == name and all((k, w) in l for k, w in want.items()))


def every(period, fn):
    """Runs fn every period seconds (first run after one period) until stop."""
    n = 0
    t0 = time.monotonic()
    while True:
        n += 1
        if stop.wait(max(0.0, t0 + n * period - time.monotonic())):
            return
        try:
            fn(n)
        except Exception as e:  # noqa: BLE001 - one failed round is a result, not a crash
            fail(f"{fn.__name__} round {n}: {e!r}")


def paced(rate, fn):
    """Calls fn at a fixed rate until stop (late calls are not made up)."""
    period = 1.0 / rate
    nxt = time.monotonic()
    while not stop.is_set():
        fn()
        nxt += period
        delay = nxt - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        else:
            nxt = time.monotonic()


# ---------------------------------------------------------------- workloads

web = {"sent": 0, "answered": 0, "2xx": 0, "other": {}, "errors": 0}


def http_load():
    conn = None
    paths = ["/api/v1/stats", "/api/v1/persons?page=1&size=5", "/api/v1/persons/1"]
    i = 0

    def one():
        nonlocal conn, i
        path = paths[i % len(paths)]
        i += 1
        web["sent"] += 1
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", API_PORT, timeout=10)
            conn.request("GET", path, headers={"x-api-key": API_KEY})
            r = conn.getresponse()
            r.read()
            web["answered"] += 1
            if 200 <= r.status < 300:
                web["2xx"] += 1
            else:
                web["other"][r.status] = web["other"].get(r.status, 0) + 1
        except Exception:  # noqa: BLE001 - counted
            web["errors"] += 1
            conn = None

    paced(HTTP_RATE, one)


probe = {"direct": [], "danxia": [], "errors": 0}


def probe_load():
    def connect(port):
        c = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname=PG_DB,
                             application_name=PROBE_APP, connect_timeout=10)
        c.autocommit = True
        return c

    try:
        conns = {"direct": connect(int(E["PG_DIRECT_PORT"])), "danxia": connect(PG_PORT)}
    except psycopg2.Error as e:
        fail(f"latency probe cannot connect: {e}")
        return
    curs = {k: c.cursor() for k, c in conns.items()}

    def one():
        for k in ("direct", "danxia"):
            t = time.perf_counter()
            try:
                curs[k].execute("SELECT 1")
                curs[k].fetchone()
            except Exception:  # noqa: BLE001 - counted
                probe["errors"] += 1
                continue
            probe[k].append((time.perf_counter() - t) * 1e6)

    paced(PROBE_RATE, one)
    for c in conns.values():
        c.close()


# ---------------------------------------------------------------- reloads

reloads = {"ok": 0, "refused": 0, "failed": 0}


def policy_version():
    code, body = admin("GET", "/policy")
    if code != 200:
        raise RuntimeError(f"GET /policy: {code} {body}")
    return json.loads(body)["version"]


def reload_round(n):
    before = policy_version()
    if n % 2 == 1:
        # Good: touch a rule file and SIGHUP; then reload the API policy.
        f = sorted(glob.glob(os.path.join(POLICY_DIR, "*.toml")))[-1]
        os.utime(f)
        os.kill(PID, signal.SIGHUP)
        deadline = time.monotonic() + 20
        while policy_version() <= before:
            if time.monotonic() > deadline:
                reloads["failed"] += 1
                fail(f"reload {n}: SIGHUP did not raise the policy version above {before}")
                return
            time.sleep(0.1)
        code, body = admin("POST", "/api/reload")
        if code != 200:
            reloads["failed"] += 1
            fail(f"reload {n}: POST /api/reload answered {code}: {body[:200]}")
            return
        reloads["ok"] += 1
    else:
        # Broken: an invalid rule file must be refused, the old policy kept.
        broken = os.path.join(POLICY_DIR, "99-soak-broken.toml")
        with open(broken, "w") as f:
            f.write('[[rule]]\nid = "soak-broken"\naction = "explode"\n')
        try:
            code, body = admin("POST", "/policy/reload")
        finally:
            os.remove(broken)
        after = policy_version()
        if code == 422 and after == before:
            reloads["refused"] += 1
        else:
            reloads["failed"] += 1
            fail(f"reload {n}: a broken policy must be refused (422) and version {before} kept; got {code}, version {after}")


# ---------------------------------------------------------------- alert bursts

bursts = {"alerts_expected": 0, "denied_expected": 0, "denied_seen": 0, "statements": 0}
INJECTION = "SELECT 'soak-burst-{n}-{i}' {frm}WHERE 1=1 OR 'a'='a'"


def burst_round(n):
    # An administrator's injection-marked statements run, each alerted
    # (alert-injection-admins), through both database listeners.
    pg = psycopg2.connect(host="127.0.0.1", port=PG_PORT, user="postgres", dbname=PG_DB,
                          application_name=BURST_APP, connect_timeout=10)
    pg.autocommit = True
    my = pymysql.connect(host="127.0.0.1", port=MY_PORT, user="root", database="test",
                         autocommit=True, connect_timeout=10)
    app = psycopg2.connect(host="127.0.0.1", port=PG_PORT, user=APP_USER, dbname=PG_DB,
                           application_name=BURST_APP, connect_timeout=10)
    app.autocommit = True
    try:
        for i in range(BURST_SIZE):
            for c, frm in ((pg, ""), (my, "FROM DUAL ")):
                cur = c.cursor()
                cur.execute(INJECTION.format(n=n, i=i, frm=frm))
                cur.fetchall()
                bursts["alerts_expected"] += 1
                bursts["statements"] += 1
            # A non-administrator's: refused by deny-injection.
            bursts["denied_expected"] += 1
            bursts["statements"] += 1
            try:
                app.cursor().execute(INJECTION.format(n=n, i=f"app{i}", frm=""))
                fail(f"burst {n}: an injection-marked statement by {APP_USER} was not refused")
            except psycopg2.Error as e:
                if e.pgcode == "42501":
                    bursts["denied_seen"] += 1
                else:
                    fail(f"burst {n}: refused with {e.pgcode}, want 42501: {e}")
    finally:
        for c in (pg, my, app):
            c.close()


def alerts_received():
    code, body = admin("GET", "/alerts?limit=1000")
    if code != 200:
        raise RuntimeError(f"GET /alerts: {code}")
    return sum(1 for a in json.loads(body) if "alert-injection-admins" in a.get("title", ""))


# ---------------------------------------------------------------- sampling

CSV_FIELDS = ["t", "rss_kib", "hwm_kib", "fds", "cpu_s", "threads", "statements", "errors",
              "protocol_errors", "backend_failures", "http_requests", "http_5xx",
              "audit_written", "audit_queue", "audit_dropped", "audit_write_failures",
              "connections_active"]
samples = []
CLK = os.sysconf("SC_CLK_TCK")
T0 = time.monotonic()


def proc_sample():
    status = open(f"/proc/{PID}/status").read()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
    stat = open(f"/proc/{PID}/stat").read().rsplit(")", 1)[1].split()
    cpu = (int(stat[11]) + int(stat[12])) / CLK
    fds = len(os.listdir(f"/proc/{PID}/fd"))
    return rss, hwm, fds, cpu, threads


def sample(_n=0):
    rss, hwm, fds, cpu, threads = proc_sample()
    ms = metrics()
    row = {
        "t": round(time.monotonic() - T0, 1), "rss_kib": rss, "hwm_kib": hwm, "fds": fds,
        "cpu_s": round(cpu, 2), "threads": threads,
        "statements": msum(ms, "danxia_statements_total"),
        "errors": msum(ms, "danxia_statements_total", outcome="error"),
        "protocol_errors": msum(ms, "danxia_protocol_errors_total"),
        "backend_failures": msum(ms, "danxia_backend_connect_failures_total"),
        "http_requests": msum(ms, "danxia_http_requests_total"),
        "http_5xx": msum(ms, "danxia_http_requests_total", status="5xx"),
        "audit_written": msum(ms, "danxia_audit_events_written_total"),
        "audit_queue": msum(ms, "danxia_audit_queue_depth"),
        "audit_dropped": msum(ms, "danxia_audit_events_dropped_total"),
        "audit_write_failures": msum(ms, "danxia_audit_write_failures_total"),
        "connections_active": msum(ms, "danxia_connections_active"),
    }
    samples.append(row)


# ---------------------------------------------------------------- external loads

def start_pgbench():
    cmd = ["pgbench", "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "postgres", "-n", "-S",
           "-M", "simple", "-c", str(PGBENCH_CLIENTS), "-j", "2", "-R", str(PGBENCH_RATE),
           "-T", str(SECONDS), PG_DB]
    return subprocess.Popen(cmd, stdout=open(f"{OUT}/pgbench.out", "w"), stderr=subprocess.STDOUT,
                            env={**E, "PGAPPNAME": "pgbench"})


def start_sysbench():
    cmd = ["sysbench", "oltp_read_only", "--db-driver=mysql", "--mysql-host=127.0.0.1",
           f"--mysql-port={MY_PORT}", "--mysql-user=root", f"--mysql-db={MY_DB}",
           "--mysql-ssl=off", "--db-ps-mode=disable", "--tables=1", "--table-size=10000",
           f"--threads={SYSBENCH_THREADS}", f"--rate={SYSBENCH_RATE}", f"--time={SECONDS}",
           "--report-interval=0", "run"]
    return subprocess.Popen(cmd, stdout=open(f"{OUT}/sysbench.out", "w"), stderr=subprocess.STDOUT)


def pgbench_done():
    text = open(f"{OUT}/pgbench.out").read()
    m = re.search(r"number of transactions actually processed: (\d+)", text)
    failed = re.search(r"number of failed transactions: (\d+)", text)
    return (int(m.group(1)) if m else None), (int(failed.group(1)) if failed else 0), text


def sysbench_done():
    text = open(f"{OUT}/sysbench.out").read()
    total = re.search(r"total:\s+(\d+)", text)
    errors = re.search(r"ignored errors:\s+(\d+)", text)
    return (int(total.group(1)) if total else None), (int(errors.group(1)) if errors else 0), text


# ---------------------------------------------------------------- audit

def audit_counts(since):
    """Per listener, events stamped at or after `since` (RFC 3339 text
    compares in time order: same zone, same precision)."""
    c = {"pgbench": 0, "pgbench_setup": 0, "sysbench": 0, "http": 0, "pg_other": 0,
         "alerts": 0, "recovery": 0}
    for f in sorted(glob.glob(os.path.join(AUDIT_DIR, "audit-*.jsonl"))):
        with open(f, encoding="utf-8") as fh:
            for line in fh:
                if not line.endswith("\n"):
                    continue
                e = json.loads(line)
                if e.get("ts", "") < since:
                    continue
                kind, lst = e.get("kind"), e.get("listener")
                if kind == "alert":
                    c["alerts"] += 1
                elif kind == "audit_recovery":
                    c["recovery"] += 1
                elif kind == "statement" and lst == "pg":
                    if e.get("application") == "pgbench":
                        if e.get("statement", "").startswith("SELECT abalance FROM pgbench_accounts"):
                            c["pgbench"] += 1
                        else:
                            c["pgbench_setup"] += 1
                    else:
                        c["pg_other"] += 1
                elif kind == "statement" and lst == "mysql" and e.get("database") == MY_DB:
                    c["sysbench"] += 1
                elif kind == "request" and lst == "api":
                    c["http"] += 1
    return c


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


# ---------------------------------------------------------------- main

def main():
    since = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    log(f"soak for {SECONDS} s: pgbench -R {PGBENCH_RATE}, sysbench --rate {SYSBENCH_RATE}, "
        f"HTTP {HTTP_RATE}/s, probe {PROBE_RATE}/s, reload every {RELOAD_EVERY} s, burst every {BURST_EVERY} s")
    sample()
    pgb, syb = start_pgbench(), start_sysbench()
    threads = [threading.Thread(target=f, daemon=True) for f in (http_load, probe_load)]
    threads += [threading.Thread(target=every, args=(p, f), daemon=True)
                for p, f in ((SAMPLE_EVERY, sample), (RELOAD_EVERY, reload_round), (BURST_EVERY, burst_round))]
    for t in threads:
        t.start()
    warm_rss = None
    deadline = T0 + SECONDS
    while time.monotonic() < deadline:
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        if warm_rss is None and time.monotonic() - T0 >= WARMUP:
            warm_rss = proc_sample()[0]
        if pgb.poll() is not None and time.monotonic() < deadline - 5:
            fail(f"pgbench ended early (exit {pgb.returncode})")
            break
    stop.set()
    for t in threads:
        t.join(timeout=30)
    for name, p in (("pgbench", pgb), ("sysbench", syb)):
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            fail(f"{name} did not finish within 60 s after the end")
    sample()
    end_rss = samples[-1]["rss_kib"]
    max_rss = max(s["hwm_kib"] for s in samples)
    start_rss = samples[0]["rss_kib"]
    warm_rss = warm_rss or start_rss
    # Alerts: raised while the statements ran; give delivery a moment.
    alerts = 0
    t_end = time.monotonic() + 10
    while time.monotonic() < t_end:
        alerts = alerts_received()
        if alerts >= bursts["alerts_expected"]:
            break
        time.sleep(0.5)

    # Stop danxia: the audit queue is drained and synced on SIGTERM.
    os.kill(PID, signal.SIGTERM)
    for _ in range(600):
        try:
            os.kill(PID, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        fail("danxia did not exit within 60 s of SIGTERM")
    verify = subprocess.run([DANXIA_BIN, "audit", "verify", AUDIT_DIR], capture_output=True, text=True)
    if verify.returncode != 0:
        fail(f"audit verify: {verify.stdout.strip()} {verify.stderr.strip()}")
    audit = audit_counts(since)

    with open(f"{OUT}/samples.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        w.writerows(samples)
    with open(f"{OUT}/probe.csv", "w") as f:
        f.write("direct_us,danxia_us\n")
        for a, b in zip(probe["direct"], probe["danxia"]):
            f.write(f"{a:.1f},{b:.1f}\n")

    # ------------------------------------------------------------ checks
    pg_tx, pg_failed, _ = pgbench_done()
    sb_q, sb_err, _ = sysbench_done()
    if pg_tx is None:
        fail("no transaction count in pgbench's output (see pgbench.out)")
        pg_tx = 0
    if sb_q is None:
        fail("no query count in sysbench's output (see sysbench.out)")
        sb_q = 0
    if pg_failed:
        fail(f"pgbench: {pg_failed} failed transactions")
    if sb_err:
        fail(f"sysbench: {sb_err} ignored errors")
    # pgbench -T abandons the transactions in flight at the deadline: the
    # server (and the audit) may have them, the report does not. At most one
    # per client.
    d_pg = audit["pgbench"] - pg_tx
    if not 0 <= d_pg <= PGBENCH_CLIENTS:
        fail(f"pg audit completeness: {audit['pgbench']} audited vs {pg_tx} acknowledged (allowed 0..{PGBENCH_CLIENTS} more)")
    # sysbench finishes the transaction in hand at --time: every query it
    # counts was answered; queries it sent but did not count cannot exist.
    d_sb = audit["sysbench"] - sb_q
    if d_sb != 0:
        fail(f"mysql audit completeness: {audit['sysbench']} audited vs {sb_q} acknowledged")
    d_http = audit["http"] - web["answered"]
    if not 0 <= d_http <= web["errors"]:
        fail(f"http audit completeness: {audit['http']} audited vs {web['answered']} answered "
             f"(allowed up to {web['errors']} more: requests whose answer was lost)")
    if web["errors"] or web["other"]:
        fail(f"http: {web['errors']} transport errors, non-2xx {web['other']}")
    if probe["errors"]:
        fail(f"latency probe: {probe['errors']} failed probes")
    if alerts != bursts["alerts_expected"]:
        fail(f"alerts: {alerts} received, {bursts['alerts_expected']} expected")
    if bursts["denied_seen"] != bursts["denied_expected"]:
        fail(f"denied: {bursts['denied_seen']} refusals seen, {bursts['denied_expected']} expected")
    if reloads["failed"] or reloads["ok"] == 0:
        fail(f"reloads: {reloads}")
    last = samples[-1]
    for k in ("audit_dropped", "audit_write_failures", "backend_failures", "protocol_errors", "http_5xx"):
        if last[k] > 0:
            fail(f"metric {k} = {last[k]}")
    q = max(1, len(samples) // 4)
    first_q = samples[q]["errors"] - samples[0]["errors"]
    last_q = samples[-1]["errors"] - samples[-1 - q]["errors"]
    if last_q > first_q + 5:
        fail(f"statement errors grow: first quarter {first_q}, last quarter {last_q}")
    rss_slack = max(RSS_SLACK_KIB, warm_rss * RSS_SLACK_FRACTION)
    if end_rss > warm_rss + rss_slack:
        fail(f"memory grows: RSS {warm_rss} KiB after warm-up, {end_rss} KiB at the end (slack {rss_slack:.0f} KiB)")
    fds = [s["fds"] for s in samples]
    if fds[-2] > fds[1] + 20:
        fail(f"fds grow: {fds[1]} -> {fds[-2]}")

    d50, d99, d999 = (pct(probe["direct"], p) for p in (50, 99, 99.9))
    x50, x99, x999 = (pct(probe["danxia"], p) for p in (50, 99, 99.9))
    cpu = samples[-1]["cpu_s"] - samples[0]["cpu_s"]
    lines = [
        f"danxia soak summary ({'PASS' if not problems else 'FAIL'})",
        f"duration: {SECONDS} s ({SECONDS / 60:.1f} min); samples every {SAMPLE_EVERY} s: {len(samples)}",
        f"statements acknowledged: pg (pgbench -S -R {PGBENCH_RATE}) {pg_tx}, mysql (sysbench oltp_read_only --rate {SYSBENCH_RATE}) {sb_q}, "
        f"http ({HTTP_RATE}/s) {web['answered']}, probe {len(probe['danxia'])}, burst {bursts['statements']}",
        f"audit events: pg {audit['pgbench']} (+{audit['pgbench_setup']} pgbench setup statements, {audit['pg_other']} probe/burst), "
        f"mysql {audit['sysbench']}, http {audit['http']}, alerts {audit['alerts']}, recovery {audit['recovery']}",
        f"audit completeness: pg {audit['pgbench'] - pg_tx:+d} (0..{PGBENCH_CLIENTS} allowed: in flight at pgbench's deadline), "
        f"mysql {d_sb:+d}, http {d_http:+d}; verify: {'OK' if verify.returncode == 0 else 'FAILED'}",
        f"errors: statement errors {last['errors']:.0f} (first quarter {first_q:.0f}, last quarter {last_q:.0f}), "
        f"protocol {last['protocol_errors']:.0f}, backend failures {last['backend_failures']:.0f}, http 5xx {last['http_5xx']:.0f}, "
        f"http transport errors {web['errors']}, probe errors {probe['errors']}, pgbench failed {pg_failed}, sysbench ignored errors {sb_err}",
        f"audit: queue depth max {max(s['audit_queue'] for s in samples):.0f}, dropped {last['audit_dropped']:.0f}, write failures {last['audit_write_failures']:.0f}",
        f"RSS: start {start_rss / 1024:.1f} MiB, after warm-up ({WARMUP} s) {warm_rss / 1024:.1f} MiB, end {end_rss / 1024:.1f} MiB, max (VmHWM) {max_rss / 1024:.1f} MiB",
        f"fds: start {fds[0]}, end of load {fds[-2]}, max {max(fds)}; threads {samples[-1]['threads']}",
        f"danxia CPU: {cpu:.1f} s over {SECONDS} s ({100 * cpu / SECONDS:.1f} % of one core)",
        f"latency probe SELECT 1 at {PROBE_RATE}/s (us): direct p50 {d50:.0f} p99 {d99:.0f} p99.9 {d999:.0f}; "
        f"through danxia p50 {x50:.0f} p99 {x99:.0f} p99.9 {x999:.0f}; added p50 {x50 - d50:.0f} p99 {x99 - d99:.0f}",
        f"reloads: ok {reloads['ok']}, broken refused {reloads['refused']}, failed {reloads['failed']}",
        f"alerts: expected {bursts['alerts_expected']}, received {alerts}; refusals expected {bursts['denied_expected']}, seen {bursts['denied_seen']}",
    ]
    lines += [f"FAILED: {p}" for p in problems]
    text = "\n".join(lines) + "\n"
    with open(f"{OUT}/summary.txt", "w") as f:
        f.write(text)
    print(text, end="")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
