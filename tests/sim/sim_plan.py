"""The simulated week: its clock, its calendar, who works when, and the
deterministic schedule of every statement the simulation sends.

Owns: the mapping between real time and behaviour (simulation) time, the
actors of the normal workload and their diurnal rates, the five attack
scenarios, and `plan()`, which turns all of that into a sorted list of
`Action`s. Nothing here touches a database, a socket or the wall clock: the
same seed gives the same actions, byte for byte, on every machine and in every
phase split (each actor-day draws from its own random stream, so running the
week in two phases plans exactly what one run would).

Times are unix seconds on the behaviour clock ("sim time"); the policy time
zone is Asia/Shanghai (+08:00, no daylight saving), so local wall-clock times
are computed with a fixed offset.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

# ---------------------------------------------------------------- calendar

#: The policy time zone: Asia/Shanghai has had no DST since 1991.
TZ = timezone(timedelta(hours=8), "+08:00")
#: Wednesday 2026-11-04 00:00 +08:00: the first simulated day.
WEEK_START_DT = datetime(2026, 11, 4, 0, 0, tzinfo=TZ)
WEEK_START = WEEK_START_DT.timestamp()
DAY = 86400
HOUR = 3600
MINUTE = 60
#: Day index 0..6 of the simulated week.
DAY_NAMES = ["Wed", "Thu", "Fri", "Sat", "Sun", "Mon", "Tue"]
NUM_DAYS = len(DAY_NAMES)
#: Days 0..4 (Wed..Sun) are the learning period (`learning = "5d"`).
LEARNING_DAYS = 5
#: Monday: a normal day, the first one judged (false alerts counted).
MONDAY = 5
#: Tuesday: normal traffic plus the scenarios.
TUESDAY = 6
#: Default clock speed: sim seconds per real second (1 day = 10 s).
DEFAULT_SPEED = 8640.0
#: Nothing is sent in [RESTART_GAP): danxia restarts there (Sun 23:30 to
#: Mon 01:00).
RESTART_GAP = (WEEK_START + 4 * DAY + 23 * HOUR + 30 * MINUTE, WEEK_START + MONDAY * DAY + HOUR)
#: The end of the simulated week (Wed 00:00 after Tuesday).
WEEK_END = WEEK_START + NUM_DAYS * DAY
#: Bumped whenever the plan changes (invalidates `simulate.py run --plan-cache`).
PLAN_VERSION = 2
#: How long after a scenario's end an alert is still attributed to it.
ATTRIBUTION_GRACE = 60 * MINUTE


def local(t: float) -> datetime:
    """Sim time → aware datetime in the policy time zone."""
    return datetime.fromtimestamp(t, TZ)


def fmt(t: float) -> str:
    """Sim time as `Tue 03:10` (day of the simulated week + local time)."""
    d = local(t)
    i = day_index(t)
    name = DAY_NAMES[i] if 0 <= i < NUM_DAYS else d.strftime("%a")
    return f"{name} {d:%H:%M}"


def day_index(t: float) -> int:
    """0 for Wednesday of the simulated week … 6 for Tuesday (may be out of
    range for times outside the week)."""
    return math.floor((t - WEEK_START) / DAY)


def day_start(i: int) -> float:
    return WEEK_START + i * DAY


def is_weekend(i: int) -> bool:
    return DAY_NAMES[i % NUM_DAYS] in ("Sat", "Sun")


def parse_time(text: str) -> float:
    """A sim time given on the command line: an ISO 8601 date-time (a missing
    offset means +08:00), `Mon 01:00` / `mon01:00` (a day of the simulated
    week), `end` (the end of the week) or unix seconds."""
    s = text.strip()
    if s.lower() == "end":
        return WEEK_END
    try:
        return float(s)
    except ValueError:
        pass
    low = s.lower().replace(" ", "")
    for i, name in enumerate(DAY_NAMES):
        if low.startswith(name.lower()):
            rest = low[len(name):] or "00:00"
            hh, mm = rest.split(":")
            return day_start(i) + int(hh) * HOUR + int(mm) * MINUTE
    d = datetime.fromisoformat(s)
    if d.tzinfo is None:
        d = d.replace(tzinfo=TZ)
    return d.timestamp()


def iso(t: float) -> str:
    """Sim time as ISO 8601 with the +08:00 offset (for configs and reports)."""
    return local(t).isoformat()


@dataclass(frozen=True)
class Clock:
    """danxia's `[behaviour.clock]`: sim(real) = start + (real - anchor) × speed."""

    start: float
    anchor: float
    speed: float = DEFAULT_SPEED

    def sim(self, real: float) -> float:
        return self.start + (real - self.anchor) * self.speed

    def real(self, sim: float) -> float:
        return self.anchor + (sim - self.start) / self.speed

    def to_json(self) -> dict:
        return {"start": iso(self.start), "start_unix": self.start, "anchor": self.anchor,
                "speed": self.speed}


