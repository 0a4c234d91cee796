"""Cross-field checks of a validated rule set (things one field's validator cannot see).

Each problem is ``(path, reason)``; the loader turns paths into line numbers.
"""

from __future__ import annotations

from typing import Any

from emowatch.rules.conditions import CONVERSATION, walk
from emowatch.rules.model import Rule, RuleSet
from emowatch.topics.model_io import FRAME_MS

Problem = tuple[tuple[Any, ...], str]


def cross_check(rs: RuleSet, raw: dict[str, Any]) -> list[Problem]:
    """Duplicate ids, unknown rule references, windows that the hop does not divide, example timing."""
    problems: list[Problem] = []
    first: dict[str, int] = {}
    for i, rule in enumerate(rs.rules):
        if rule.id in first:
            problems.append((("rules", i, "id"), f"duplicate rule id {rule.id!r} "
                             f"(also rules[{first[rule.id]}])"))
        else:
            first[rule.id] = i
    ids = set(first)
    hop = rs.defaults.hop
    for i, rule in enumerate(rs.rules):
        raw_rule = raw["rules"][i]
        window = rule.window if rule.window is not None else rs.defaults.window
        where = ("rules", i, "window") if "window" in raw_rule else ("defaults", "window")
        if window < hop or window % hop:
            problems.append((where, f"window {window}ms of rule {rule.id!r} is not a multiple of "
                             f"defaults.hop ({hop}ms)"))
        for j, example in enumerate(rule.examples):
            base = ("rules", i, "examples", j)
            if example.chunk % FRAME_MS:
                problems.append((base + ("chunk",), f"example chunk must be a multiple of {FRAME_MS}ms"))
            for role, steps in example.timelines().items():
                where = ("scores",) if example.tracks is None else ("tracks", role)
                for k, step in enumerate(steps):
                    if step.for_ % FRAME_MS:
                        problems.append((base + where + (k, "for"),
                                         f"example step must be a multiple of {FRAME_MS}ms (one frame)"))
            for k, exp in enumerate(example.expect):
                if exp.rule is not None and exp.rule not in ids:
                    problems.append((base + ("expect", k, "rule"), f"unknown rule {exp.rule!r}"))
        problems += _condition_problems(rule, i, hop)
    for i, inh in enumerate(rs.inhibit):
        for side in ("source", "target"):
            for k, rid in enumerate(getattr(inh, side).rules):
                if rid not in ids:
                    problems.append((("inhibit", i, side, "rules", k), f"unknown rule {rid!r}"))
    for i, silence in enumerate(rs.silences):
        for k, rid in enumerate(silence.rules):
            if rid not in ids:
                problems.append((("silences", i, "rules", k), f"unknown rule {rid!r}"))
    return problems


def _condition_problems(rule: Rule, i: int, hop: int) -> list[Problem]:
    """Look-backs the hop does not divide; a conversation rule's hop too long for frame bits."""
    out: list[Problem] = []
    where = ("rules", i, "when")
    for cond in walk(rule.when):
        over = getattr(cond, "over", None)
        if over is not None and over % hop:
            out.append((where, f"'over' {over}ms of rule {rule.id!r} is not a multiple of defaults.hop ({hop}ms)"))
        if isinstance(cond, CONVERSATION) and hop // FRAME_MS > 60:
            out.append((where, f"rule {rule.id!r} uses voice activity, which needs defaults.hop <= 1200ms"))
    return out
