"""Judges a simulation: attributes each alert danxia sent to a scenario or
calls it a false alert, measures detection latency, counts false alerts per
simulated day, and prints / returns the report with its goals.

Attribution (the brief's rule): an alert belongs to scenario S when its
`who.user` is S's actor (and, for network_switch, `who.network` is the
switched /24) and its `behaviour_time` lies in [S start, S end + 60 min],
where S end is the later of the planned end and the time the scenario's
last statement actually completed (a slow machine must not turn a late
detection into a false alert). Every other alert is a false alert, counted
on the simulated day of its behaviour time. Detection latency = the first
attributed alert's behaviour time − S start, in sim minutes.

Pure: reads the alert list and the phase statistics it is given; no I/O but
printing.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Dict, List, Optional, Tuple

import sim_plan as P

#: Normal streams may have at most this many errors (connection hiccups).
DEFAULT_MAX_ERRORS = 5
#: A stream later than this (sim minutes) distorted the workload: warned.
LAG_WARN_MIN = 10.0


def _num(x) -> Optional[float]:
    if isinstance(x, bool):
        return None
    if isinstance(x, (int, float)):
        return float(x)
    if isinstance(x, str):
        try:
            return float(x)
        except ValueError:
            try:
                return datetime.fromisoformat(x.replace("Z", "+00:00")).timestamp()
            except ValueError:
                return None
    return None


def alert_time(a: dict, phases: List[dict]) -> Optional[float]:
    """The alert's behaviour (sim) time: `behaviour_time`, else its real
    `time` (or when it was received) mapped through the clock of the phase
    that was running then."""
    t = _num(a.get("behaviour_time"))
    if t is not None:
        return t
    real = _num(a.get("time")) or _num(a.get("_received"))
    if real is None:
        return None
    best = None
    for ph in phases:
        c = ph["clock"]
        clock = P.Clock(c["start_unix"], c["anchor"], c["speed"])
        sim = clock.sim(real)
        if ph["from"] - P.HOUR <= sim <= ph["until"] + P.DAY:
            best = sim
    return best


def who(a: dict) -> Tuple[Optional[str], Optional[str], Optional[str], str]:
    """(user, application, network, identity) of an alert, tolerant of
    missing members (identity is `user|application|network`)."""
    w = a.get("who") or {}
    ident = w.get("identity") or ""
    parts = ident.split("|") if ident else []
    user = w.get("user") or (parts[0] if len(parts) > 0 else None)
    app = w.get("application") or (parts[1] if len(parts) > 1 else None)
    net = w.get("network") or (parts[2] if len(parts) > 2 else None)
    if not ident:
        ident = f"{user}|{app}|{net}"
    return user, app, net, ident


def top_evidence(a: dict) -> Tuple[str, Optional[float]]:
    """(text, score) of the alert's strongest piece of evidence."""
    why = a.get("why") or {}
    ev = [e for e in (why.get("evidence") or []) if isinstance(e, dict)]
    score = _num(a.get("score"))
    if not ev:
        return (a.get("reason") or "no evidence"), score
    e = max(ev, key=lambda e: _num(e.get("score")) or 0.0)
    text = e.get("text")
    if not text:
        text = (f"{e.get('measure', '?')} {e.get('subject', '')}: observed {e.get('observed')}, "
                f"expected {e.get('expected')}").replace("  ", " ")
    return text, score


def _scenario_windows(phases: List[dict]) -> List[dict]:
    """Scenario definitions (from the plan) merged with what the runs saw."""
    by_name: Dict[str, dict] = {}
    plan_scen = {s.name: s for s in P.plan_scenarios(phases[0].get("seed", 1) if phases else 1)[0]}
    for name, s in plan_scen.items():
        by_name[name] = {"name": name, "stream": s.stream, "user": s.user, "network": s.network,
                         "what": s.what, "start": s.start, "end": s.end, "ran": False,
                         "actual_start": None, "actual_end": None}
    for ph in phases:
        for sc in ph.get("scenarios", []):
            d = by_name.get(sc["name"])
            if d is None:
                continue
            if sc.get("actual_start") is not None:
                d["ran"] = True
                d["actual_start"] = sc["actual_start"]
                d["actual_end"] = sc.get("actual_end")
    for d in by_name.values():
        d["attribution_end"] = max(d["end"], d["actual_end"] or d["end"]) + P.ATTRIBUTION_GRACE
    return list(by_name.values())


def attribute(a: dict, t: Optional[float], windows: List[dict]) -> Optional[str]:
    if t is None:
        return None
    user, _app, net, _ident = who(a)
    for w in windows:
        if user != w["user"]:
            continue
        if w["network"] is not None and net != w["network"]:
            continue
        if w["start"] <= t <= w["attribution_end"]:
            return w["name"]
    return None