# ---------------------------------------------------------------- the data

#: Rows of the tables `sim_setup` creates (the plan draws ids within them).
CITIZENS = 20000
SERVICES = 8000
CASES = 5000
PERMITS = 4000
EMPLOYEES = 3000
LEAVE_REQUESTS = 1200
#: District (county) codes: the address codes of the fixture's identity
#: numbers (`danxia_regions()` in tests/fixtures/citizens.sql), so a
#: citizen's district is the first six characters of their id_number.
DISTRICTS = ["110101", "110105", "310104", "310115", "440305", "440106",
             "510107", "330106", "420106", "320102", "370102", "610113"]
DEPTS = ["finance", "hr", "it", "legal", "operations", "procurement", "registry", "service"]
CASE_STATUSES = ["open", "pending", "closed"]
CASE_TYPES = ["complaint", "permit_review", "benefit_claim", "address_change", "inspection"]
PERMIT_TYPES = ["business", "construction", "residence", "vehicle", "event"]
SERVICE_TYPES = ["id_card", "household", "social_security", "tax", "benefit", "passport"]
LEAVE_KINDS = ["annual", "sick", "personal", "training"]
LEAVE_STATUSES = ["approved", "rejected", "cancelled"]

# ---------------------------------------------------------------- streams


@dataclass(frozen=True)
class Stream:
    """One client: a process in the runner (one per worker) with its own
    connection. Normal actors and scenarios are separate streams even when
    they share an identity (the attacker runs a session of their own)."""

    name: str
    driver: str  # "pg" | "mysql-prepared" (mysql-connector) | "pymysql"
    user: str
    application: str
    password: Optional[str] = None
    database: str = "test"
    bind_address: Optional[str] = None
    scenario: Optional[str] = None
    #: Parallel connections (processes) sharing the stream's actions round
    #: robin: an application's connection pool, an enumeration script's
    #: thread pool. (On a scaled clock one connection cannot send 2 000
    #: statements in 40 sim minutes.)
    workers: int = 1

    @property
    def network(self) -> str:
        """The /24 the proxy sees the client in."""
        addr = self.bind_address or "127.0.0.1"
        a, b, c, _ = addr.split(".")
        return f"{a}.{b}.{c}.0/24"

    @property
    def identity(self) -> str:
        return f"{self.user}|{self.application}|{self.network}"

    @property
    def protocol(self) -> str:
        return "postgres" if self.driver == "pg" else "mysql"


MYSQL_PASSWORD = "sim"
#: The "new client network" of the network_switch scenario (Linux routes
#: all of 127/8 to lo, so a client can bind it as its source address).
SWITCHED_ADDRESS = "127.1.0.7"


def _pg(name, user, app, scenario=None, workers=1):
    return Stream(name, "pg", user, app, scenario=scenario, workers=workers)


def _my(name, driver, user, app, scenario=None, bind=None, workers=1):
    return Stream(name, driver, user, app, password=MYSQL_PASSWORD, database="simhr",
                  bind_address=bind, scenario=scenario, workers=workers)


STREAMS: Dict[str, Stream] = {s.name: s for s in [
    # normal actors
    # the applications use connection pools (workers); people use one session
    _pg("portal_svc", "portal_svc", "gov-portal", workers=3),
    _pg("analyst_li", "analyst_li", "psql"),
    _pg("analyst_wang", "analyst_wang", "DBeaver"),
    _pg("report_job", "report_job", "nightly-report"),
    _my("hr_app", "mysql-prepared", "hr_app", "hr-portal", workers=2),
    _my("hr_clerk", "pymysql", "hr_clerk", "mariadb"),
    _my("analyst_zhao", "mysql-prepared", "analyst_zhao", "hr-analytics"),
    # scenarios (same identities as normal actors, except etl_new and the
    # switched network)
    _pg("bulk_night", "analyst_li", "psql", scenario="bulk_night"),
    _pg("drip", "analyst_wang", "DBeaver", scenario="drip"),
    _pg("enumeration_pg", "analyst_li", "psql", scenario="enumeration_pg", workers=2),
    _my("enumeration_mysql", "mysql-prepared", "analyst_zhao", "hr-analytics",
        scenario="enumeration_mysql", workers=3),
    _pg("new_app_catalogue", "etl_new", "etl-loader", scenario="new_app_catalogue"),
    _my("network_switch", "pymysql", "hr_app", "hr-portal", scenario="network_switch",
        bind=SWITCHED_ADDRESS),
]}

