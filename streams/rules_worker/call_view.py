"""What the rules worker's ``/calls/<call_id>`` page shows: a call's rule state, made readable.

Pure: reads the JSON state written by ``emowatch.rules.step`` (layout in ``rules/engine.py``
and ``rules/lifecycle.py``) and lists the call's active alerts - rules whose condition is
pending or firing - with a one-line summary for people.
"""
from __future__ import annotations

from typing import Any

from emowatch.rules.engine import call_finished, state_size_bytes
from emowatch.rules.lifecycle import alert_id
from emowatch.rules.model import RuleSet

__all__ = ["active_alerts", "describe_call"]


def active_alerts(call_id: str, state: dict[str, Any] | None, ruleset: RuleSet) -> list[dict[str, Any]]:
    """Pending and firing alerts of the call, firing first, then by start offset.

    ``emitted`` tells whether the FIRING event went out; a firing alert that is not
    emitted is withheld (cooldown, inhibition or silence). ``alert_id`` is the id the
    episode has (or will have) on the alerts topic.
    """
    out: list[dict[str, Any]] = []
    for role, rs in sorted(((state or {}).get("r") or {}).items()):
        for rule_id, st in sorted((rs.get("rules") or {}).items()):
            phase = st.get("st")
            if phase not in ("p", "f"):
                continue
            snap = st.get("ev")
            try:
                rule = ruleset.rule(rule_id)
                priority, action = str(rule.priority).upper(), str(rule.action)
            except KeyError:  # rule removed by a reload; resolves at the next message
                priority, action = (snap or {}).get("pr", ""), (snap or {}).get("ac", "")
            out.append({
                "alert_id": snap["id"] if snap else alert_id(ruleset.rule_set, rule_id, call_id, role, int(st["s"])),
                "rule_id": rule_id, "role": role, "phase": "firing" if phase == "f" else "pending",
                "emitted": snap is not None, "started_ms": int(st["s"]), "priority": priority, "action": action,
                "value_at_fire": snap["v"] if snap else None,
            })
    out.sort(key=lambda a: (a["phase"] != "firing", a["started_ms"], a["rule_id"], a["role"]))
    return out


def _line(a: dict[str, Any]) -> str:
    what = "FIRING" if a["phase"] == "firing" else "pending"
    if a["phase"] == "firing" and not a["emitted"]:
        what = "firing (withheld: cooldown, inhibition or silence)"
    prio = f", {a['priority']}" if a["priority"] else ""
    return f"{what} {a['rule_id']} ({a['role']}{prio}) since {a['started_ms'] / 1000:g} s"


def describe_call(call_id: str, state: dict[str, Any] | None, ruleset: RuleSet) -> dict[str, Any]:
    """The JSON document of ``/calls/<call_id>``: raw state, size, roles, active alerts, summary."""
    if state is None:
        return {"call_id": call_id, "found": False, "state": None, "active_alerts": [],
                "summary": f"call {call_id}: no state on this rules worker (unknown call, other business line, "
                           "or not reached yet)"}
    alerts = active_alerts(call_id, state, ruleset)
    finished = call_finished(state)
    roles = {role: {"seq": rs.get("seq"), "offset_ms": rs.get("t"), "ended": bool(rs.get("end"))}
             for role, rs in sorted((state.get("r") or {}).items())}
    where = "finished" if finished else "in progress"
    if alerts:
        summary = f"call {call_id} ({where}): {len(alerts)} active alert(s): " + "; ".join(_line(a) for a in alerts)
    else:
        summary = f"call {call_id} ({where}): no active alerts"
    return {"call_id": call_id, "found": True, "finished": finished, "state_bytes": state_size_bytes(state),
            "roles": roles, "rule_set": ruleset.rule_set, "rule_version": ruleset.version,
            "active_alerts": alerts, "summary": summary, "state": state}