def build(alerts: List[dict], phases: List[dict], invalid: int = 0,
          max_errors: int = DEFAULT_MAX_ERRORS) -> dict:
    windows = _scenario_windows(phases)
    ran_scenarios = any(w["ran"] for w in windows)
    per_scen: Dict[str, List[Tuple[float, dict]]] = {w["name"]: [] for w in windows}
    false_per_day = {d: 0 for d in P.DAY_NAMES}
    false_other = 0
    false_list = []
    by_identity: Dict[str, int] = {}
    untimed = 0
    for a in alerts:
        t = alert_time(a, phases)
        _u, _app, _net, ident = who(a)
        by_identity[ident] = by_identity.get(ident, 0) + 1
        if t is None:
            untimed += 1
        name = attribute(a, t, windows)
        if name is not None:
            per_scen[name].append((t, a))
            continue
        i = P.day_index(t) if t is not None else -1
        if 0 <= i < P.NUM_DAYS:
            false_per_day[P.DAY_NAMES[i]] += 1
        else:
            false_other += 1
        text, score = top_evidence(a)
        false_list.append({"at": P.fmt(t) if t is not None else "?", "behaviour_time": t,
                           "identity": ident, "score": score, "reason": a.get("reason"),
                           "statement": ((a.get("what") or {}).get("statement") or "")[:200],
                           "evidence": text})
    scen_out = []
    for w in windows:
        hits = sorted(per_scen[w["name"]], key=lambda x: x[0])
        first = hits[0] if hits else None
        row = {"name": w["name"], "what": w["what"], "user": w["user"], "network": w["network"],
               "start": w["start"], "start_at": P.fmt(w["start"]), "end": w["end"],
               "end_at": P.fmt(w["end"]), "ran": w["ran"],
               "actual_end_at": P.fmt(w["actual_end"]) if w["actual_end"] else None,
               "detected": bool(hits), "alerts": len(hits), "latency_min": None,
               "first_alert": None}
        if first:
            t, a = first
            text, score = top_evidence(a)
            row["latency_min"] = round((t - w["start"]) / 60, 1)
            row["first_alert"] = {"at": P.fmt(t), "behaviour_time": t, "score": score,
                                  "evidence": text, "reason": a.get("reason"),
                                  "rule": a.get("rule"), "identity": who(a)[3],
                                  "statement": ((a.get("what") or {}).get("statement") or "")[:200]}
            row["max_score"] = max((_num(x.get("score")) or 0.0) for _, x in hits)
        scen_out.append(row)

    streams: Dict[str, dict] = {}
    for ph in phases:
        for name, st in ph.get("streams", {}).items():
            acc = streams.setdefault(name, {"identity": st.get("identity"), "planned": 0,
                                            "sent": 0, "ok": 0, "rows": 0, "errors": 0,
                                            "refused": 0, "reconnects": 0, "lag_max_min": 0.0,
                                            "late_5min": 0, "error_samples": []})
            for k in ("planned", "sent", "ok", "rows", "errors", "refused", "reconnects",
                      "late_5min"):
                acc[k] += int(st.get(k, 0))
            acc["lag_max_min"] = max(acc["lag_max_min"], float(st.get("lag_max_min", 0.0)))
            acc["error_samples"] += st.get("error_samples", [])[:5]
    normal = {k: v for k, v in streams.items() if P.STREAMS.get(k) and not P.STREAMS[k].scenario}
    errors_total = sum(v["errors"] for v in streams.values())
    refused_normal = sum(v["refused"] for v in normal.values())

    judged = [P.DAY_NAMES[P.MONDAY], P.DAY_NAMES[P.TUESDAY]]
    ran_days = set()
    for ph in phases:
        for i in range(P.NUM_DAYS):
            d0 = P.day_start(i)
            if ph["from"] < d0 + P.DAY and ph["until"] > d0:
                ran_days.add(P.DAY_NAMES[i])
    missed = []
    if ran_scenarios:
        for r in scen_out:
            if not r["detected"]:
                missed.append(f"scenario {r['name']} not detected")
    for d in judged:
        if d in ran_days and false_per_day[d] > 0:
            missed.append(f"{false_per_day[d]} false alerts on {d}")
    if errors_total > max_errors:
        missed.append(f"{errors_total} client errors (at most {max_errors})")
    if refused_normal:
        missed.append(f"{refused_normal} statements of normal traffic refused")
    if invalid:
        missed.append(f"{invalid} webhook bodies were not JSON")
    lagging = {k: v["lag_max_min"] for k, v in normal.items() if v["lag_max_min"] > LAG_WARN_MIN}
    return {
        "seed": phases[0].get("seed") if phases else None,
        "phases": [{k: ph[k] for k in ("from_at", "until_at", "clock", "real_seconds")}
                   for ph in phases],
        "days_run": [d for d in P.DAY_NAMES if d in ran_days],
        "alerts_total": len(alerts),
        "alerts_untimed": untimed,
        "webhook_invalid": invalid,
        "alerts_by_identity": dict(sorted(by_identity.items(), key=lambda kv: -kv[1])),
        "scenarios": scen_out,
        "false_alerts_per_day": false_per_day,
        "false_alerts_outside_week": false_other,
        "false_alerts_learning": sum(false_per_day[d] for d in P.DAY_NAMES[:P.LEARNING_DAYS]),
        "false_alerts_monday": false_per_day["Mon"],
        "false_alerts_tuesday": false_per_day["Tue"],
        "false_alerts": false_list[:200],
        "statements": streams,
        "statements_total": sum(v["sent"] for v in streams.values()),
        "errors_total": errors_total,
        "refused_normal": refused_normal,
        "lagging_streams": lagging,
        "goals": {"met": not missed, "missed": missed,
                  "text": ("every scenario detected; zero false alerts on Monday and on "
                           "Tuesday's non-scenario traffic; at most "
                           f"{max_errors} client errors; normal traffic never refused")},
    }