#: Login roles / MariaDB users the setup creates.
PG_USERS = ["portal_svc", "analyst_li", "analyst_wang", "report_job", "etl_new"]
MYSQL_USERS = ["hr_app", "analyst_zhao", "hr_clerk"]

# ---------------------------------------------------------------- actions


@dataclass(frozen=True)
class Action:
    """One statement at a sim time, on a stream, in a session (a new session
    id means: close the stream's connection and open a new one first)."""

    t: float
    stream: str
    session: str
    label: str
    sql: str
    params: Tuple = ()

    def to_json(self) -> dict:
        return {"t": self.t, "at": fmt(self.t), "stream": self.stream, "session": self.session,
                "label": self.label, "sql": self.sql, "params": list(self.params)}


@dataclass(frozen=True)
class Scenario:
    name: str
    stream: str
    start: float
    end: float  # planned end (the last statement's scheduled time)
    what: str

    @property
    def user(self) -> str:
        return STREAMS[self.stream].user

    @property
    def network(self) -> Optional[str]:
        """Alerts must also come from this network to count (network_switch)."""
        s = STREAMS[self.stream]
        return s.network if s.bind_address else None


def rng_for(seed: int, stream: str, day: int) -> random.Random:
    """The random stream of one actor-day: independent of every other."""
    return random.Random(f"danxia-sim/{seed}/{stream}/{day}")


def poisson_times(rng: random.Random, t0: float, t1: float,
                  rate_per_hour: Callable[[float], float], max_rate: float) -> List[float]:
    """Event times of a non-homogeneous Poisson process on [t0, t1) (Lewis
    thinning): `rate_per_hour(t)` ≤ `max_rate` events per sim hour."""
    out = []
    t = t0
    lam = max_rate / HOUR
    while True:
        t += rng.expovariate(lam)
        if t >= t1:
            return out
        if rng.random() * max_rate < rate_per_hour(t):
            out.append(t)


def bell(h: float, mu: float, sigma: float) -> float:
    return math.exp(-0.5 * ((h - mu) / sigma) ** 2)


def hour_of(t: float) -> float:
    d = local(t)
    return d.hour + d.minute / 60 + d.second / 3600


def weighted(rng: random.Random, choices: Sequence[Tuple[float, Callable]]):
    total = sum(w for w, _ in choices)
    x = rng.random() * total
    for w, f in choices:
        x -= w
        if x < 0:
            return f
    return choices[-1][1]


def sim_date(i: int, days_back: int = 0) -> str:
    """The calendar date of day i minus `days_back`, as 'YYYY-MM-DD'."""
    return (local(day_start(i)) - timedelta(days=days_back)).strftime("%Y-%m-%d")


# ---------------------------------------------------------------- normal actors
# Each returns the actor's actions for day i (0 = Wednesday). Statement texts
# use %s placeholders: psycopg2 and PyMySQL interpolate literals client-side
# (simple query protocol / COM_QUERY), mysql-connector's prepared cursor
# sends them as bound parameters (COM_STMT_EXECUTE).


def portal_rate(t: float, weekend: bool) -> float:
    """gov-portal requests per sim hour: open 07:00–23:00, bell-shaped peaks at
    11:00 and 15:00 (~205 and ~195 per hour, i.e. ~33 per 10 minutes) with a
    lunch dip between them, a floor of 25 per hour in the evening; weekends
    half."""
    h = hour_of(t)
    if h < 7 or h >= 23:
        return 0.0
    r = 25 + 180 * bell(h, 11, 1.1) + 170 * bell(h, 15, 1.1)
    return r * (0.5 if weekend else 1.0)


