#!/usr/bin/env python3
"""The behaviour workload simulator for danxia: plays a realistic week of
several applications and analysts through danxia against the real PostgreSQL
and MariaDB on a scaled clock (1 simulated day = 10 s by default), injects
five attack scenarios on the last day, and reports which ones danxia's
behaviour baselines caught, how fast, and how many false alerts the normal
traffic raised. See tests/sim/README.md.

Subcommands (each a step the e2e test `tests/tests/behaviour_sim.rs` and
`bench/sim.sh` run in order):

  setup     create schema `sim` (PostgreSQL), database `simhr` (MariaDB), the
            actors' roles/users and their rows, straight on the servers
  receive   the alert webhook: append every POSTed alert to a JSON-lines file
  config    print danxia's configuration sections for the simulation
            ([policy], [behaviour], [behaviour.clock], [alerts])
  run       play the plan between two sim times through danxia (a phase)
  report    attribute the alerts, print the report, write it as JSON; exit
            status 1 when a goal is missed
  plan      print what the plan holds (statements per stream and day, peak
            rate); `--json FILE` dumps every action
  selftest  the simulator's own unit tests (no database needed)

Everything is deterministic for a given --seed: the same statements with the
same parameters at the same sim times.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import sim_plan as P  # noqa: E402

DEFAULT_POLICY_DIR = HERE / "policy"
DEFAULT_CLASSIFICATION = HERE / "classification.toml"


def log(msg: str) -> None:
    print(f"[sim {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def config_toml(behaviour_dir: str, webhook_url: str, clock: P.Clock,
                policy_dir: Path = DEFAULT_POLICY_DIR,
                classification: Path = DEFAULT_CLASSIFICATION) -> str:
    """danxia's configuration sections for a simulation run (appended to a
    config that has the listeners, [admin] and [audit])."""
    return f"""# --- behaviour simulation (tests/sim/simulate.py config) ---
[policy]
dir = {toml_str(str(policy_dir))}
classification = {toml_str(str(classification))}

[behaviour]
enabled = true
store = "disk"
dir = {toml_str(behaviour_dir)}
window = "10m"
learning = "5d"
sync_interval = "1s"

[behaviour.clock]
start = {toml_str(P.iso(clock.start))}
anchor = {clock.anchor:.3f}
speed = {clock.speed:.1f}

[alerts]
suppress = "0s"

