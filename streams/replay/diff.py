"""``--diff``: a replay's alerts against production's for the same window and calls. Pure.

An alert is a FIRING event (one per episode; RESOLVED events are not compared). Episodes are grouped by
(rule id, business line, call, role) and paired within a group:

1. the same ``alert_id`` (same rule set, rule, call, role and episode start) -> **same**, or **changed**
   when it fired at another time (``for:`` changed) or with another value;
2. the rest by nearest episode start, at most ``match_within_ms`` apart -> **changed** (fired earlier or
   later by N ms, different value);
3. what is left -> **added** (only in the replay) or **removed** (only in production).

Counts per rule and business line, example calls per kind, every non-identical pairing as a row.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["CSV_COLUMNS", "DiffReport", "Episode", "Pairing", "diff_alerts", "episodes"]

MATCH_WITHIN_MS = 30_000
"""Unpaired episodes further apart than this are added/removed rather than moved."""
EXAMPLES = 3
KINDS = ("same", "changed", "added", "removed")
CSV_COLUMNS = ["kind", "rule_id", "business_line", "call_id", "role", "production_alert_id", "replay_alert_id",
               "production_started_ms", "replay_started_ms", "production_fired_ms", "replay_fired_ms",
               "fired_delta_ms", "production_value", "replay_value"]

Key = tuple[str, str, str, str]


@dataclass(frozen=True)
class Episode:
    alert_id: str
    rule_id: str
    business_line: str
    call_id: str
    role: str
    started_ms: int
    fired_ms: int
    value: float

    @property
    def key(self) -> Key:
        return (self.rule_id, self.business_line, self.call_id, self.role)


def episodes(events: Iterable[dict[str, Any]]) -> list[Episode]:
    """The FIRING events as episodes (a repeated alert_id - a redelivery - counts once)."""
    seen: dict[str, Episode] = {}
    for ev in events:
        if ev["status"] == "FIRING" and ev["alert_id"] not in seen:
            seen[ev["alert_id"]] = Episode(ev["alert_id"], ev["rule_id"], ev["business_line"], ev["call_id"],
                                           ev["role"], int(ev["started_ms"]), int(ev["fired_ms"]), float(ev["value"]))
    return list(seen.values())


@dataclass(frozen=True)
class Pairing:
    kind: str                      # same / changed / added / removed
    production: Episode | None
    replay: Episode | None

    @property
    def key(self) -> Key:
        return (self.production or self.replay).key  # type: ignore[union-attr]

    @property
    def fired_delta_ms(self) -> int | None:
        """Replay fired minus production fired (positive: later)."""
        if self.production is None or self.replay is None:
            return None
        return self.replay.fired_ms - self.production.fired_ms

    def row(self) -> dict[str, Any]:
        p, r = self.production, self.replay
        rule_id, line, call_id, role = self.key
        return {"kind": self.kind, "rule_id": rule_id, "business_line": line, "call_id": call_id, "role": role,
                "production_alert_id": p.alert_id if p else None, "replay_alert_id": r.alert_id if r else None,
                "production_started_ms": p.started_ms if p else None, "replay_started_ms": r.started_ms if r else None,
                "production_fired_ms": p.fired_ms if p else None, "replay_fired_ms": r.fired_ms if r else None,
                "fired_delta_ms": self.fired_delta_ms, "production_value": p.value if p else None,
                "replay_value": r.value if r else None}


def _pair_group(prod: list[Episode], rep: list[Episode], within: int) -> list[Pairing]:
    out: list[Pairing] = []
    by_id = {e.alert_id: e for e in rep}
    left_p, used = [], set()
    for p in sorted(prod, key=lambda e: (e.started_ms, e.alert_id)):
        r = by_id.get(p.alert_id)
        if r is None:
            left_p.append(p)
            continue
        used.add(r.alert_id)
        same = r.fired_ms == p.fired_ms and r.value == p.value
        out.append(Pairing("same" if same else "changed", p, r))
    left_r = sorted((e for e in rep if e.alert_id not in used), key=lambda e: (e.started_ms, e.alert_id))
    candidates = sorted((abs(p.started_ms - r.started_ms), p.started_ms, r.started_ms, p.alert_id, r.alert_id, i, j)
                        for i, p in enumerate(left_p) for j, r in enumerate(left_r)
                        if abs(p.started_ms - r.started_ms) <= within)
    taken_p: set[int] = set()
    taken_r: set[int] = set()
    for *_, i, j in candidates:
        if i in taken_p or j in taken_r:
            continue
        taken_p.add(i)
        taken_r.add(j)
        out.append(Pairing("changed", left_p[i], left_r[j]))
    out += [Pairing("removed", p, None) for i, p in enumerate(left_p) if i not in taken_p]
    out += [Pairing("added", None, r) for j, r in enumerate(left_r) if j not in taken_r]
    return out


@dataclass
class DiffReport:
    """Every pairing, in a deterministic order (by key, then episode start)."""

    pairings: list[Pairing]
    match_within_ms: int = MATCH_WITHIN_MS

    def counts(self) -> dict[tuple[str, str], Counter]:
        """Per (rule id, business line): production, replay, same, changed, added, removed, earlier, later,
        value_changed."""
        out: dict[tuple[str, str], Counter] = defaultdict(Counter)
        for pr in self.pairings:
            c = out[pr.key[:2]]
            c[pr.kind] += 1
            c["production"] += pr.production is not None
            c["replay"] += pr.replay is not None
            delta = pr.fired_delta_ms
            if pr.kind == "changed":
                if delta:
                    c["later" if delta > 0 else "earlier"] += 1
                if pr.production.value != pr.replay.value:  # type: ignore[union-attr]
                    c["value_changed"] += 1
        return dict(sorted(out.items()))

    def totals(self) -> Counter:
        total: Counter = Counter()
        for c in self.counts().values():
            total.update(c)
        return total

    def to_dict(self, examples: int = EXAMPLES) -> dict[str, Any]:
        """JSON-able: totals, per rule and business line (with example calls per kind), and the changes."""
        by_rule = []
        for (rule_id, line), c in self.counts().items():
            ex: dict[str, list[str]] = {}
            for kind in ("changed", "added", "removed"):
                calls = sorted({pr.key[2] for pr in self.pairings if pr.kind == kind and pr.key[:2] == (rule_id, line)})
                if calls:
                    ex[kind] = calls[:examples]
            by_rule.append({"rule_id": rule_id, "business_line": line, **_ordered(c), "examples": ex})
        return {"match_within_ms": self.match_within_ms, "totals": _ordered(self.totals()), "by_rule": by_rule,
                "changes": [pr.row() for pr in self.pairings if pr.kind != "same"]}

    def rows(self) -> list[dict[str, Any]]:
        """One CSV row per non-identical pairing (columns :data:`CSV_COLUMNS`)."""
        return [pr.row() for pr in self.pairings if pr.kind != "same"]


def _ordered(c: Counter) -> dict[str, int]:
    names = ("production", "replay", *KINDS, "earlier", "later", "value_changed")
    return {n: int(c.get(n, 0)) for n in names}


def diff_alerts(production: Iterable[dict[str, Any]], replay: Iterable[dict[str, Any]], *,
                match_within_ms: int = MATCH_WITHIN_MS) -> DiffReport:
    """Pair production's and the replay's FIRING events (Alert records; see the module doc)."""
    groups: dict[Key, tuple[list[Episode], list[Episode]]] = defaultdict(lambda: ([], []))
    for e in episodes(production):
        groups[e.key][0].append(e)
    for e in episodes(replay):
        groups[e.key][1].append(e)
    pairings: list[Pairing] = []
    for key in sorted(groups):
        prod, rep = groups[key]
        found = _pair_group(prod, rep, match_within_ms)
        found.sort(key=lambda pr: (min(e.started_ms for e in (pr.production, pr.replay) if e is not None),
                                   KINDS.index(pr.kind)))
        pairings += found
    return DiffReport(pairings, match_within_ms)