def plan_portal(seed: int, i: int) -> List[Action]:
    s = "portal_svc"
    rng = rng_for(seed, s, i)
    d0 = day_start(i)
    session = f"{s}/{DAY_NAMES[i]}"
    acts = []
    for t in poisson_times(rng, d0 + 7 * HOUR, d0 + 23 * HOUR,
                           lambda t: portal_rate(t, is_weekend(i)), 200):
        kind = weighted(rng, [
            (60, lambda: ("citizen_by_id",
                          "select id, name, phone, district from sim.citizens where id = %s",
                          (rng.randint(1, CITIZENS),))),
            (20, lambda: ("services_of_citizen",
                          "select id, service_type, status, opened_on from sim.services "
                          "where citizen_id = %s order by opened_on desc limit 10",
                          (rng.randint(1, CITIZENS),))),
            (15, lambda: ("case_status",
                          "select id, case_type, status, updated_at from sim.cases where id = %s",
                          (rng.randint(1, CASES),))),
            (5, lambda: ("district_list", "select code, name from sim.districts order by code", ())),
        ])
        label, sql, params = kind()
        acts.append(Action(t, s, session, label, sql, params))
    return acts


def _analyst_blocks(rng: random.Random, d0: float) -> List[Tuple[float, float]]:
    """An analyst's two work blocks. People keep routines, and the jitter
    keeps each boundary within one hour of the day (in 08:40–09:00, lunch
    12:00–12:15, back 13:45–14:00, out 18:00–18:25), so every hour a judged
    day uses was seen on the learning weekdays."""
    start = d0 + 8 * HOUR + rng.uniform(40, 60) * MINUTE
    lunch = d0 + 12 * HOUR + rng.uniform(0, 15) * MINUTE
    back = d0 + 13 * HOUR + rng.uniform(45, 60) * MINUTE
    end = d0 + 18 * HOUR + rng.uniform(0, 25) * MINUTE
    return [(start, lunch), (back, end)]


ANALYST_RATE = 30.0  # statements per sim hour while at work (5 per 10 min)


def _analyst_common(rng: random.Random, i: int):
    """Statement makers both PostgreSQL analysts use."""
    district = lambda: rng.choice(DISTRICTS)  # noqa: E731
    return {
        "agg_citizens_by_district": lambda: (
            "agg_citizens_by_district",
            "select district, count(*) from sim.citizens group by district order by district", ()),
        "agg_cases_in_district": lambda: (
            "agg_cases_in_district",
            "select case_type, status, count(*) from sim.cases where district = %s "
            "group by case_type, status order by 1, 2", (district(),)),
        "agg_cases_by_status": lambda: (
            "agg_cases_by_status",
            "select status, count(*) from sim.cases where opened_on >= %s group by status",
            (sim_date(i, rng.choice([7, 30, 90])),)),
        "agg_services_by_district": lambda: (
            "agg_services_by_district",
            "select d.name, count(s.id) from sim.services s join sim.districts d "
            "on d.code = s.district where s.opened_on >= %s group by d.name order by 2 desc",
            (sim_date(i, rng.choice([30, 90])),)),
        "list_cases": lambda: (
            "list_cases",
            "select id, case_type, status, district, opened_on from sim.cases "
            "where district = %s and status = %s order by opened_on desc limit 50",
            (district(), rng.choice(CASE_STATUSES))),
        "list_permits": lambda: (
            "list_permits",
            "select id, permit_type, status, issued_on, expires_on from sim.permits "
            "where district = %s order by issued_on desc limit 50", (district(),)),
        "join_cases_permits": lambda: (
            "join_cases_permits",
            "select c.id, c.case_type, c.status, p.permit_type, p.status from sim.cases c "
            "join sim.permits p on p.citizen_id = c.citizen_id "
            "where c.district = %s and c.opened_on >= %s order by c.id limit 50",
            (district(), sim_date(i, 180))),
    }


def plan_analyst_li(seed: int, i: int) -> List[Action]:
    s = "analyst_li"
    if is_weekend(i):
        return []
    rng = rng_for(seed, s, i)
    mk = _analyst_common(rng, i)
    mk["few_citizens"] = lambda: (
        "few_citizens",
        "select id, name, id_number, phone from sim.citizens where id in (%s, %s, %s)",
        tuple(rng.randint(1, CITIZENS) for _ in range(3)))
    mk["agg_permits_by_type"] = lambda: (
        "agg_permits_by_type",
        "select permit_type, count(*) from sim.permits where issued_on between %s and %s "
        "group by permit_type", (sim_date(i, 365), sim_date(i, 0)))
    mix = [(4, "agg_citizens_by_district"), (8, "agg_cases_by_status"),
           (10, "agg_cases_in_district"), (8, "agg_permits_by_type"), (20, "list_cases"),
           (15, "list_permits"), (20, "few_citizens"), (15, "join_cases_permits")]
    return _plan_analyst(s, rng, i, mk, mix)


