"""Alert lifecycle of one rule on one call+role, advanced one evaluation point at a time.

Per-rule JSON state (keys absent when unused):
``st``  phase: absent = inactive, ``"p"`` pending, ``"f"`` firing (condition held for ``for``)
``s``   episode start (call offset ms where the condition started to hold)
``ff``  first evaluation point at which a firing condition was false (for ``keep_firing_for``)
``ev``  snapshot of the emitted FIRING event (present = FIRING was emitted; RESOLVED reuses it)
``cd``  cooldown end (call offset ms): no FIRING is emitted before it
``sq``  sequence progress: per step, the start of the latest partial match (or null)
``m``   sequence matched: holds while the last step's emotion stays dominant
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from emowatch.rules.compiler import CompiledRule, CompiledRuleSet

LIFECYCLE_KEYS = frozenset(("st", "ev", "cd"))
"""A rule state with one of these keys has an alert lifecycle going on (pending, firing, cooling down)."""
NO_STEP = -(1 << 60)
""":func:`progress_many`'s form of a ``None`` in ``sq`` (no match of that step): older than any ``within``."""


def transition(st: dict[str, Any], holds: bool, t: int, rule: CompiledRule) -> dict[str, Any] | None:
    """Advance ``st`` (mutated in place) at evaluation point ``t``.

    inactive -> pending when the condition holds; pending -> firing once it has held
    for ``for``; pending -> inactive when it stops holding; firing -> resolved once it
    has been false for ``keep_firing_for``. Returns the FIRING snapshot when an emitted
    episode resolves (the caller emits RESOLVED), else ``None``.
    """
    phase = st.get("st")
    if phase is None:
        if not holds:
            return None
        st["st"], st["s"], phase = "p", t, "p"
    elif phase == "p" and not holds:
        del st["st"], st["s"]
        return None
    if phase == "p":
        if t - st["s"] >= rule.for_ms:
            st["st"] = "f"
        return None
    if holds:
        st.pop("ff", None)
        return None
    first_false = st.setdefault("ff", t)
    if t - first_false < rule.keep_ms:
        return None
    snapshot = st.pop("ev", None)
    for key in ("st", "s", "ff"):
        st.pop(key, None)
    if snapshot is not None and rule.cooldown_ms:
        st["cd"] = t + rule.cooldown_ms
    return snapshot


def observe_sequence(st: dict[str, Any], rule: CompiledRule, t: int, dominant: int, p_max: float) -> bool:
    """Feed one evaluation point to a sequence rule; return whether its condition holds at ``t``.

    A point is a step when the top class is a step's emotion with ``p >= min_prob``.
    ``sq[k]`` is the start of the latest match of steps ``0..k`` (so ``within`` is met by
    the latest possible start); the condition starts to hold when the last step matches
    within ``within`` of the first, and holds while the last emotion stays dominant.
    """
    confident = p_max >= rule.threshold
    if st.get("m"):
        if confident and dominant == rule.last_col:
            return True
        del st["m"]
        return False
    cols, within = rule.cols, rule.within_ms
    progress = st.get("sq")
    if progress is None:
        if not confident or dominant not in cols:
            return False
        steps: list[int | None] = [None] * len(cols)
    else:
        steps = list(progress)
    if confident:
        for k in range(len(cols) - 1, 0, -1):
            prev = steps[k - 1]
            if cols[k] == dominant and prev is not None and t - prev <= within:
                cur = steps[k]
                steps[k] = prev if cur is None or prev > cur else cur
        if cols[0] == dominant:
            steps[0] = t
    alive = False
    for k, s in enumerate(steps):
        if s is not None:
            if t - s <= within:
                alive = True
            else:
                steps[k] = None
    if steps[-1] is not None:
        st.pop("sq", None)
        st["m"] = 1
        return True
    if alive:
        st["sq"] = steps
    else:
        st.pop("sq", None)
    return False


