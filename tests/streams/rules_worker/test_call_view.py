"""/calls/<call_id> document: state made readable, active alerts and summary."""
from __future__ import annotations

from emowatch.rules import load_ruleset, parse_ruleset, step
from emowatch.rules.loader import bundled_rule_files
from emowatch.rules.testing import synthetic_call
from emowatch.streams.rules_worker.call_view import describe_call

VIP = next(p for p in bundled_rule_files() if p.stem == "vip")


def _run(ruleset, messages):
    state, events = None, []
    for m in messages:
        state, out = step(state, m, ruleset)
        events += out
    return state, events


def test_firing_alert_is_listed_with_its_published_id():
    rs = load_ruleset(VIP)
    msgs = synthetic_call("c1", [(3000, {"fearful": 0.7})], business_line="vip", end_of_call=False)
    state, events = _run(rs, msgs)
    fired = [e for e in events if e["status"] == "FIRING"]
    doc = describe_call("c1", state, rs)
    assert doc["found"] and not doc["finished"] and doc["rule_version"] == rs.version
    [alert] = doc["active_alerts"]
    assert alert == {"alert_id": fired[0]["alert_id"], "rule_id": "vip-fearful", "role": "CUSTOMER",
                     "phase": "firing", "emitted": True, "started_ms": fired[0]["started_ms"], "priority": "HIGH",
                     "action": "alert", "value_at_fire": fired[0]["value"]}
    assert "FIRING vip-fearful (CUSTOMER, HIGH) since 1 s" in doc["summary"]
    assert doc["state_bytes"] > 100 and doc["roles"]["CUSTOMER"]["seq"] == 2


def test_pending_and_withheld_alerts():
    rs = parse_ruleset("""
rule_set: t
business_line: "*"
defaults: {window: 1s, hop: 200ms}
rules:
  - {id: crit, when: {emotion: angry, above: 0.5}, priority: critical}
  - {id: low, when: {emotion: angry, above: 0.5}, priority: low}
  - {id: slow, when: {emotion: angry, above: 0.5}, for: 30s}
inhibit:
  - {source: {priority: critical}, target: {priority: low}}
""")
    state, events = _run(rs, synthetic_call("c2", [(2000, {"angry": 0.9})], end_of_call=False))
    assert {e["rule_id"] for e in events} == {"crit"}
    by_rule = {a["rule_id"]: a for a in describe_call("c2", state, rs)["active_alerts"]}
    assert by_rule["crit"]["phase"] == "firing" and by_rule["crit"]["emitted"]
    assert by_rule["low"]["phase"] == "firing" and not by_rule["low"]["emitted"]
    assert by_rule["slow"]["phase"] == "pending"
    summary = describe_call("c2", state, rs)["summary"]
    assert "firing (withheld" in summary and "pending slow" in summary


def test_finished_and_unknown_calls():
    rs = load_ruleset(VIP)
    state, _ = _run(rs, synthetic_call("c3", [(3000, {"fearful": 0.7})], business_line="vip"))
    doc = describe_call("c3", state, rs)
    assert doc["finished"] and doc["active_alerts"] == [] and "no active alerts" in doc["summary"]
    missing = describe_call("nope", None, rs)
    assert missing["found"] is False and missing["state"] is None