def plan_analyst_wang(seed: int, i: int) -> List[Action]:
    s = "analyst_wang"
    if is_weekend(i):
        return []
    rng = rng_for(seed, s, i)
    mk = _analyst_common(rng, i)

    def batch():
        x = rng.randint(1, CITIZENS - 10)
        return ("citizen_batch",
                "select name, id_number, phone from sim.citizens where id between %s and %s",
                (x, x + rng.randint(2, 9)))
    mk["citizen_batch"] = batch
    mk["open_case_followup"] = lambda: (
        "open_case_followup",
        "select c.id, c.case_type, z.name, z.id_number, z.phone from sim.cases c "
        "join sim.citizens z on z.id = c.citizen_id "
        "where c.status = 'open' and c.district = %s order by c.opened_on limit 50",
        (rng.choice(DISTRICTS),))
    mix = [(4, "agg_citizens_by_district"), (8, "agg_cases_by_status"),
           (12, "agg_cases_in_district"), (8, "agg_services_by_district"), (15, "list_cases"),
           (12, "list_permits"), (15, "citizen_batch"), (4, "open_case_followup"),
           (22, "join_cases_permits")]
    return _plan_analyst(s, rng, i, mk, mix)


def _plan_analyst(s, rng, i, makers, mix) -> List[Action]:
    acts = []
    blocks = _analyst_blocks(rng, day_start(i))
    for b, (t0, t1) in enumerate(blocks):
        session = f"{s}/{DAY_NAMES[i]}/{b}"
        for t in poisson_times(rng, t0, t1, lambda t: ANALYST_RATE, ANALYST_RATE):
            name = weighted(rng, [(w, n) for w, n in mix])
            label, sql, params = makers[name]()
            acts.append(Action(t, s, session, label, sql, params))
    return acts


def plan_report_job(seed: int, i: int) -> List[Action]:
    """nightly-report: every day at 02:00 (the scheduler fires at 02:00, the
    job starts within 10 minutes), four aggregates and one export of ~2 000
    rows of sim.services (a third of the districts, rotating)."""
    s = "report_job"
    rng = rng_for(seed, s, i)
    t = day_start(i) + 2 * HOUR + rng.uniform(0, 10) * MINUTE
    session = f"{s}/{DAY_NAMES[i]}"
    group = [DISTRICTS[(i % 4) * 3 + k] for k in range(3)]
    steps = [
        ("report_services_by_district",
         "select district, count(*) from sim.services where opened_on >= %s group by district",
         (sim_date(i, 30),)),
        ("report_cases_by_status", "select status, count(*) from sim.cases group by status", ()),
        ("report_permits_by_type",
         "select permit_type, status, count(*) from sim.permits group by permit_type, status", ()),
        ("report_export_services",
         "select id, citizen_id, district, service_type, status, opened_on, closed_on "
         "from sim.services where district in (%s, %s, %s) order by id", tuple(group)),
        ("report_citizen_count", "select count(*) from sim.citizens", ()),
    ]
    acts = []
    for label, sql, params in steps:
        acts.append(Action(t, s, session, label, sql, params))
        t += rng.uniform(30, 90)
    return acts


def hr_app_rate(t: float) -> float:
    h = hour_of(t)
    if h < 8 or h >= 19:
        return 0.0
    return 22 + 20 * bell(h, 10.5, 1.5) + 16 * bell(h, 15, 1.5)


def plan_hr_app(seed: int, i: int) -> List[Action]:
    """hr-portal over mysql-connector prepared statements: weekdays 08–19."""
    s = "hr_app"
    if is_weekend(i):
        return []
    rng = rng_for(seed, s, i)
    d0 = day_start(i)
    session = f"{s}/{DAY_NAMES[i]}"
    acts = []

    def new_leave():
        start = local(d0) + timedelta(days=rng.randint(3, 40))
        end = start + timedelta(days=rng.randint(0, 6))
        return ("insert_leave",
                "insert into leave_requests (employee_id, kind, start_date, end_date, status) "
                "values (%s, %s, %s, %s, 'pending')",
                (rng.randint(1, EMPLOYEES), rng.choice(LEAVE_KINDS),
                 start.strftime("%Y-%m-%d"), end.strftime("%Y-%m-%d")))
    for t in poisson_times(rng, d0 + 8 * HOUR, d0 + 19 * HOUR, hr_app_rate, 60):
        label, sql, params = weighted(rng, [
            (55, lambda: ("employee_by_id",
                          "select id, name, dept, phone from employees where id = %s",
                          (rng.randint(1, EMPLOYEES),))),
            (30, lambda: ("leave_of_employee",
                          "select id, kind, start_date, end_date, status from leave_requests "
                          "where employee_id = %s order by start_date desc limit 10",
                          (rng.randint(1, EMPLOYEES),))),
            (7, new_leave),
            (8, lambda: ("decide_leave",
                         "update leave_requests set status = %s, decided_at = now() where id = %s",
                         (rng.choice(LEAVE_STATUSES), rng.randint(1, LEAVE_REQUESTS)))),
        ])()
        acts.append(Action(t, s, session, label, sql, params))
    return acts