def render(r: dict) -> str:
    out = []
    w = out.append
    w("")
    w(f"== danxia behaviour simulation (seed {r['seed']}): {r['statements_total']} statements, "
      f"{r['alerts_total']} alerts, days run: {' '.join(r['days_run'])}")
    for ph in r["phases"]:
        c = ph["clock"]
        w(f"   phase {ph['from_at']} .. {ph['until_at']}: clock start {c['start']}, "
          f"speed {c['speed']:g}, {ph['real_seconds']} s real")
    w("")
    hdr = (f"{'scenario':<19}{'planned':<11}{'ran until':<11}{'detected':<10}{'latency':>9}"
           f"{'alerts':>8}{'score':>7}  first alert: top evidence")
    w(hdr)
    w("-" * max(len(hdr), 100))
    for s in r["scenarios"]:
        if not s["ran"]:
            det = "not run"
        else:
            det = "YES" if s["detected"] else "NO"
        lat = f"{s['latency_min']:.0f} min" if s["latency_min"] is not None else "-"
        fa = s["first_alert"] or {}
        score = fa.get("score")
        sc = f"{score:.1f}" if isinstance(score, (int, float)) else "-"
        ev = fa.get("evidence", "")
        if fa:
            ev = f"[{fa['at']}] {ev}"
        ran = s["actual_end_at"] or "-"
        w(f"{s['name']:<19}{s['start_at']:<11}{ran:<11}{det:<10}{lat:>9}{s['alerts']:>8}{sc:>7}  "
          f"{ev[:110]}")
    w("")
    days = P.DAY_NAMES
    learn, judged = days[:P.LEARNING_DAYS], days[P.LEARNING_DAYS:]
    w("false alerts per simulated day (learning days are reported, the goal is Mon and Tue):")
    w("  learning: " + "  ".join(f"{d} {r['false_alerts_per_day'][d]}" for d in learn)
      + f"   | judged: " + "  ".join(f"{d} {r['false_alerts_per_day'][d]}" for d in judged)
      + (f"   | outside the week {r['false_alerts_outside_week']}"
         if r["false_alerts_outside_week"] else ""))
    fl = [f for f in r["false_alerts"] if f["at"][:3] in judged] or r["false_alerts"]
    if fl:
        w(f"  false alerts ({len(r['false_alerts'])} in all; showing up to 15"
          f"{', judged days first' if fl is not r['false_alerts'] else ''}):")
        for f in fl[:15]:
            sc = f"{f['score']:.1f}" if isinstance(f["score"], (int, float)) else "-"
            w(f"    {f['at']}  {f['identity']:<40} score {sc:>5}  {f['evidence'][:80]}")
    w("")
    w("alerts by identity: " + ", ".join(f"{k} {v}" for k, v in r["alerts_by_identity"].items())
      if r["alerts_by_identity"] else "alerts by identity: none")
    w("")
    hdr = (f"{'stream':<19}{'identity':<38}{'planned':>8}{'sent':>7}{'ok':>7}{'errors':>7}"
           f"{'refused':>8}{'rows':>9}{'lag max':>9}")
    w(hdr)
    w("-" * len(hdr))
    for name, s in r["statements"].items():
        w(f"{name:<19}{(s['identity'] or ''):<38}{s['planned']:>8}{s['sent']:>7}{s['ok']:>7}"
          f"{s['errors']:>7}{s['refused']:>8}{s['rows']:>9}{s['lag_max_min']:>6.1f} min")
    samples = [(k, e) for k, v in r["statements"].items() for e in v["error_samples"]]
    if samples:
        w("client errors (first ones):")
        for k, e in samples[:10]:
            w(f"  {k}: {e}")
    if r["lagging_streams"]:
        w(f"WARNING: normal streams fell behind the clock by more than {LAG_WARN_MIN:g} sim "
          f"minutes (the machine is too slow for this speed; the workload was stretched): "
          + ", ".join(f"{k} {v:.0f} min" for k, v in r["lagging_streams"].items()))
    if r["alerts_untimed"]:
        w(f"WARNING: {r['alerts_untimed']} alerts had no usable behaviour_time or time")
    w("")
    g = r["goals"]
    w(f"GOALS ({g['text']}): " + ("MET" if g["met"] else "NOT MET: " + "; ".join(g["missed"])))
    return "\n".join(out)


def write_json(r: dict, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(r, f, ensure_ascii=False, indent=1)
