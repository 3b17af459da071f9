"""Plays a window of the plan through danxia in real time: one process per
stream, each with its own connection, sleeping until the real time of each
action on the scaled clock.

Owns: the three client drivers (psycopg2; mysql-connector-python with
server-side prepared statements; PyMySQL, optionally bound to another source
address), sessions (a new session id in the plan = a new connection), error
handling (count, reconnect, go on) and the per-stream statistics a phase
writes for the report. It never decides what to send (that is sim_plan) and
never interprets alerts (sim_report).

A stream that falls behind the clock (a loaded machine: at speed 8640 a
millisecond is 8.6 sim seconds) does not burst to catch up, which would look
like the very rate anomaly the simulation must not fake: it *slips*, keeping
its planned spacing, and wins the delay back by shortening each gap by at
most CATCHUP (a quarter), i.e. it never runs more than 4/3 of its planned
density. How far each stream slipped is in its statistics and the report.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import sim_plan as P

#: Connect attempts per action before it is given up (counted as an error).
CONNECT_ATTEMPTS = 3
CONNECT_TIMEOUT_S = 10
#: Error messages kept per stream in the stats (the first ones).
KEEP_ERRORS = 10
#: A session's connection is opened this long (real seconds) before its
#: first statement is due, so that connecting does not make it late (at
#: speed 8640, 0.05 s is 7 sim minutes: a client that connects a few
#: minutes before it queries).
CONNECT_LEAD_S = 0.05
#: Share of each planned gap a slipping stream skips to catch up.
CATCHUP = 0.25


class Refused(Exception):
    """danxia refused the statement (its error text starts with `danxia:`)."""


def _refusal(e: Exception) -> bool:
    return "danxia:" in str(e)


class PgClient:
    """psycopg2: literals interpolated client-side, simple query protocol."""

    def __init__(self, s: P.Stream, host: str, port: int):
        import psycopg2

        self._errors = (psycopg2.Error,)
        self.conn = psycopg2.connect(host=host, port=port, user=s.user, dbname=s.database,
                                     application_name=s.application,
                                     connect_timeout=CONNECT_TIMEOUT_S)
        self.conn.autocommit = True

    def execute(self, sql: str, params) -> int:
        with self.conn.cursor() as cur:
            cur.execute(sql, tuple(params) if params else None)
            return len(cur.fetchall()) if cur.description is not None else 0

    def broken(self) -> bool:
        return bool(self.conn.closed)

    def close(self):
        try:
            self.conn.close()
        except Exception:
            pass


class MysqlPreparedClient:
    """mysql-connector-python (pure Python), `cursor(prepared=True)`: each
    statement text is COM_STMT_PREPARE'd once per session and executed with
    its parameters bound over the wire (COM_STMT_EXECUTE), as an application
    with a statement cache does. (One prepared cursor per text: the
    connector re-prepares, and closes the previous statement, whenever a
    cursor is given a different text.)"""

    def __init__(self, s: P.Stream, host: str, port: int):
        import mysql.connector

        kw = dict(host=host, port=port, user=s.user, password=s.password or "",
                  database=s.database, use_pure=True, ssl_disabled=True, autocommit=True,
                  connection_timeout=CONNECT_TIMEOUT_S, charset="utf8mb4",
                  conn_attrs={"program_name": s.application})
        self.conn = mysql.connector.connect(**kw)
        _nodelay(getattr(getattr(self.conn, "_socket", None), "sock", None))
        self.cursors = {}

    def execute(self, sql: str, params) -> int:
        cur = self.cursors.get(sql)
        if cur is None:
            cur = self.cursors[sql] = self.conn.cursor(prepared=True)
            cur._sim_sql = sql.replace("%s", "?")
        cur.execute(cur._sim_sql, tuple(params))
        if cur.with_rows:
            return len(cur.fetchall())
        return 0

    def broken(self) -> bool:
        try:
            return not self.conn.is_connected()
        except Exception:
            return True

    def close(self):
        for cur in self.cursors.values():
            try:
                cur.close()
            except Exception:
                pass
        try:
            self.conn.close()
        except Exception:
            pass


def _nodelay(sock) -> None:
    """TCP_NODELAY, as libpq and libmariadb set it: a driver that writes a
    command without awaiting a reply (COM_STMT_CLOSE) and then the next one
    otherwise waits for the peer's delayed ACK (~40 ms)."""
    import socket

    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


class PyMysqlClient:
    """PyMySQL: COM_QUERY with client-side literals; can bind a source address."""

    def __init__(self, s: P.Stream, host: str, port: int):
        import pymysql

        self.conn = pymysql.connect(host=host, port=port, user=s.user, password=s.password or "",
                                    database=s.database, autocommit=True, charset="utf8mb4",
                                    connect_timeout=CONNECT_TIMEOUT_S, program_name=s.application,
                                    bind_address=s.bind_address)

    def execute(self, sql: str, params) -> int:
        with self.conn.cursor() as cur:
            cur.execute(sql, tuple(params) if params else None)
            return len(cur.fetchall()) if cur.description is not None else 0

    def broken(self) -> bool:
        return not self.conn.open

    def close(self):
        try:
            self.conn.close()
        except Exception:
            pass


