"""Many calls' messages at once: ``step_many(items, crs)`` equals ``[step(state, scores, crs) for ...]``.

For replays (``streams/replay``), which hold thousands of calls' messages at a time: each message is
checked (:func:`~emowatch.rules.engine.begin`) and finished (:func:`~emowatch.rules.engine.finish`) by the
same code as :func:`~emowatch.rules.engine.step`; only the window scoring runs once for all of them
(:func:`~emowatch.rules.windows.advance_many`, equal to ``advance`` one by one), and so do the threshold
rules' conditions when that is exact (:func:`~emowatch.rules.engine.threshold_conditions`). The items must belong to
different calls (a call's next message needs the state this one returns). The states returned keep the window
ring as a float32 array instead of its string form (same values; fine for throw-away states, not for storage).
"""
from __future__ import annotations

from typing import Any

from emowatch.rules.compiler import CompiledRuleSet
from emowatch.rules.engine import Pending, begin, finish, threshold_conditions
from emowatch.rules.errors import ScoresError
from emowatch.rules.windows import advance_many

__all__ = ["step_many"]

Result = tuple[dict[str, Any], list[dict[str, Any]]] | ScoresError


def step_many(items: list[tuple[dict[str, Any] | None, dict[str, Any]]], crs: CompiledRuleSet) -> list[Result]:
    """``(new state, events)`` per ``(state, scores)`` item, or the :class:`ScoresError` ``step`` would raise."""
    results: list[Result | None] = [None] * len(items)
    pending: list[tuple[int, Pending]] = []
    for i, (state, scores) in enumerate(items):
        try:
            p = begin(state, scores, crs)
        except ScoresError as exc:
            results[i] = exc
            continue
        if isinstance(p, tuple):
            results[i] = p
        else:
            pending.append((i, p))
    groups: list[tuple[list[int], Any, Any]] = []
    wins = advance_many([(p.ring, p.open_bin, p.logits, p.start, p.frame_ms, p.end_of_call) for _, p in pending],
                        crs.hop_ms, crs.windows, crs.max_bins, groups)
    conditions: dict[int, tuple[Any, ...]] = {}
    # one product for a whole group: exact, as every value is a sum of at most two probabilities (any
    # order of adding them gives the same float); wider sums are left to each message's own product
    shared_values = bool(crs.threshold_rules) and all(len(r.cols) <= 2 for r in crs.threshold_rules)
    for members, probs, valid in groups:
        thresholds: list[Any] = [None] * 4
        if shared_values:
            thresholds = list(threshold_conditions(crs, probs, valid))
            thresholds[3] = thresholds[3].tolist()
        top = (probs.argmax(axis=-1), probs.max(axis=-1)) if crs.sequence_rules else (None, None)
        for b, k in enumerate(members):
            values, holds, valid_r, any_hold = thresholds
            conditions[k] = (None if values is None else values[b], None if holds is None else holds[b], valid_r,
                             None if any_hold is None else any_hold[b],
                             None if top[0] is None else top[0][b], None if top[1] is None else top[1][b])
    for k, ((i, p), win) in enumerate(zip(pending, wins)):
        results[i] = win if isinstance(win, ScoresError) else finish(p, win, crs, conditions.get(k))
    return results  # type: ignore[return-value]