[alerts.webhook]
url = {toml_str(webhook_url)}
"""


def cmd_setup(a) -> int:
    import sim_setup as S

    if not a.skip_pg:
        S.setup_pg(a.pg_dsn, log=log)
    if not a.skip_mysql:
        S.setup_mysql(a.mysql_host, a.mysql_port, a.mysql_user, a.mysql_password, log=log)
    return 0


def cmd_receive(a) -> int:
    import sim_receiver as R

    R.serve(a.port, a.out, log=log)
    return 0


def _clock(a) -> P.Clock:
    return P.Clock(P.parse_time(a.clock_start), float(a.anchor), float(a.speed))


def cmd_config(a) -> int:
    url = a.webhook_url or f"http://127.0.0.1:{a.webhook_port}/alerts"
    sys.stdout.write(config_toml(a.behaviour_dir, url, _clock(a), Path(a.policy_dir),
                                 Path(a.classification)))
    return 0


def load_plan(seed: int, scenarios: bool, cache) -> P.Plan:
    """The plan, from `cache` (a pickle) when it holds this seed's plan:
    computing it takes most of a second, and a phase that starts right after
    a restart should not spend sim hours on it."""
    import pickle

    key = (P.PLAN_VERSION, seed, scenarios)
    if cache and os.path.exists(cache):
        try:
            with open(cache, "rb") as f:
                k, plan = pickle.load(f)
            if k == key:
                return plan
        except Exception:  # noqa: BLE001 — a stale or broken cache is recomputed
            pass
    plan = P.plan(seed, scenarios=scenarios)
    if cache:
        tmp = f"{cache}.{os.getpid()}"
        with open(tmp, "wb") as f:
            pickle.dump((key, plan), f)
        os.replace(tmp, cache)
    return plan


def cmd_run(a) -> int:
    import sim_run as R

    clock = _clock(a)
    plan = load_plan(a.seed, not a.no_scenarios, a.plan_cache)
    t_from, t_until = P.parse_time(a.from_), P.parse_time(a.until)
    if t_until <= t_from:
        log(f"run: --until {a.until} is not after --from {a.from_}")
        return 2
    stats = R.run_window(plan, clock, t_from, t_until, a.host,
                         {"pg": a.pg_port, "mysql": a.mysql_port}, log=log,
                         wait_until_end=not a.no_wait_end)
    if a.stats:
        with open(a.stats, "w", encoding="utf-8") as f:
            json.dump(stats, f, ensure_ascii=False, indent=1)
    errors = sum(s["errors"] for s in stats["streams"].values())
    return 0 if errors <= a.max_errors else 1


def cmd_report(a) -> int:
    import sim_receiver as Rcv
    import sim_report as R

    phases = []
    for path in a.stats:
        with open(path, encoding="utf-8") as f:
            phases.append(json.load(f))
    alerts, invalid = Rcv.read_alerts(a.alerts)
    r = R.build(alerts, phases, invalid=len(invalid), max_errors=a.max_errors)
    print(R.render(r), flush=True)
    if a.report:
        R.write_json(r, a.report)
        log(f"report: written to {a.report}")
    return 0 if r["goals"]["met"] else 1


def cmd_plan(a) -> int:
    plan = load_plan(a.seed, not a.no_scenarios, a.plan_cache)
    summ = P.summary(plan)
    print(f"{'stream':<19}" + "".join(f"{d:>7}" for d in P.DAY_NAMES) + f"{'total':>8}  identity")
    for name, row in sorted(summ.items()):
        print(f"{name:<19}" + "".join(f"{row[d]:>7}" for d in P.DAY_NAMES)
              + f"{sum(row.values()):>8}  {P.STREAMS[name].identity}")
    print(f"{'all':<19}" + "".join(f"{sum(r[d] for r in summ.values()):>7}" for d in P.DAY_NAMES)
          + f"{len(plan.actions):>8}")
    normal = P.plan(a.seed, scenarios=False)
    n, at = P.peak_rate(normal)
    print(f"busiest 10 sim minutes of normal traffic: {n} statements from {P.fmt(at)} "
          f"(= {n * P.DEFAULT_SPEED / 600:.0f} statements per real second at speed {P.DEFAULT_SPEED:g})")
    for s in plan.scenarios:
        print(f"scenario {s.name:<18} {P.fmt(s.start)} .. {P.fmt(s.end)}  {s.what}")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            for act in plan.actions:
                f.write(json.dumps(act.to_json(), ensure_ascii=False) + "\n")
    return 0


def cmd_selftest(a) -> int:
    import unittest

    suite = unittest.defaultTestLoader.discover(str(HERE), pattern="test_sim.py")
    res = unittest.TextTestRunner(verbosity=2 if a.verbose else 1).run(suite)
    return 0 if res.wasSuccessful() else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="simulate.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("setup", help="create schemas, rows, roles and users (direct)")
    s.add_argument("--pg-dsn", default="host=127.0.0.1 port=5432 user=postgres dbname=test")
    s.add_argument("--mysql-host", default="127.0.0.1")
    s.add_argument("--mysql-port", type=int, default=3306)
    s.add_argument("--mysql-user", default="root")
    s.add_argument("--mysql-password", default=os.environ.get("MYSQL_PWD", ""))
    s.add_argument("--skip-pg", action="store_true")
    s.add_argument("--skip-mysql", action="store_true")
    s.set_defaults(f=cmd_setup)

    s = sub.add_parser("receive", help="the alert webhook receiver")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--out", required=True, help="JSON-lines file the alerts are appended to")
    s.set_defaults(f=cmd_receive)

    def clock_args(s):
        s.add_argument("--clock-start", default=P.iso(P.WEEK_START),
                       help="sim time the clock reads at --anchor (ISO 8601, 'Mon 00:00', unix)")
        s.add_argument("--anchor", required=True, help="real unix time (seconds, float)")
        s.add_argument("--speed", type=float, default=P.DEFAULT_SPEED,
                       help="sim seconds per real second (default %(default)s: 1 day = 10 s)")

    s = sub.add_parser("config", help="print danxia's config sections for the simulation")
    clock_args(s)
    s.add_argument("--behaviour-dir", required=True)
    s.add_argument("--webhook-port", type=int)
    s.add_argument("--webhook-url")
    s.add_argument("--policy-dir", default=str(DEFAULT_POLICY_DIR))
    s.add_argument("--classification", default=str(DEFAULT_CLASSIFICATION))
    s.set_defaults(f=cmd_config)

    s = sub.add_parser("run", help="play [--from, --until) of the plan through danxia")
    clock_args(s)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--pg-port", type=int, required=True, help="danxia's PostgreSQL listener")
    s.add_argument("--mysql-port", type=int, required=True, help="danxia's MySQL listener")
    s.add_argument("--from", dest="from_", default="Wed 00:00")
    s.add_argument("--until", default="end")
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--no-scenarios", action="store_true", help="normal traffic only")
    s.add_argument("--no-wait-end", action="store_true",
                   help="return after the last statement instead of at --until")
    s.add_argument("--stats", help="write the phase's statistics (JSON) here")
    s.add_argument("--plan-cache", help="pickle of the plan: read when it matches, else written")
    s.add_argument("--max-errors", type=int, default=1000000,
                   help="exit 1 when the phase had more client errors than this")
    s.set_defaults(f=cmd_run)

    s = sub.add_parser("report", help="judge the run and print the report")
    s.add_argument("--alerts", required=True)
    s.add_argument("--stats", nargs="+", required=True, help="the phases' statistics files")
    s.add_argument("--report", help="write the report as JSON here")
    s.add_argument("--max-errors", type=int, default=5)
    s.set_defaults(f=cmd_report)

    s = sub.add_parser("plan", help="show the plan")
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--no-scenarios", action="store_true")
    s.add_argument("--json", help="write every action as a JSON line here")
    s.add_argument("--plan-cache", help="also write the plan here for `run --plan-cache`")
    s.set_defaults(f=cmd_plan)

    s = sub.add_parser("selftest", help="unit tests of the simulator")
    s.add_argument("-v", "--verbose", action="store_true")
    s.set_defaults(f=cmd_selftest)

    a = ap.parse_args(argv)
    return a.f(a)


if __name__ == "__main__":
    sys.exit(main())