DRIVERS = {"pg": PgClient, "mysql-prepared": MysqlPreparedClient, "pymysql": PyMysqlClient}


@dataclass
class StreamStats:
    stream: str
    identity: str
    planned: int = 0
    sent: int = 0
    ok: int = 0
    rows: int = 0
    errors: int = 0
    refused: int = 0
    connects: int = 0
    reconnects: int = 0
    connect_failures: int = 0
    first_sim: Optional[float] = None  # sim time the first statement was sent
    last_sim: Optional[float] = None  # sim time the last statement completed
    lag_max_min: float = 0.0  # worst lateness, sim minutes
    lag_sum_min: float = 0.0
    late_5min: int = 0  # statements sent more than 5 sim minutes late
    error_samples: List[str] = field(default_factory=list)

    def note_error(self, text: str):
        if len(self.error_samples) < KEEP_ERRORS:
            self.error_samples.append(text[:300])

    def merge(self, o: "StreamStats") -> None:
        """Adds another worker's figures of the same stream."""
        for k in ("planned", "sent", "ok", "rows", "errors", "refused", "connects", "reconnects",
                  "connect_failures", "late_5min"):
            setattr(self, k, getattr(self, k) + getattr(o, k))
        self.lag_sum_min += o.lag_sum_min
        self.lag_max_min = max(self.lag_max_min, o.lag_max_min)
        firsts = [x for x in (self.first_sim, o.first_sim) if x is not None]
        lasts = [x for x in (self.last_sim, o.last_sim) if x is not None]
        self.first_sim = min(firsts) if firsts else None
        self.last_sim = max(lasts) if lasts else None
        self.error_samples = (self.error_samples + o.error_samples)[:KEEP_ERRORS]

    def to_json(self) -> dict:
        d = dict(self.__dict__)
        d["lag_mean_min"] = round(self.lag_sum_min / self.sent, 3) if self.sent else 0.0
        d["lag_max_min"] = round(self.lag_max_min, 3)
        d.pop("lag_sum_min")
        for k in ("first_sim", "last_sim"):
            if d[k] is not None:
                d[k + "_at"] = P.fmt(d[k])
        return d


def run_stream(s: P.Stream, actions: List[P.Action], clock: P.Clock, host: str, ports: Dict[str, int],
               st: StreamStats, stop) -> None:
    port = ports["pg"] if s.driver == "pg" else ports["mysql"]
    driver = DRIVERS[s.driver]
    client = None
    session = None
    slip = 0.0  # sim seconds this stream runs behind its plan
    prev_t = None
    for a in actions:
        if stop.is_set():
            break
        if prev_t is not None and slip > 0:
            slip -= min(slip, (a.t - prev_t) * CATCHUP)
        prev_t = a.t
        due = a.t + slip
        if a.session != session:
            if client is not None:
                client.close()
                client = None
            session = a.session
            # Connect shortly before the session's first statement.
            delay = clock.real(due) - CONNECT_LEAD_S - time.time()
            if delay > 0 and stop.wait(delay):
                break
        if client is None:
            for attempt in range(CONNECT_ATTEMPTS):
                try:
                    client = driver(s, host, port)
                    st.connects += 1
                    break
                except Exception as e:  # noqa: BLE001 — any driver error: count, retry
                    st.connect_failures += 1
                    st.note_error(f"connect: {type(e).__name__}: {e}")
                    time.sleep(0.05)
            if client is None:
                st.errors += 1
                continue
        delay = clock.real(due) - time.time()
        if delay > 0 and stop.wait(delay):
            break
        now = time.time()
        now_sim = clock.sim(now)
        if now_sim > due:
            slip += now_sim - due
        lag = max(0.0, (now_sim - a.t) / 60)
        st.lag_max_min = max(st.lag_max_min, lag)
        st.lag_sum_min += lag
        if lag > 5:
            st.late_5min += 1
        if st.first_sim is None:
            st.first_sim = now_sim
        st.sent += 1
        try:
            st.rows += client.execute(a.sql, a.params)
            st.ok += 1
        except Exception as e:  # noqa: BLE001
            if _refusal(e):
                st.refused += 1
            else:
                st.errors += 1
                st.note_error(f"{a.label} at {P.fmt(a.t)}: {type(e).__name__}: {e}")
            if client.broken():
                client.close()
                client = None
                st.reconnects += 1
        st.last_sim = clock.sim(time.time())
    if client is not None:
        client.close()


