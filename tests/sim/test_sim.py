"""Unit tests of the simulator's pure parts: the plan (determinism, phase
splits, the restart gap, volumes, the scenarios), the clock, the generated
employee data, the webhook receiver and the report's attribution. No database
is needed: `python3 tests/sim/simulate.py selftest`.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import threading
import tomllib
import unittest
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import sim_plan as P  # noqa: E402
import sim_receiver as Rcv  # noqa: E402
import sim_report as R  # noqa: E402
import sim_setup as S  # noqa: E402
import simulate  # noqa: E402

PLAN = P.plan(1)


def at(day: str, hhmm: str) -> float:
    return P.parse_time(f"{day} {hhmm}")


class PlanTest(unittest.TestCase):
    def test_deterministic(self):
        again = P.plan(1)
        self.assertEqual(PLAN.actions, again.actions)
        self.assertNotEqual(PLAN.actions, P.plan(2).actions)

    def test_phase_split_plans_the_same(self):
        a, b, c = P.WEEK_START, P.RESTART_GAP[0], P.WEEK_END
        self.assertEqual(PLAN.window(a, b) + PLAN.window(b, c), PLAN.window(a, c))
        self.assertEqual(len(PLAN.window(a, c)), len(PLAN.actions))

    def test_nothing_in_the_restart_gap(self):
        g0, g1 = P.RESTART_GAP
        self.assertEqual(P.fmt(g0), "Sun 23:30")
        self.assertEqual(P.fmt(g1), "Mon 01:00")
        self.assertFalse([a for a in PLAN.actions if g0 <= a.t < g1])

    def test_sorted_and_within_the_week(self):
        ts = [a.t for a in PLAN.actions]
        self.assertEqual(ts, sorted(ts))
        self.assertGreaterEqual(ts[0], P.WEEK_START)
        self.assertLess(ts[-1], P.WEEK_END)

    def test_volume_fits_the_budget(self):
        self.assertLess(len(PLAN.actions), 60000)
        self.assertGreater(len(PLAN.actions), 15000)

    def test_weekends_and_hours(self):
        by = PLAN.by_stream()
        for s in ("analyst_li", "analyst_wang", "hr_app", "hr_clerk", "analyst_zhao"):
            days = {P.DAY_NAMES[P.day_index(a.t)] for a in by[s]}
            self.assertEqual(days, {"Wed", "Thu", "Fri", "Mon", "Tue"}, s)
        for a in by["portal_svc"]:
            self.assertTrue(7 <= P.local(a.t).hour < 23, P.fmt(a.t))
        for a in by["analyst_li"] + by["analyst_wang"]:
            h = P.hour_of(a.t)
            self.assertTrue(8.6 <= h < 12.25 or 13.75 <= h < 18.5, P.fmt(a.t))
        reports = by["report_job"]
        self.assertEqual(len(reports), 7 * 5)
        for a in reports:
            self.assertTrue(2.0 <= P.hour_of(a.t) <= 2.4, P.fmt(a.t))
        # Weekend portal traffic is about half a weekday's.
        wd = sum(1 for a in by["portal_svc"] if P.day_index(a.t) == 0)
        we = sum(1 for a in by["portal_svc"] if P.day_index(a.t) == 3)
        self.assertTrue(0.35 < we / wd < 0.65, (we, wd))

    def test_portal_peaks_late_morning_and_afternoon(self):
        per_hour = [0] * 24
        for a in PLAN.by_stream()["portal_svc"]:
            if P.day_index(a.t) == P.MONDAY:
                per_hour[P.local(a.t).hour] += 1
        self.assertIn(max(range(24), key=lambda h: per_hour[h]), (10, 11, 14, 15), per_hour)
        self.assertGreater(per_hour[11], 3 * per_hour[21], per_hour)
        self.assertLess(per_hour[12], 0.8 * per_hour[11], per_hour)  # lunch
        self.assertLess(per_hour[12], 0.8 * per_hour[15], per_hour)

    def test_only_the_scenarios_are_new_on_tuesday(self):
        """Every statement shape of the normal streams on Mon/Tue was seen
        during learning (no normal-traffic novelty to alert on)."""
        learn = {(a.stream, a.label) for a in PLAN.actions if P.day_index(a.t) < P.LEARNING_DAYS}
        for a in PLAN.actions:
            if P.day_index(a.t) >= P.LEARNING_DAYS and not P.STREAMS[a.stream].scenario:
                self.assertIn((a.stream, a.label), learn, P.fmt(a.t))

    def test_judged_days_use_only_hours_seen_while_learning(self):
        """Each normal stream's (kind of day, hour) on Monday and Tuesday was
        used on a learning day of the same kind: an identity active in an
        hour it was never seen in is exactly what the drip scenario is."""
        kind = lambda i: "weekend" if P.is_weekend(i) else "weekday"  # noqa: E731
        for seed in (1, 2, 3):
            p = P.plan(seed, scenarios=False)
            seen, used = {}, {}
            for a in p.actions:
                i = P.day_index(a.t)
                key = (kind(i), P.local(a.t).hour)
                target = seen if i < P.LEARNING_DAYS else used
                target.setdefault(a.stream, set()).add(key)
            for stream, hours in used.items():
                self.assertLessEqual(hours, seen.get(stream, set()),
                                     f"seed {seed}: {stream} uses {sorted(hours - seen[stream])}")

    def test_scenarios(self):
        sc = {s.name: s for s in PLAN.scenarios}
        self.assertEqual(set(sc), {"bulk_night", "drip", "enumeration_pg", "enumeration_mysql",
                                   "new_app_catalogue", "network_switch"})
        self.assertEqual(P.fmt(sc["bulk_night"].start), "Tue 03:10")
        by = PLAN.by_stream()
        drip = by["drip"]
        self.assertEqual(P.fmt(drip[0].t), "Tue 00:30")
        self.assertLessEqual(drip[-1].t, at("Tue", "05:00"))
        for x, y in zip(drip, drip[1:]):
            self.assertEqual(y.t - x.t, 240)
            self.assertEqual(y.params[0], x.params[0] + 30)
            self.assertEqual(x.params[1] - x.params[0], 29)
        enum = by["enumeration_pg"]
        self.assertEqual([a.params[0] for a in enum], list(range(1, 2001)))
        self.assertTrue(at("Tue", "11:00") <= enum[0].t and enum[-1].t < at("Tue", "11:40"))
        enum = by["enumeration_mysql"]
        self.assertEqual([a.params[0] for a in enum], list(range(1, 2501)))
        self.assertTrue(at("Tue", "14:00") <= enum[0].t and enum[-1].t < at("Tue", "14:40"))
        cat = by["new_app_catalogue"]
        self.assertGreaterEqual(sum(1 for a in cat if a.label == "catalogue"), 40)
        self.assertEqual({a.sql for a in cat if a.label == "dump_table"},
                         {f"select * from {t}" for t in P.SIM_TABLES})
        self.assertEqual(P.STREAMS["network_switch"].network, "127.1.0.0/24")
        self.assertEqual(P.STREAMS["network_switch"].identity, "hr_app|hr-portal|127.1.0.0/24")
        self.assertEqual(sc["network_switch"].network, "127.1.0.0/24")
        self.assertIsNone(sc["enumeration_mysql"].network)
        # The etl user appears nowhere before.
        self.assertFalse([a for a in PLAN.actions if P.STREAMS[a.stream].user == "etl_new"
                          and a.stream != "new_app_catalogue"])

    def test_drip_looks_like_the_analysts_own_batch_reads(self):
        wang = {a.sql for a in PLAN.by_stream()["analyst_wang"]}
        self.assertIn(PLAN.by_stream()["drip"][0].sql, wang)

    def test_placeholders_match_params(self):
        for a in PLAN.actions:
            self.assertEqual(a.sql.count("%s"), len(a.params), a)


class ClockTest(unittest.TestCase):
    def test_inverse_and_speed(self):
        c = P.Clock(P.WEEK_START, 1795000000.5, 8640.0)
        self.assertEqual(c.sim(1795000000.5), P.WEEK_START)
        self.assertAlmostEqual(c.sim(1795000010.5), P.WEEK_START + P.DAY)
        for t in (P.WEEK_START, P.WEEK_START + 12345.6):
            self.assertAlmostEqual(c.sim(c.real(t)), t, places=2)

    def test_parse_time(self):
        self.assertEqual(P.parse_time("2026-11-04T00:00:00+08:00"), P.WEEK_START)
        self.assertEqual(P.parse_time("2026-11-04T00:00:00"), P.WEEK_START)
        self.assertEqual(P.parse_time("Wed 00:00"), P.WEEK_START)
        self.assertEqual(P.parse_time("mon01:00"), P.WEEK_START + 5 * P.DAY + P.HOUR)
        self.assertEqual(P.parse_time("end"), P.WEEK_END)
        self.assertEqual(P.parse_time(str(P.WEEK_START)), P.WEEK_START)
        self.assertEqual(P.fmt(P.parse_time("Tue 14:40")), "Tue 14:40")

    def test_week_starts_on_a_wednesday_in_shanghai(self):
        self.assertEqual(P.local(P.WEEK_START).strftime("%A %H:%M %z"), "Wednesday 00:00 +0800")


class DataTest(unittest.TestCase):
    def test_employee_id_numbers_and_phones(self):
        rows = S.employee_rows(200)
        self.assertEqual(rows, S.employee_rows(200))
        for (_id, name, idn, phone, dept, _h, _e) in rows:
            self.assertEqual(len(idn), 18)
            self.assertTrue(idn.startswith("110101"))
            self.assertEqual(S.id_check(idn[:17]), idn[17])
            self.assertTrue(phone.isdigit() and len(phone) == 11 and phone[0] == "1")
            self.assertIn(dept, P.DEPTS)
            self.assertTrue(1 <= len(name) <= 3)
        self.assertEqual(S.id_check("11010519491231002"), "X")  # the standard's example

    def test_sql_mentions_every_table(self):
        text = "\n".join(S.pg_setup_sql())
        for t in P.SIM_TABLES:
            self.assertIn(f"create table {t}", text)


class ConfigTest(unittest.TestCase):
    def test_config_sections_parse(self):
        c = P.Clock(P.WEEK_START, 1795000000.5, 8640.0)
        text = simulate.config_toml("/tmp/b", "http://127.0.0.1:9/alerts", c)
        doc = tomllib.loads(text)
        self.assertEqual(doc["behaviour"]["window"], "10m")
        self.assertEqual(doc["behaviour"]["learning"], "5d")
        self.assertEqual(doc["behaviour"]["store"], "disk")
        self.assertEqual(doc["behaviour"]["clock"]["start"], "2026-11-04T00:00:00+08:00")
        self.assertEqual(doc["behaviour"]["clock"]["anchor"], 1795000000.5)
        self.assertEqual(doc["behaviour"]["clock"]["speed"], 8640.0)
        self.assertEqual(doc["alerts"]["suppress"], "0s")
        self.assertEqual(doc["alerts"]["webhook"]["url"], "http://127.0.0.1:9/alerts")
        self.assertTrue(doc["policy"]["dir"].endswith("tests/sim/policy"))

    def test_policy_pack(self):
        rules = []
        for f in sorted((HERE / "policy").glob("*.toml")):
            doc = tomllib.loads(f.read_text())
            rules += doc.get("rule", [])
            if "policy" in doc:
                self.assertEqual(doc["policy"]["default_action"], "allow")
                self.assertEqual(doc["policy"]["unparsed_action"], "allow")
        self.assertEqual(len(rules), 1)
        self.assertEqual(rules[0]["id"], "anomaly-alert")
        self.assertEqual(rules[0]["action"], "alert")
        self.assertEqual(rules[0]["anomaly"], 6.0)
        cls = tomllib.loads((HERE / "classification.toml").read_text())
        tagged = {(c["table"], c["column"]): c["tags"] for c in cls["column"]}
        self.assertEqual(tagged[("sim.citizens", "id_number")], ["pii.id_number"])
        self.assertEqual(tagged[("sim.citizens", "phone")], ["pii.phone"])
        self.assertEqual(tagged[("sim.citizens", "name")], ["pii.name"])
        self.assertEqual(tagged[("simhr.employees", "id_number")], ["pii.id_number"])
        self.assertEqual(tagged[("simhr.employees", "phone")], ["pii.phone"])


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class ReceiverTest(unittest.TestCase):
    def test_posts_are_recorded(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "alerts.jsonl")
            port = free_port()
            sink = Rcv.AlertSink(out)
            from http.server import ThreadingHTTPServer
            srv = ThreadingHTTPServer(("127.0.0.1", port), Rcv.make_handler(sink))
            th = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                                  daemon=True)
            th.start()
            try:
                def post(body: bytes):
                    req = urllib.request.Request(f"http://127.0.0.1:{port}/alerts", data=body,
                                                 headers={"Content-Type": "application/json"})
                    with urllib.request.urlopen(req, timeout=5) as r:
                        return r.status
                self.assertEqual(post(json.dumps({"type": "danxia.alert", "score": 7.5}).encode()), 200)
                self.assertEqual(post(json.dumps([{"alert_id": "a"}, {"alert_id": "b"}]).encode()), 200)
                self.assertEqual(post(b"not json"), 200)
            finally:
                srv.shutdown()
                srv.server_close()
                sink.close()
            alerts, invalid = Rcv.read_alerts(out)
            self.assertEqual([a.get("score") for a in alerts], [7.5, None, None])
            self.assertEqual([a.get("alert_id") for a in alerts[1:]], ["a", "b"])
            self.assertTrue(all(isinstance(a["_received"], float) for a in alerts))
            self.assertEqual(len(invalid), 1)


def alert(user, t, app="psql", net="127.0.0.0/24", score=8.0, **extra):
    a = {"type": "danxia.alert", "behaviour_time": t, "score": score, "reason": "anomaly",
         "rule": "anomaly-alert",
         "who": {"user": user, "application": app, "network": net,
                 "identity": f"{user}|{app}|{net}"},
         "why": {"rules": ["anomaly-alert"], "evidence": [
             {"measure": "rows_per_statement", "subject": "sim.citizens", "observed": 20000,
              "expected": 35, "score": score, "text": f"{user} read a lot"},
             {"measure": "hour_of_day", "observed": 3, "expected": 10, "score": 1.0}]}}
    a.update(extra)
    return a


def phases(clock=None):
    clock = clock or P.Clock(P.WEEK_START, 1000.0, 8640.0)
    return [{"from": P.WEEK_START, "until": P.WEEK_END, "from_at": "Wed 00:00",
             "until_at": "Wed 00:00", "clock": clock.to_json(), "seed": 1, "real_seconds": 70,
             "streams": {"portal_svc": {"identity": "portal_svc|gov-portal|127.0.0.0/24",
                                        "planned": 10, "sent": 10, "ok": 10, "rows": 10,
                                        "errors": 0, "refused": 0, "lag_max_min": 0.5,
                                        "error_samples": []}},
             "scenarios": [{"name": s.name, "stream": s.stream, "planned_start": s.start,
                            "planned_end": s.end, "actual_start": s.start,
                            "actual_end": s.end} for s in PLAN.scenarios]}]


class ReportTest(unittest.TestCase):
    def test_attribution_and_goals(self):
        alerts = [
            alert("analyst_li", at("Tue", "03:12")),                       # bulk_night
            alert("analyst_wang", at("Tue", "01:30"), app="DBeaver"),      # drip
            alert("analyst_li", at("Tue", "11:05")),                       # enumeration_pg
            alert("analyst_zhao", at("Tue", "14:02"), app="hr-analytics"), # enumeration_mysql
            alert("etl_new", at("Tue", "10:00"), app="etl-loader"),        # new_app
            alert("hr_app", at("Tue", "13:01"), app="hr-portal", net="127.1.0.0/24"),
            alert("portal_svc", at("Thu", "11:00"), app="gov-portal"),     # learning-day false
        ]
        r = R.build(alerts, phases())
        det = {s["name"]: s for s in r["scenarios"]}
        self.assertTrue(all(s["detected"] for s in det.values()), det)
        self.assertEqual(det["bulk_night"]["latency_min"], 2.0)
        self.assertEqual(det["new_app_catalogue"]["latency_min"], 0.0)
        self.assertEqual(det["bulk_night"]["first_alert"]["evidence"], "analyst_li read a lot")
        self.assertEqual(r["false_alerts_per_day"]["Thu"], 1)
        self.assertEqual(r["false_alerts_learning"], 1)
        self.assertTrue(r["goals"]["met"], r["goals"])
        text = R.render(r)
        self.assertIn("bulk_night", text)
        self.assertIn("GOALS", text)

    def test_false_alerts_on_judged_days(self):
        alerts = [
            # hr_app from its usual network during network_switch: false.
            alert("hr_app", at("Tue", "13:01"), app="hr-portal"),
            # analyst_li in the afternoon, outside both of his scenarios: false.
            alert("analyst_li", at("Tue", "16:00")),
            # after the grace hour of bulk_night (03:10 + 60 min): false.
            alert("analyst_li", at("Tue", "04:11")),
            alert("portal_svc", at("Mon", "11:00"), app="gov-portal"),
        ]
        r = R.build(alerts, phases())
        self.assertEqual(r["false_alerts_monday"], 1)
        self.assertEqual(r["false_alerts_tuesday"], 3)
        self.assertFalse(r["goals"]["met"])
        missed = " ".join(r["goals"]["missed"])
        self.assertIn("network_switch not detected", missed)
        self.assertIn("false alerts on Mon", missed)

    def test_late_scenario_end_extends_attribution(self):
        ph = phases()
        for sc in ph[0]["scenarios"]:
            if sc["name"] == "enumeration_pg":
                sc["actual_end"] = at("Tue", "12:30")
        r = R.build([alert("analyst_li", at("Tue", "13:20"))], ph)
        self.assertEqual(r["false_alerts_tuesday"], 0)

    def test_time_fallback_and_tolerance(self):
        c = P.Clock(P.WEEK_START, 1000.0, 8640.0)
        real = c.real(at("Tue", "03:20"))
        from datetime import datetime, timezone
        a = {"who": {"identity": "analyst_li|psql|127.0.0.0/24"},
             "time": datetime.fromtimestamp(real, timezone.utc).isoformat()}
        r = R.build([a], phases(c))
        det = {s["name"]: s for s in r["scenarios"]}
        self.assertTrue(det["bulk_night"]["detected"])
        self.assertEqual(det["bulk_night"]["latency_min"], 10.0)
        self.assertEqual(R.top_evidence({})[0], "no evidence")

    def test_errors_and_refusals_are_goals(self):
        ph = phases()
        ph[0]["streams"]["portal_svc"]["errors"] = 9
        ph[0]["streams"]["portal_svc"]["refused"] = 2
        r = R.build([], ph)
        missed = " ".join(r["goals"]["missed"])
        self.assertIn("9 client errors", missed)
        self.assertIn("2 statements of normal traffic refused", missed)


if __name__ == "__main__":
    unittest.main()
