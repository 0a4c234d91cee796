"""One replay from records to results: the lanes (a rule set, or a sweep's), the pass, the summary. Pure.

The command (``streams/cli/replay.py``) builds the source, the store and the outputs around it. The
summary holds no wall-clock time, so two replays of the same data give byte-identical JSON
(:func:`dumps`); the wall-clock times go only to the ``replays`` table row.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from emowatch.rules.compiler import compile_ruleset
from emowatch.rules.model import RuleSet
from emowatch.streams.replay.diff import MATCH_WITHIN_MS, DiffReport, diff_alerts
from emowatch.streams.replay.engine import PROGRESS_EVERY, ReplayEngine, ReplayTotals, count_firing
from emowatch.streams.replay.params import Scope, Window, iso, replay_id_for
from emowatch.streams.replay.sweep import SweepPlan, SweepSpec, plan_sweep, sweep_counts

__all__ = ["ReplayOutcome", "ReplayRequest", "compare", "dumps", "run_replay"]


@dataclass(frozen=True)
class ReplayRequest:
    ruleset: RuleSet
    rules_file: str
    window: Window
    scope: Scope
    source: str                          # kafka / clickhouse
    scores_topic: str = ""
    model_version: str | None = None
    sweep: SweepSpec | None = None
    replay_id: str | None = None         # None: derived from the rest (deterministic)

    def resolved_id(self) -> str:
        if self.replay_id:
            return self.replay_id
        return replay_id_for(rule_set=self.ruleset.rule_set, rule_version=self.ruleset.version, window=self.window,
                             scope=self.scope, source=self.source, scores_topic=self.scores_topic,
                             model_version=self.model_version or "", sweep=self.sweep.text if self.sweep else "")


@dataclass
class ReplayOutcome:
    request: ReplayRequest
    replay_id: str
    totals: ReplayTotals
    events: list[dict[str, Any]]                 # lane 0 in canonical order (empty for a sweep)
    sweep: dict[str, Any] | None = None
    source_stats: dict[str, Any] = field(default_factory=dict)

    @property
    def alerts(self) -> int:
        return count_firing(self.events)[0]

    def summary(self) -> dict[str, Any]:
        """Deterministic description of the replay (no wall-clock times)."""
        r, t = self.request, self.totals
        alerts, by_rule, by_line = count_firing(self.events)
        out = {
            "replay_id": self.replay_id, "source": r.source, "scores_topic": r.scores_topic,
            "window": {"from": iso(r.window.from_ms), "to": iso(r.window.to_ms), "from_ms": r.window.from_ms,
                       "to_ms": r.window.to_ms},
            "business_line": r.scope.business_line, "calls_filter": sorted(r.scope.calls),
            "rule_set": r.ruleset.rule_set, "rule_version": r.ruleset.version, "rules_file": r.rules_file,
            "model_version_filter": r.model_version, "model_versions": sorted(t.model_versions),
            "messages": t.messages, "calls": len(t.calls), "skipped": dict(sorted(t.skipped.items())),
            "alerts": alerts, "events": len(self.events), "alerts_by_rule": dict(sorted(by_rule.items())),
            "alerts_by_business_line": dict(sorted(by_line.items())), "source_stats": self.source_stats,
        }
        if r.sweep is not None:
            out["sweep"] = r.sweep.text
        return out

    def replays_row(self, started_ms: int, finished_ms: int) -> dict[str, Any]:
        """The ``replays`` table row (REPLAYS_COLUMNS; times in epoch ms)."""
        r, t = self.request, self.totals
        return {"replay_id": self.replay_id, "started_at": started_ms, "finished_at": finished_ms,
                "source": r.source, "scores_topic": r.scores_topic, "window_from": r.window.from_ms,
                "window_to": r.window.to_ms, "business_line": r.scope.business_line,
                "calls_filter": sorted(r.scope.calls), "rule_set": r.ruleset.rule_set,
                "rule_version": r.ruleset.version, "rules_file": r.rules_file,
                "model_versions": sorted(t.model_versions), "sweep": r.sweep.text if r.sweep else "",
                "messages": t.messages, "calls": len(t.calls), "alerts": self.alerts, "events": len(self.events),
                "offsets_fallback": bool(self.source_stats.get("offsets_fallback", False))}


def run_replay(request: ReplayRequest, records: Iterable[dict[str, Any]], *,
               progress: Callable[[int, int], None] | None = None,
               progress_every: int = PROGRESS_EVERY) -> ReplayOutcome:
    """Evaluate ``records`` (per-call order) with the request's rule set, or every value of its sweep."""
    crs = compile_ruleset(request.ruleset)
    plan: SweepPlan | None = plan_sweep(crs, request.sweep) if request.sweep is not None else None
    lanes = plan.lanes if plan is not None else [crs]
    replay_id = request.resolved_id()
    engine = ReplayEngine(lanes, replay_id=replay_id, window=request.window, scope=request.scope, progress=progress,
                          progress_every=progress_every)
    engine.feed(records)
    if plan is not None:
        return ReplayOutcome(request, replay_id, engine.totals, [],
                             sweep=sweep_counts(plan, [lane.canonical() for lane in engine.lanes]))
    return ReplayOutcome(request, replay_id, engine.totals, engine.lanes[0].canonical())


def _comparable(events: Iterable[dict[str, Any]], window: Window, calls: set[str]) -> list[dict[str, Any]]:
    """FIRING events of the replayed calls with event time in the window (both sides alike)."""
    return [ev for ev in events if ev["status"] == "FIRING" and ev["call_id"] in calls
            and int(ev["event_time"]) >= window.from_ms
            and (window.to_ms is None or int(ev["event_time"]) < window.to_ms)]


def compare(outcome: ReplayOutcome, production: Iterable[dict[str, Any]], *,
            match_within_ms: int = MATCH_WITHIN_MS) -> DiffReport:
    """``--diff``: production's alerts (already of the compared rule set) against the replay's, restricted
    to the calls the replay evaluated and to FIRING events in the window."""
    calls = outcome.totals.calls
    window = outcome.request.window
    return diff_alerts(_comparable(production, window, calls), _comparable(outcome.events, window, calls),
                       match_within_ms=match_within_ms)


def dumps(doc: Any) -> str:
    """Canonical JSON (sorted keys, numpy arrays as lists): identical input, identical bytes."""
    return json.dumps(doc, sort_keys=True, indent=1, default=_plain) + "\n"


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
