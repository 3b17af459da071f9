"""Creates what the simulation runs against, straight on the databases (never
through danxia): the PostgreSQL schema `sim` and the MariaDB database
`simhr`, their rows, and the login roles / users of the actors.

Idempotent and deterministic: every run rebuilds both datasets from scratch
(the hr application writes to `leave_requests`, so a second run must not see
the first one's rows) under a lock, and the same rows come out every time.
Roles and users are created when missing and their grants re-applied; nothing
else on either server is touched.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from pathlib import Path
from typing import List, Tuple

import sim_plan as P

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "citizens.sql"
#: Seed of `danxia_citizens(n, seed)` for sim.citizens.
CITIZENS_SEED = 7
PG_LOCK = 727274  # pg_advisory_xact_lock key of the set-up
MYSQL_LOCK = "danxia_sim_setup"

DISTRICT_NAMES = {
    "110101": ("东城区", "北京市", 708829), "110105": ("朝阳区", "北京市", 3452460),
    "310104": ("徐汇区", "上海市", 1113078), "310115": ("浦东新区", "上海市", 5681512),
    "440305": ("南山区", "广东省", 1795826), "440106": ("天河区", "广东省", 2241826),
    "510107": ("武侯区", "四川省", 1205397), "330106": ("西湖区", "浙江省", 1145071),
    "420106": ("武昌区", "湖北省", 1092750), "320102": ("玄武区", "江苏省", 537825),
    "370102": ("历下区", "山东省", 826500), "610113": ("雁塔区", "陕西省", 1665571),
}


def _sql_list(items) -> str:
    return "array[" + ", ".join("'" + s + "'" for s in items) + "]"


def pg_setup_sql() -> List[str]:
    """The statements (after the fixture) that build schema `sim`; run with
    search_path = sim so the fixture's helpers resolve."""
    h = "sim.danxia_hash"
    stmts = [
        "create table sim.districts (code text primary key, name text not null, "
        "province text not null, population int not null)",
        "insert into sim.districts values " + ", ".join(
            f"('{code}', '{n}', '{prov}', {pop})"
            for code, (n, prov, pop) in DISTRICT_NAMES.items()),
        # The fixture's rows plus the district code (the id_number's region).
        f"create table sim.citizens as select c.*, left(c.id_number, 6) as district "
        f"from sim.danxia_citizens({P.CITIZENS}, {CITIZENS_SEED}) c",
        "alter table sim.citizens add primary key (id)",
        "create index on sim.citizens (district)",
        # Services a citizen asked for, 2026-01-01 .. 2026-10-31.
        f"""create table sim.services as
        select g.i as id, c.id as citizen_id, c.district,
               ({_sql_list(P.SERVICE_TYPES)})[1 + {h}(g.i, 101, 1) % {len(P.SERVICE_TYPES)}] as service_type,
               (array['done', 'done', 'done', 'in_progress', 'rejected'])[1 + {h}(g.i, 101, 2) % 5] as status,
               date '2026-01-01' + ({h}(g.i, 101, 3) % 304)::int as opened_on,
               date '2026-01-01' + ({h}(g.i, 101, 3) % 304)::int + ({h}(g.i, 101, 4) % 20)::int as closed_on,
               (array['online', 'counter', 'app'])[1 + {h}(g.i, 101, 5) % 3] as channel
        from generate_series(1, {P.SERVICES}) as g(i)
        join sim.citizens c on c.id = 1 + {h}(g.i, 101, 0) % {P.CITIZENS}""",
        "alter table sim.services add primary key (id)",
        "create index on sim.services (citizen_id)",
        "create index on sim.services (district)",
        # Cases the administration handles about a citizen.
        f"""create table sim.cases as
        select g.i as id, c.id as citizen_id, c.district,
               ({_sql_list(P.CASE_TYPES)})[1 + {h}(g.i, 102, 1) % {len(P.CASE_TYPES)}] as case_type,
               (array['open', 'open', 'open', 'pending', 'pending', 'pending', 'pending',
                      'closed', 'closed', 'closed', 'closed', 'closed', 'closed', 'closed',
                      'closed', 'closed', 'closed', 'closed', 'closed', 'closed'])[1 + {h}(g.i, 102, 2) % 20] as status,
               date '2026-01-01' + ({h}(g.i, 102, 3) % 304)::int as opened_on,
               timestamp '2026-01-01' + ({h}(g.i, 102, 3) % 304 + {h}(g.i, 102, 4) % 30) * interval '1 day'
                   + ({h}(g.i, 102, 5) % 36000) * interval '1 second' as updated_at,
               'officer_' || (1 + {h}(g.i, 102, 6) % 40) as officer
        from generate_series(1, {P.CASES}) as g(i)
        join sim.citizens c on c.id = 1 + {h}(g.i, 102, 0) % {P.CITIZENS}""",
        "alter table sim.cases add primary key (id)",
        "create index on sim.cases (district, status)",
        "create index on sim.cases (citizen_id)",
        # Permits issued 2021-01-01 .. 2026-10-31.
        f"""create table sim.permits as
        select g.i as id, c.id as citizen_id, c.district,
               ({_sql_list(P.PERMIT_TYPES)})[1 + {h}(g.i, 103, 1) % {len(P.PERMIT_TYPES)}] as permit_type,
               (array['valid', 'valid', 'valid', 'expired', 'revoked'])[1 + {h}(g.i, 103, 2) % 5] as status,
               date '2021-01-01' + ({h}(g.i, 103, 3) % 2130)::int as issued_on,
               date '2021-01-01' + ({h}(g.i, 103, 3) % 2130)::int + 365 * (1 + {h}(g.i, 103, 4) % 5)::int as expires_on
        from generate_series(1, {P.PERMITS}) as g(i)
        join sim.citizens c on c.id = 1 + {h}(g.i, 103, 0) % {P.CITIZENS}""",
        "alter table sim.permits add primary key (id)",
        "create index on sim.permits (district)",
        "create index on sim.permits (citizen_id)",
    ]
    users = ", ".join(P.PG_USERS)
    stmts += [
        f"grant usage on schema sim to {users}",
        f"grant select on all tables in schema sim to {users}",
    ]
    return stmts


