"""--diff: pairing rules on hand-made episodes, then known answers from real replays - a stricter rule
removes alerts, a looser one adds them (and moves others earlier), a longer `for:` moves and removes them."""
from __future__ import annotations

from replay_cases import MILD, SHORT, STRONG, T0, WEAK, calls, ruleset

from emowatch.streams.replay.diff import diff_alerts
from emowatch.streams.replay.params import Scope, Window
from emowatch.streams.replay.runner import ReplayRequest, compare, run_replay


def ev(alert_id, call="c1", rule="r", started=1000, fired=3000, value=0.9, status="FIRING", role="CUSTOMER"):
    return {"alert_id": alert_id, "status": status, "rule_id": rule, "business_line": "retail", "call_id": call,
            "role": role, "started_ms": started, "fired_ms": fired, "value": value, "event_time": T0 + fired}


def test_pairing_rules():
    prod = [ev("a"), ev("b", started=10_000, fired=12_000), ev("c", started=20_000, fired=22_000),
            ev("d", started=90_000, fired=92_000), ev("a", status="RESOLVED"), ev("e", role="AGENT")]
    rep = [ev("a"),                                                 # same id, same time and value: same
           ev("b", started=10_000, fired=13_000),                   # same id, fired 1 s later: changed
           ev("c2", started=20_400, fired=22_400, value=0.95),      # nearest start, 400 ms later: changed
           ev("z", started=200_000, fired=202_000),                 # too far from d: added, d removed
           ev("e", role="AGENT", value=0.8)]                        # same id, other value: changed
    report = diff_alerts(prod, rep)
    kinds = sorted((p.kind, (p.production or p.replay).alert_id) for p in report.pairings)
    assert kinds == [("added", "z"), ("changed", "b"), ("changed", "c"), ("changed", "e"), ("removed", "d"),
                     ("same", "a")]
    counts = report.counts()
    assert counts[("r", "retail")] == {"same": 1, "changed": 3, "added": 1, "removed": 1, "production": 5,
                                       "replay": 5, "later": 2, "value_changed": 2}
    doc = report.to_dict()
    assert doc["totals"]["changed"] == 3 and doc["by_rule"][0]["examples"]["changed"] == ["c1"]
    assert {r["kind"] for r in report.rows()} == {"changed", "added", "removed"}
    moved = [r for r in report.rows() if r["production_alert_id"] == "b"][0]
    assert moved["fired_delta_ms"] == 1000 and moved["replay_alert_id"] == "b"
    assert diff_alerts(prod, rep, match_within_ms=100).counts()[("r", "retail")]["removed"] == 2  # c no longer pairs


def _replay(rs):
    return run_replay(ReplayRequest(rs, "case.yaml", Window(T0), Scope("*"), "kafka"), calls())


def _by_call(report, kind):
    return sorted(p.key[2] for p in report.pairings if p.kind == kind)


def test_known_answers():
    production = _replay(ruleset())
    fired = sorted(e["call_id"] for e in production.events if e["status"] == "FIRING" and e["rule_id"] == "angry")
    assert fired == sorted(MILD + SHORT + STRONG)  # the scenario as designed (replay_cases.py)

    stricter = compare(_replay(ruleset(**{"above: 0.75": "above: 0.85"})), production.events)
    assert _by_call(stricter, "removed") == sorted(MILD + SHORT)  # 0.8 never reaches 0.85
    assert _by_call(stricter, "same") == sorted(STRONG) and not _by_call(stricter, "added")
    assert stricter.totals()["changed"] == 0

    looser = compare(_replay(ruleset(**{"above: 0.75": "above: 0.6"})), production.events)
    assert _by_call(looser, "added") == sorted(WEAK)  # 0.7 never reached 0.75
    # the others hold one hop (200 ms) earlier at 0.6 (4/5 of the window angry: 0.632 and 0.692): another
    # episode start, hence another alert id, paired by the nearest start as moved earlier
    assert _by_call(looser, "changed") == sorted(MILD + SHORT + STRONG)
    assert {p.fired_delta_ms for p in looser.pairings if p.kind == "changed"} == {-200}
    assert looser.totals()["earlier"] == 7 and not _by_call(looser, "removed")

    longer = compare(_replay(ruleset(**{"for: 2s": "for: 3s"})), production.events)
    assert _by_call(longer, "changed") == sorted(MILD + STRONG)  # same episodes, fired 1 s later
    assert {p.fired_delta_ms for p in longer.pairings if p.kind == "changed"} == {1000}
    assert all(p.production.alert_id == p.replay.alert_id for p in longer.pairings if p.kind == "changed")
    assert _by_call(longer, "removed") == sorted(SHORT)  # held 2 s only
    t = longer.totals()
    assert (t["production"], t["replay"], t["later"], t["added"]) == (7, 5, 5, 0)