def plan_hr_clerk(seed: int, i: int) -> List[Action]:
    """The HR clerk in the mariadb CLI (PyMySQL here): weekdays 09–17."""
    s = "hr_clerk"
    if is_weekend(i):
        return []
    rng = rng_for(seed, s, i)
    d0 = day_start(i)
    blocks = [(d0 + 9 * HOUR + rng.uniform(0, 10) * MINUTE, d0 + 12 * HOUR),
              (d0 + 13 * HOUR + rng.uniform(0, 10) * MINUTE,
               d0 + 17 * HOUR - rng.uniform(0, 10) * MINUTE)]
    acts = []
    for b, (t0, t1) in enumerate(blocks):
        session = f"{s}/{DAY_NAMES[i]}/{b}"
        for t in poisson_times(rng, t0, t1, lambda t: 20.0, 20.0):
            label, sql, params = weighted(rng, [
                (40, lambda: ("dept_list",
                              "select id, name, dept from employees where dept = %s "
                              "order by name limit 20", (rng.choice(DEPTS),))),
                (30, lambda: ("pending_count",
                              "select count(*) from leave_requests where status = 'pending'", ())),
                (30, lambda: ("pending_list",
                              "select l.id, e.name, l.kind, l.start_date, l.end_date "
                              "from leave_requests l join employees e on e.id = l.employee_id "
                              "where l.status = 'pending' order by l.start_date limit 20", ())),
            ])()
            acts.append(Action(t, s, session, label, sql, params))
    return acts


def plan_analyst_zhao(seed: int, i: int) -> List[Action]:
    """An HR analyst on MariaDB (mysql-connector, prepared): light weekday
    traffic 10–16, so the enumeration scenario has a baseline to stand out
    from."""
    s = "analyst_zhao"
    if is_weekend(i):
        return []
    rng = rng_for(seed, s, i)
    d0 = day_start(i)
    t0 = d0 + 10 * HOUR + rng.uniform(0, 15) * MINUTE
    t1 = d0 + 16 * HOUR - rng.uniform(0, 15) * MINUTE
    session = f"{s}/{DAY_NAMES[i]}"
    acts = []
    for t in poisson_times(rng, t0, t1, lambda t: 12.0, 12.0):
        label, sql, params = weighted(rng, [
            (25, lambda: ("headcount_by_dept",
                          "select dept, count(*) from employees group by dept", ())),
            (20, lambda: ("pay_of_dept",
                          "select count(*), avg(p.net_pay), max(p.net_pay) from payroll p "
                          "join employees e on e.id = p.employee_id "
                          "where e.dept = %s and p.period = %s",
                          (rng.choice(DEPTS), rng.choice(PAYROLL_PERIODS)))),
            (40, lambda: ("employee_brief",
                          "select id, name, dept from employees where id = %s",
                          (rng.randint(1, EMPLOYEES),))),
            (15, lambda: ("leave_by_kind",
                          "select kind, count(*) from leave_requests where start_date >= %s "
                          "group by kind", (sim_date(i, 90),))),
        ])()
        acts.append(Action(t, s, session, label, sql, params))
    return acts


PAYROLL_PERIODS = ["2026-08", "2026-09", "2026-10"]

NORMAL_PLANNERS: Dict[str, Callable[[int, int], List[Action]]] = {
    "portal_svc": plan_portal,
    "analyst_li": plan_analyst_li,
    "analyst_wang": plan_analyst_wang,
    "report_job": plan_report_job,
    "hr_app": plan_hr_app,
    "hr_clerk": plan_hr_clerk,
    "analyst_zhao": plan_analyst_zhao,
}

# ---------------------------------------------------------------- scenarios