def setup_pg(dsn: str, log=print) -> None:
    import psycopg2

    conn = psycopg2.connect(dsn)
    try:
        with conn:  # one transaction
            cur = conn.cursor()
            cur.execute("select pg_advisory_xact_lock(%s)", (PG_LOCK,))
            cur.execute("set local client_min_messages = warning")
            for u in P.PG_USERS:
                cur.execute("select 1 from pg_roles where rolname = %s", (u,))
                if cur.fetchone() is None:
                    cur.execute(f"create role {u} login")
                    log(f"setup: created PostgreSQL role {u}")
            cur.execute("drop schema if exists sim cascade")
            cur.execute("create schema sim")
            cur.execute("set local search_path = sim")
            cur.execute(FIXTURE.read_text(encoding="utf-8"))
            for s in pg_setup_sql():
                cur.execute(s)
            cur.execute("select count(*) from sim.citizens")
            n = cur.fetchone()[0]
        # Outside the transaction: VACUUM sets the visibility map, so the
        # analysts' aggregates can be index-only scans.
        conn.autocommit = True
        conn.cursor().execute("vacuum analyze sim.districts, sim.citizens, sim.services, "
                              "sim.cases, sim.permits")
        log(f"setup: PostgreSQL schema sim ready ({n} citizens, {P.SERVICES} services, "
            f"{P.CASES} cases, {P.PERMITS} permits, {len(DISTRICT_NAMES)} districts)")
    finally:
        conn.close()


# ---------------------------------------------------------------- MariaDB

ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚华玉萍红鹏辉建文飞宇浩欣怡婷雪琳晨"
PHONE_PREFIXES = ["130", "131", "132", "135", "136", "137", "138", "139", "150", "151",
                  "152", "155", "158", "159", "166", "177", "180", "186", "188", "199"]


def id_check(body17: str) -> str:
    """GB 11643-1999 (ISO 7064 MOD 11-2) check character of a 17-digit body."""
    s = sum(int(c) * w for c, w in zip(body17, ID_WEIGHTS))
    return "10X98765432"[s % 11]


def employee_rows(n: int = P.EMPLOYEES, seed: int = 11) -> List[Tuple]:
    """(id, name, id_number, phone, dept, hired_on, email): valid-looking
    identity numbers (area 110101, a birth date 1960–2000, a sequence, the
    check character) and mobile numbers, deterministic."""
    rng = random.Random(f"danxia-sim/employees/{seed}")
    rows = []
    for i in range(1, n + 1):
        birth = date(1960, 1, 1) + timedelta(days=rng.randrange(0, 14610))
        body = f"110101{birth:%Y%m%d}{rng.randint(1, 999):03d}"
        idn = body + id_check(body)
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.randint(1, 2)))
        phone = rng.choice(PHONE_PREFIXES) + f"{rng.randrange(0, 10**8):08d}"
        dept = P.DEPTS[rng.randrange(len(P.DEPTS))]
        hired = date(2005, 1, 1) + timedelta(days=rng.randrange(0, 7600))
        rows.append((i, name, idn, phone, dept, hired.isoformat(), f"emp{i:05d}@hr.example.com"))
    return rows