def progress_many(rule: CompiledRule, steps: np.ndarray, times: np.ndarray, dominant: np.ndarray,
                  p_max: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """:func:`observe_sequence` at every valid point of many calls' messages at once, for a sequence rule that is
    not matched (no ``m``) and whose last step none of these points reaches: only the progress ``sq`` moves.

    ``steps`` ``(M, n_steps)`` int64 is each message's ``sq`` (:data:`NO_STEP` for ``None``; updated in place and
    returned); ``times``, ``dominant``, ``p_max`` and ``valid`` are ``(M, E)`` (a point not valid for a message
    changes nothing of it; ``valid`` may also be ``(E,)``, shared).
    Point by point, the same comparisons as :func:`observe_sequence` on whole columns (exact: integer times)."""
    cols, within = rule.cols, rule.within_ms
    if valid.ndim == 1:  # shared by all the messages
        valid = np.broadcast_to(valid, times.shape)
    for j in np.flatnonzero(valid.any(axis=0)).tolist():
        rows = valid[:, j]
        t = times[:, j]
        confident = (p_max[:, j] >= rule.threshold) & rows
        d = dominant[:, j]
        for k in range(len(cols) - 1, 0, -1):  # descending: step k extends the match of k - 1 as it was
            prev = steps[:, k - 1]
            grow = confident & (d == cols[k]) & (t - prev <= within)
            if grow.any():
                steps[grow, k] = np.maximum(prev[grow], steps[grow, k])
        first = confident & (d == cols[0])
        steps[first, 0] = t[first]
        steps[(t[:, None] - steps > within) & rows[:, None]] = NO_STEP
    return steps


def alert_id(rule_set: str, rule_id: str, call_id: str, role: str, episode_start_ms: int) -> str:
    """Deterministic id of an episode: first 32 hex of sha256 over its identity."""
    key = f"{rule_set}|{rule_id}|{call_id}|{role}|{episode_start_ms}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def snapshot(crs: CompiledRuleSet, rule: CompiledRule, scores: dict[str, Any], start_ms: int,
             value: float) -> dict[str, Any]:
    """The static part of a FIRING event, kept in state so RESOLVED matches it exactly."""
    labels = dict(scores.get("attributes") or {})
    labels.update(rule.labels)
    return {"id": alert_id(crs.rule_set, rule.id, scores["call_id"], scores["role"], start_ms),
            "rid": rule.id, "s": start_ms, "v": round(float(value), 6), "pr": rule.priority,
            "ac": rule.action, "em": list(rule.emotions), "th": rule.threshold, "ch": list(rule.channels),
            "lb": labels, "bl": scores.get("business_line", "")}


def make_event(status: str, snap: dict[str, Any], crs: CompiledRuleSet, scores: dict[str, Any],
               at_ms: int, value: float, base_event_time: int) -> dict[str, Any]:
    """An Alert record (Avro ``emowatch.v1.Alert``) for ``status`` at call offset ``at_ms``."""
    return {
        "alert_id": snap["id"], "status": status, "rule_id": snap["rid"], "rule_version": crs.version,
        "rule_set": crs.rule_set, "priority": snap["pr"], "action": snap["ac"], "business_line": snap["bl"],
        "call_id": scores["call_id"], "role": scores["role"], "emotions": list(snap["em"]),
        "value": round(float(value), 6), "threshold": float(snap["th"]), "started_ms": int(snap["s"]),
        "fired_ms": int(at_ms), "event_time": int(base_event_time + at_ms), "channels": list(snap["ch"]),
        "labels": dict(snap["lb"]), "replay_id": None,
    }


def inhibited(rule: CompiledRule, role: str, current: dict[str, dict[str, Any]],
              roles: dict[str, Any], call: dict[str, dict[str, Any]] | None = None,
              subjects: dict[str, str] | None = None) -> bool:
    """Whether a firing source alert on this call mutes ``rule`` (Alertmanager inhibit_rules).

    ``current`` holds this role's rule states as of now; other roles' states come from
    ``roles`` (as of their latest message); ``call`` holds the conversation rules' states, whose alerts carry the
    role ``subjects[rule id]``. A rule never inhibits itself on the same role.
    """
    for source, same_role in rule.inhibited_by:
        if source != rule.id and current.get(source, {}).get("st") == "f":
            return True
        if call and call.get(source, {}).get("st") == "f" and (
                not same_role or (subjects or {}).get(source) == role) and source != rule.id:
            return True
        if same_role:
            continue
        for other, other_state in roles.items():
            if other != role and other_state.get("rules", {}).get(source, {}).get("st") == "f":
                return True
    return False


def call_inhibited(rule: Any, call_rules: dict[str, Any], roles: dict[str, Any], subjects: dict[str, str]) -> bool:
    """Whether a firing source alert mutes this conversation rule (a conversation rule's, or a role's rule's; with
    ``equal: [role]`` only a source about the same role)."""
    for source, same_role in rule.inhibited_by:
        if source == rule.id:
            continue
        if call_rules.get(source, {}).get("st") == "f" and (not same_role or subjects.get(source) == rule.subject):
            return True
        for role, state in roles.items():
            if (not same_role or role == rule.subject) and state.get("rules", {}).get(source, {}).get("st") == "f":
                return True
    return False