#: Relations a new ETL tool reads to discover the database (~40).
CATALOGUE_QUERIES = [
    "select table_schema, table_name, table_type from information_schema.tables",
    "select table_schema, table_name, column_name, data_type, is_nullable from information_schema.columns",
    "select schema_name, schema_owner from information_schema.schemata",
    "select table_schema, table_name, view_definition from information_schema.views",
    "select constraint_schema, constraint_name, table_name, constraint_type from information_schema.table_constraints",
    "select constraint_name, table_name, column_name from information_schema.key_column_usage",
    "select constraint_name, unique_constraint_name from information_schema.referential_constraints",
    "select routine_schema, routine_name, routine_type from information_schema.routines",
    "select grantee, table_schema, table_name, privilege_type from information_schema.table_privileges",
    "select grantee, table_name, column_name, privilege_type from information_schema.column_privileges",
    "select sequence_schema, sequence_name, data_type from information_schema.sequences",
    "select trigger_schema, trigger_name, event_object_table from information_schema.triggers",
    "select * from information_schema.enabled_roles",
    "select * from information_schema.applicable_roles",
    "select oid, relname, relnamespace, relkind, reltuples from pg_catalog.pg_class",
    "select attrelid, attname, atttypid, attnum, attnotnull from pg_catalog.pg_attribute where attnum > 0",
    "select oid, nspname, nspowner from pg_catalog.pg_namespace",
    "select rolname, rolsuper, rolcanlogin, rolcreaterole from pg_catalog.pg_roles",
    "select oid, proname, pronamespace, prorettype from pg_catalog.pg_proc",
    "select indexrelid, indrelid, indisunique, indisprimary from pg_catalog.pg_index",
    "select conname, conrelid, contype, confrelid from pg_catalog.pg_constraint",
    "select oid, typname, typnamespace, typtype from pg_catalog.pg_type",
    "select objoid, classoid, description from pg_catalog.pg_description",
    "select schemaname, tablename, tableowner from pg_catalog.pg_tables",
    "select schemaname, viewname, viewowner from pg_catalog.pg_views",
    "select schemaname, relname, n_live_tup, last_analyze from pg_catalog.pg_stat_user_tables",
    "select name, setting, category from pg_catalog.pg_settings",
    "select datname, datdba, encoding from pg_catalog.pg_database",
    "select usename, usesuper, usecreatedb from pg_catalog.pg_user",
    "select schemaname, tablename, indexname, indexdef from pg_catalog.pg_indexes",
    "select extname, extversion from pg_catalog.pg_extension",
    "select oid, lanname from pg_catalog.pg_language",
    "select seqrelid, seqtypid, seqincrement from pg_catalog.pg_sequence",
    "select tgname, tgrelid, tgenabled from pg_catalog.pg_trigger",
    "select adrelid, adnum from pg_catalog.pg_attrdef",
    "select classid, objid, refobjid, deptype from pg_catalog.pg_depend limit 1000",
    "select oid, collname from pg_catalog.pg_collation",
    "select schemaname, tablename, attname, n_distinct from pg_catalog.pg_stats where schemaname = 'sim'",
    "select roleid, member from pg_catalog.pg_auth_members",
    "select oid, spcname from pg_catalog.pg_tablespace",
]
SIM_TABLES = ["sim.districts", "sim.citizens", "sim.services", "sim.cases", "sim.permits"]

ENUM_PG_IDS = 2000
ENUM_MYSQL_IDS = 2500