def payroll_rows(employees) -> List[Tuple]:
    rng = random.Random("danxia-sim/payroll")
    rows = []
    for (eid, *_rest) in employees:
        base = rng.randrange(6000, 30000, 100)
        for period in P.PAYROLL_PERIODS:
            bonus = rng.choice([0, 0, 0, 500, 1000, 2000])
            tax = round((base + bonus) * 0.12, 2)
            rows.append((eid, period, base, bonus, tax, round(base + bonus - tax, 2)))
    return rows


def leave_rows(n: int = P.LEAVE_REQUESTS) -> List[Tuple]:
    rng = random.Random("danxia-sim/leave")
    rows = []
    for i in range(1, n + 1):
        start = date(2026, 5, 1) + timedelta(days=rng.randrange(0, 200))
        end = start + timedelta(days=rng.randint(0, 9))
        status = rng.choice(["approved"] * 6 + ["rejected", "cancelled", "pending", "pending"])
        rows.append((i, rng.randint(1, P.EMPLOYEES), rng.choice(P.LEAVE_KINDS),
                     start.isoformat(), end.isoformat(), status))
    return rows


MYSQL_DDL = [
    "create database if not exists simhr character set utf8mb4",
    "drop table if exists simhr.leave_requests, simhr.payroll, simhr.employees",
    """create table simhr.employees (
        id int primary key, name varchar(32) not null, id_number char(18) not null,
        phone char(11) not null, dept varchar(32) not null, hired_on date not null,
        email varchar(64) not null, key (dept)) character set utf8mb4""",
    """create table simhr.payroll (
        id int auto_increment primary key, employee_id int not null, period char(7) not null,
        base_salary decimal(10,2) not null, bonus decimal(10,2) not null,
        tax decimal(10,2) not null, net_pay decimal(10,2) not null,
        key (employee_id), key (period, employee_id)) character set utf8mb4""",
    """create table simhr.leave_requests (
        id int auto_increment primary key, employee_id int not null, kind varchar(16) not null,
        start_date date not null, end_date date not null, status varchar(16) not null,
        decided_at datetime null, key (employee_id), key (status)) character set utf8mb4""",
]


def setup_mysql(host: str, port: int, user: str, password: str, log=print) -> None:
    import pymysql

    conn = pymysql.connect(host=host, port=port, user=user, password=password or "",
                           autocommit=True, charset="utf8mb4")
    try:
        cur = conn.cursor()
        cur.execute("select get_lock(%s, 60)", (MYSQL_LOCK,))
        try:
            for s in MYSQL_DDL:
                cur.execute(s)
            emp = employee_rows()
            cur.executemany("insert into simhr.employees values (%s, %s, %s, %s, %s, %s, %s)", emp)
            cur.executemany("insert into simhr.payroll (employee_id, period, base_salary, bonus, "
                            "tax, net_pay) values (%s, %s, %s, %s, %s, %s)", payroll_rows(emp))
            cur.executemany("insert into simhr.leave_requests (id, employee_id, kind, start_date, "
                            "end_date, status) values (%s, %s, %s, %s, %s, %s)", leave_rows())
            grants = {"hr_app": "select, insert, update", "analyst_zhao": "select",
                      "hr_clerk": "select"}
            for u in P.MYSQL_USERS:
                cur.execute(f"create user if not exists '{u}'@'%%' identified by %s",
                            (P.MYSQL_PASSWORD,))
                cur.execute(f"alter user '{u}'@'%%' identified by %s", (P.MYSQL_PASSWORD,))
                cur.execute(f"grant {grants[u]} on simhr.* to '{u}'@'%'")
        finally:
            cur.execute("do release_lock(%s)", (MYSQL_LOCK,))
        log(f"setup: MariaDB database simhr ready ({len(emp)} employees, "
            f"{len(emp) * len(P.PAYROLL_PERIODS)} payroll rows, {P.LEAVE_REQUESTS} leave requests)")
    finally:
        conn.close()
