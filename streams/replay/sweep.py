"""``--sweep RULE.PARAM=START:STOP:STEP``: one pass over the data evaluates a rule at every value. Pure.

Shared mode (the usual case): the swept rule is replaced, in one compiled rule set, by one variant per
value (ids ``rule@value``). They share everything a ``step`` call computes once per message (decode,
bins, every window's probabilities, the threshold product) and differ only in their own lifecycle, so ten
values cost far less than ten replays. Each variant's alerts are exactly those of a separate replay at
that value, as long as the variants cannot affect each other or the other rules: the swept rule must not
be an inhibition source (a variant would mute targets for every value) nor named by a silence, and the
variants must not change the longest window (the ring of past bins, whose length sets the float
rounding of every window sum). Otherwise the sweep falls back to one rule set and one state per value, still
in the same pass over the data (``separate`` mode).

Parameters: ``above`` / ``below`` / ``threshold`` (the condition's bound), ``min_prob`` (sequence),
``for``, ``keep_firing_for``, ``cooldown``, ``window`` (a multiple of the rule set's hop), ``within``
(sequence). Durations are written as in rule files (``1s:5s:500ms``).
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import Any

from emowatch.rules.compiler import SEQUENCE, THRESHOLD, CompiledRule, CompiledRuleSet, assemble
from emowatch.rules.durations import format_duration_ms, parse_duration_ms
from emowatch.streams.replay.params import ReplayParamsError

__all__ = ["SweepPlan", "SweepSpec", "parse_sweep", "plan_sweep", "sweep_counts"]

MAX_VALUES = 100
_DURATIONS = {"for": "for_ms", "keep_firing_for": "keep_ms", "cooldown": "cooldown_ms", "within": "within_ms",
              "window": "window_bins"}
_BOUNDS = ("above", "below", "threshold", "min_prob")
PARAMS = (*_BOUNDS, *_DURATIONS)


@dataclass(frozen=True)
class SweepSpec:
    rule_id: str
    param: str
    values: tuple[float, ...] | tuple[int, ...]
    text: str

    def label(self, value: float | int) -> str:
        return format_duration_ms(int(value)) if self.param in _DURATIONS else format(value, ".10g")


def parse_sweep(text: str) -> SweepSpec:
    """``angry-sustained.above=0.6:0.9:0.05`` or ``angry-sustained.for=1s:4s:500ms`` (STOP included)."""
    try:
        target, span = text.split("=", 1)
        rule_id, param = target.rsplit(".", 1)
        start, stop, stride = span.split(":")
    except ValueError:
        raise ReplayParamsError(f"invalid sweep {text!r}: write RULE.PARAM=START:STOP:STEP, "
                                "e.g. angry-sustained.above=0.6:0.9:0.05") from None
    param = param.strip()
    if param not in PARAMS:
        raise ReplayParamsError(f"cannot sweep {param!r}; parameters: {', '.join(PARAMS)}")
    try:
        if param in _DURATIONS:
            a, b, s = (parse_duration_ms(x.strip()) for x in (start, stop, stride))
            values: tuple[Any, ...] = tuple(range(a, b + 1, s)) if s > 0 and b >= a else ()
        else:
            a, b, s = (float(x) for x in (start, stop, stride))
            n = int((b - a) / s + 1e-9) + 1 if s > 0 and b >= a else 0
            values = tuple(round(a + i * s, 10) for i in range(n))
    except ValueError as exc:
        raise ReplayParamsError(f"invalid sweep {text!r}: {exc}") from None
    if not values:
        raise ReplayParamsError(f"invalid sweep {text!r}: STEP must be > 0 and STOP >= START")
    if len(values) > MAX_VALUES:
        raise ReplayParamsError(f"sweep {text!r} has {len(values)} values; at most {MAX_VALUES}")
    return SweepSpec(rule_id.strip(), param, values, text)


def _variant(rule: CompiledRule, spec: SweepSpec, value: Any, hop: int, rule_id: str) -> CompiledRule:
    p = spec.param
    seq = rule.kind == SEQUENCE
    if p in ("above", "below", "threshold", "min_prob"):
        if p == "min_prob" and not seq or p in ("above", "below") and seq:
            raise ReplayParamsError(f"rule {rule.id!r} has no {p!r} ({'a sequence' if seq else 'a threshold'} rule)")
        if p == "above" and rule.sign < 0 or p == "below" and rule.sign > 0:
            raise ReplayParamsError(f"rule {rule.id!r} is an {'above' if rule.sign > 0 else 'below'} rule; "
                                    f"sweep {'above' if rule.sign > 0 else 'below'} (or threshold)")
        if not 0.0 <= value <= 1.0:
            raise ReplayParamsError(f"{p}={value} is not a probability in [0, 1]")
        return dataclasses.replace(rule, id=rule_id, threshold=float(value))
    if p == "within" and rule.kind != SEQUENCE:
        raise ReplayParamsError(f"rule {rule.id!r} has no 'within' (not a sequence rule)")
    if p == "window":
        if value <= 0 or value % hop or value > 60_000:
            raise ReplayParamsError(f"window {format_duration_ms(value)} must be a multiple of the hop "
                                    f"({format_duration_ms(hop)}), at most 1m")
        return dataclasses.replace(rule, id=rule_id, window_bins=value // hop)
    if p == "within" and value <= 0:
        raise ReplayParamsError("within must be > 0")
    return dataclasses.replace(rule, id=rule_id, **{_DURATIONS[p]: int(value)})


@dataclass
class SweepPlan:
    """The lanes to run: one shared rule set (``shared``) or one per value; and how to read them back."""

    spec: SweepSpec
    shared: bool
    reason: str
    lanes: list[CompiledRuleSet]
    variant_ids: list[str]   # per value: the rule id its alerts carry (in its lane)

    def lane_of(self, i: int) -> int:
        return 0 if self.shared else i


def _with(crs: CompiledRuleSet, original: CompiledRule, replacements: list[CompiledRule]) -> CompiledRuleSet:
    rules: list[CompiledRule] = []
    for r in crs.rules:
        rules += replacements if r.id == original.id else [r]
    return assemble(crs.rule_set, crs.business_line, crs.version, crs.hop_ms, rules, crs.silences)


def plan_sweep(crs: CompiledRuleSet, spec: SweepSpec) -> SweepPlan:
    """Variants of ``spec.rule_id`` for every value, in one shared lane when that is exact (module doc)."""
    rule = crs.by_id.get(spec.rule_id)
    if rule is None:
        raise ReplayParamsError(f"rule {spec.rule_id!r} is not in rule set {crs.rule_set!r} (enabled rules: "
                                f"{', '.join(crs.by_id)})")
    if rule.kind not in (THRESHOLD, SEQUENCE):  # pragma: no cover - both kinds exist
        raise ReplayParamsError(f"rule {rule.id!r} cannot be swept")
    shared_ids = [f"{rule.id}@{spec.label(v)}" for v in spec.values]
    variants = [_variant(rule, spec, v, crs.hop_ms, vid) for v, vid in zip(spec.values, shared_ids)]
    separate = [_with(crs, rule, [dataclasses.replace(v, id=rule.id)]) for v in variants]
    reason = ""
    if any(rule.id == src for r in crs.rules for src, _ in r.inhibited_by):
        reason = f"{rule.id!r} is an inhibition source"
    elif any(s.rules is not None and rule.id in s.rules for s in crs.silences):
        reason = f"a silence names {rule.id!r}"
    else:
        shared = _with(crs, rule, variants)
        if any(s.max_bins != shared.max_bins for s in separate):
            reason = "the swept windows change the longest window of the set"
        else:
            return SweepPlan(spec, True, "", [shared], shared_ids)
    return SweepPlan(spec, False, reason, separate, [rule.id] * len(spec.values))


def sweep_counts(plan: SweepPlan, lane_events: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """Alerts (FIRING events) of the swept rule per value and per business line; JSON-able."""
    rows = []
    prefix = plan.spec.rule_id + "@"
    for i, value in enumerate(plan.spec.values):
        events = lane_events[plan.lane_of(i)]
        vid = plan.variant_ids[i]
        by_line: Counter = Counter()
        calls: set[str] = set()
        others = 0
        for ev in events:
            if ev["status"] != "FIRING":
                continue
            if ev["rule_id"] == vid:
                by_line[ev["business_line"]] += 1
                calls.add(ev["call_id"])
            elif not ev["rule_id"].startswith(prefix):  # the set's other rules (not another value's variant)
                others += 1
        alerts = sum(by_line.values())
        rows.append({"value": value, "label": plan.spec.label(value), "alerts": alerts, "calls": len(calls),
                     "by_business_line": dict(sorted(by_line.items())), "set_alerts": alerts + others})
    return {"rule_id": plan.spec.rule_id, "param": plan.spec.param, "sweep": plan.spec.text,
            "mode": "shared" if plan.shared else "separate", "why_separate": plan.reason, "values": rows}