def plan_scenarios(seed: int) -> Tuple[List[Scenario], List[Action]]:
    """The five attacks (six streams), all on Tuesday."""
    d0 = day_start(TUESDAY)
    scenarios: List[Scenario] = []
    acts: List[Action] = []

    def add(name, stream, what, items):
        """items: [(t, label, sql, params)]."""
        session = f"{stream}/Tue"
        for t, label, sql, params in items:
            acts.append(Action(t, stream, session, label, sql, params))
        scenarios.append(Scenario(name, stream, items[0][0], items[-1][0], what))

    # 1. bulk_night: the whole citizens table at 03:10.
    add("bulk_night", "bulk_night",
        "analyst_li (psql) reads all of sim.citizens at 03:10",
        [(d0 + 3 * HOUR + 10 * MINUTE, "bulk_citizens", "select * from sim.citizens", ())])

    # 2. drip: 30 citizens with name, id_number, phone every 4 minutes,
    # 00:30–05:00; each read is ordinary for analyst_wang (the shape of his
    # daytime batch lookups), the time and the total are not.
    items = []
    t, x = d0 + 30 * MINUTE, 5001
    while t <= d0 + 5 * HOUR:
        items.append((t, "drip_batch",
                      "select name, id_number, phone from sim.citizens where id between %s and %s",
                      (x, x + 29)))
        t += 4 * MINUTE
        x += 30
    add("drip", "drip", "analyst_wang (DBeaver) reads 30 citizens every 4 min, 00:30–05:00",
        items)

    # 3a. enumeration_pg: ids 1..2000 one by one, literals, 11:00–11:40.
    t0, span = d0 + 11 * HOUR, 40 * MINUTE
    add("enumeration_pg", "enumeration_pg",
        "analyst_li (psql) walks sim.citizens ids 1..2000 one by one, 11:00–11:40",
        [(t0 + k * span / ENUM_PG_IDS, "enum_citizen", "select * from sim.citizens where id = %s",
          (k + 1,)) for k in range(ENUM_PG_IDS)])

    # 3b. enumeration_mysql: employee ids 1..2500, bound parameter, 14:00–14:40.
    t0 = d0 + 14 * HOUR
    add("enumeration_mysql", "enumeration_mysql",
        "analyst_zhao (prepared) walks employee ids 1..2500, 14:00–14:40",
        [(t0 + k * span / ENUM_MYSQL_IDS, "enum_employee", "select * from employees where id = %s",
          (k + 1,)) for k in range(ENUM_MYSQL_IDS)])

    # 4. new_app_catalogue: a never-seen user and application reads the
    # catalogue, then every sim table whole, from 10:00.
    items = []
    t = d0 + 10 * HOUR
    for q in CATALOGUE_QUERIES:
        items.append((t, "catalogue", q, ()))
        t += 5
    for table in SIM_TABLES:
        t += 30
        items.append((t, "dump_table", f"select * from {table}", ()))
    add("new_app_catalogue", "new_app_catalogue",
        "etl_new (etl-loader, never seen) reads 40 catalogue relations, then every sim table, 10:00",
        items)

    # 5. network_switch: hr_app's credentials and application name from a new
    # network, bulk reads, 13:00.
    t = d0 + 13 * HOUR
    items = []
    for label, sql in [
        ("dump_employees", "select * from employees"),
        ("dump_payroll", "select * from payroll"),
        ("dump_leave", "select * from leave_requests"),
        ("employees_pay", "select e.id, e.name, e.id_number, e.phone, e.dept, p.net_pay "
                          "from employees e join payroll p on p.employee_id = e.id "
                          "where p.period = '2026-10'"),
    ]:
        items.append((t, label, sql, ()))
        t += MINUTE
    add("network_switch", "network_switch",
        f"hr_app (hr-portal) from {SWITCHED_ADDRESS} reads employees, payroll, leave whole, 13:00",
        items)
    return scenarios, acts


# ---------------------------------------------------------------- the plan


@dataclass
class Plan:
    seed: int
    actions: List[Action]
    scenarios: List[Scenario]

    def window(self, t_from: float, t_until: float) -> List[Action]:
        return [a for a in self.actions if t_from <= a.t < t_until]

    def by_stream(self, actions: Optional[Iterable[Action]] = None) -> Dict[str, List[Action]]:
        out: Dict[str, List[Action]] = {}
        for a in (self.actions if actions is None else actions):
            out.setdefault(a.stream, []).append(a)
        return out


def plan(seed: int = 1, scenarios: bool = True) -> Plan:
    """The whole week, sorted by time (ties by stream name)."""
    acts: List[Action] = []
    for i in range(NUM_DAYS):
        for planner in NORMAL_PLANNERS.values():
            acts.extend(planner(seed, i))
    scen: List[Scenario] = []
    if scenarios:
        scen, sacts = plan_scenarios(seed)
        acts.extend(sacts)
    gap0, gap1 = RESTART_GAP
    acts = [a for a in acts if not (gap0 <= a.t < gap1)]
    acts.sort(key=lambda a: (a.t, a.stream))
    return Plan(seed, acts, scen)


def summary(p: Plan) -> Dict[str, Dict[str, int]]:
    """Planned statements per stream and day (for `simulate.py plan`)."""
    out: Dict[str, Dict[str, int]] = {}
    for a in p.actions:
        row = out.setdefault(a.stream, {d: 0 for d in DAY_NAMES})
        row[DAY_NAMES[day_index(a.t)]] += 1
    return out


def peak_rate(p: Plan, window: float = 10 * MINUTE) -> Tuple[int, float]:
    """The most statements planned in any `window` of sim time (all streams)
    and when that window starts."""
    ts = [a.t for a in p.actions]
    best, at, j = 0, 0.0, 0
    for k, t in enumerate(ts):
        while ts[j] < t - window:
            j += 1
        if k - j + 1 > best:
            best, at = k - j + 1, ts[j]
    return best, at