def _stream_process(s: P.Stream, actions, clock, host, ports, stop, conn) -> None:
    """Body of a stream's process: play, then send the stats to the parent."""
    st = StreamStats(s.name, s.identity, planned=len(actions))
    try:
        run_stream(s, actions, clock, host, ports, st, stop)
    except Exception:  # noqa: BLE001 — a bug in a stream must not stop the others
        st.errors += 1
        st.note_error("stream crashed: " + traceback.format_exc(limit=3))
    conn.send(st)
    conn.close()


def run_window(plan: P.Plan, clock: P.Clock, t_from: float, t_until: float, host: str,
               ports: Dict[str, int], log=print, wait_until_end: bool = True) -> dict:
    """Plays every planned action in [t_from, t_until) and returns the phase's
    statistics (JSON-ready).

    Each stream runs in a process of its own (forked, so the plan is not
    copied): on a scaled clock a millisecond is minutes of sim time, and
    threads sharing one interpreter lock would delay each other whenever
    one of them is busy (an enumeration, a large result being parsed)."""
    import multiprocessing as mp

    actions = plan.window(t_from, t_until)
    per_stream = plan.by_stream(actions)
    # Import the drivers before forking: a first import costs a few hundred
    # milliseconds (hours of sim time).
    drivers = {P.STREAMS[n].driver for n in per_stream}
    if "pg" in drivers:
        import psycopg2  # noqa: F401
    if "mysql-prepared" in drivers:
        import mysql.connector  # noqa: F401
    if "pymysql" in drivers:
        import pymysql  # noqa: F401
    ctx = mp.get_context("fork")
    stop = ctx.Event()
    procs = []
    for name in sorted(per_stream):
        s = P.STREAMS[name]
        for w in range(s.workers):
            part = per_stream[name][w::s.workers]
            if not part:
                continue
            parent_end, child_end = ctx.Pipe(duplex=False)
            pr = ctx.Process(target=_stream_process, name=f"sim-{name}-{w}",
                             args=(s, part, clock, host, ports, stop, child_end), daemon=True)
            procs.append((f"{name}#{w}", pr, parent_end, child_end))
    real_from = clock.real(t_from)
    log(f"run: {len(actions)} statements on {len(procs)} streams, {P.fmt(t_from)} .. "
        f"{P.fmt(t_until)} (sim), starting in {real_from - time.time():.1f} s real, "
        f"{(t_until - max(t_from, clock.sim(time.time()))) / clock.speed:.1f} s long")
    started = time.time()
    for _name, pr, _pe, ce in procs:
        pr.start()
        ce.close()
    parts: Dict[str, StreamStats] = {}
    try:
        progress_day = None
        pending = {key: (pr, pe) for key, pr, pe, _ce in procs}
        while pending:
            for key, (pr, pe) in list(pending.items()):
                if pe.poll(0.05):
                    try:
                        parts[key] = pe.recv()
                    except EOFError:
                        pass
                    pr.join()
                    del pending[key]
                elif not pr.is_alive():
                    pr.join()
                    del pending[key]
            now_sim = clock.sim(time.time())
            day = P.day_index(now_sim)
            if day != progress_day and 0 <= day < P.NUM_DAYS and t_from <= now_sim < t_until:
                progress_day = day
                log(f"run: {P.DAY_NAMES[day]} begins; {len(pending)} of {len(procs)} "
                    f"stream processes still playing")
    except KeyboardInterrupt:
        stop.set()
        for _key, pr, _pe, _ce in procs:
            pr.join(5)
        raise
    stats: Dict[str, StreamStats] = {}
    for key, _pr, _pe, _ce in procs:
        name = key.split("#")[0]
        st = parts.get(key)
        if st is None:  # the process died without reporting
            st = StreamStats(name, P.STREAMS[name].identity)
            st.errors += 1
            st.note_error(f"stream process {key} died without reporting")
        if name in stats:
            stats[name].merge(st)
        else:
            stats[name] = st
    if wait_until_end:
        rest = clock.real(t_until) - time.time()
        if rest > 0:
            time.sleep(rest)
    elapsed = time.time() - started
    sent = sum(x.sent for x in stats.values())
    log(f"run: done in {elapsed:.1f} s real: {sent} statements, "
        f"{sum(x.errors for x in stats.values())} errors, "
        f"{sum(x.refused for x in stats.values())} refused, worst lag "
        f"{max((x.lag_max_min for x in stats.values()), default=0):.1f} sim min")
    scen = []
    for sc in plan.scenarios:
        st = stats.get(sc.stream)
        if st is None:
            continue
        scen.append({"name": sc.name, "stream": sc.stream, "planned_start": sc.start,
                     "planned_end": sc.end, "actual_start": st.first_sim,
                     "actual_end": st.last_sim})
    return {
        "from": t_from, "until": t_until, "from_at": P.fmt(t_from), "until_at": P.fmt(t_until),
        "clock": clock.to_json(), "seed": plan.seed, "real_seconds": round(elapsed, 2),
        "streams": {k: v.to_json() for k, v in sorted(stats.items())},
        "scenarios": scen,
    }
