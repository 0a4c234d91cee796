"""Many calls' messages at once: ``step_many(items, crs)`` equals ``[step(state, scores, crs) for ...]``.

For the rules worker's batches (:func:`step_batch`) and for replays (``streams/replay``), which hold many calls'
messages at a time: each message is checked (:func:`~emowatch.rules.engine.begin`) and finished
(:func:`~emowatch.rules.engine.finish`) by the same code as :func:`~emowatch.rules.engine.step`; what runs
column-wise, once for all the messages of a group (aligned messages with the same length and history), is

* the window scoring (:func:`~emowatch.rules.windows.advance_many`, equal to ``advance`` one by one),
* the threshold rules' conditions when that is exact (:func:`~emowatch.rules.engine.threshold_conditions`),
* the sequence rules' progress at every point where a rule can only progress - not matched, not in an episode,
  its last step reached nowhere in the message, the usual case (:func:`~emowatch.rules.lifecycle.progress_many`).

Per message there remains only what depends on its own state: the checks, and the lifecycle of the rules
that are pending, firing, cooling down or whose condition holds somewhere in the message (most messages have
none: they only get their new window state). The items of one ``step_many`` must belong to different calls
(a call's next message needs the state this one returns); :func:`step_batch` takes a batch in arrival order and
evaluates it in waves. The states returned keep the window ring as a float32 array instead of its string form
(same values, cheaper to carry from one message to the next); :func:`stored_form` gives the form to store.

A new kind of condition plugs in with its per-message form alone (``engine._run_points``): what
:class:`~emowatch.rules.engine.Given` does not carry is computed per message; a column-wise form (a new field
of ``Given``, filled here per group) is an optimisation, checked against ``step`` by ``tests/rules``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Any

import numpy as np

from emowatch.rules.callstate import stored_call
from emowatch.rules.combined import compound_many
from emowatch.rules.compiler import CompiledRuleSet
from emowatch.rules.conversation import run_many
from emowatch.rules.engine import Given, Pending, begin, finish, step, threshold_conditions
from emowatch.rules.errors import ScoresError
from emowatch.rules.inputs import arrays_many
from emowatch.rules.lifecycle import NO_STEP, progress_many
from emowatch.rules.windows import advance_many, encode_ring

__all__ = ["GC_THRESHOLD0", "step_batch", "step_many", "stored_form"]

Result = tuple[dict[str, Any], list[dict[str, Any]]] | ScoresError
GC_THRESHOLD0 = 20_000
"""The cyclic GC's first threshold for a process that evaluates batches (the rules worker): a batch allocates many
short-lived dicts and lists that reference counting frees; with Python's default (700) the collections they trigger
cost ~4 % of the evaluation (measured: instructions per message, the bench's 20 rules), with this ~0."""
MIN_WAVE = 4
"""Waves of fewer messages go through ``step`` one by one: the array operations' fixed cost is not repaid (measured
with the bench's 10 rules: per message ~180 us for waves of 1, ~70 us for 4, ~25 us for 100+; ``step`` ~70 us)."""


def step_many(items: list[tuple[dict[str, Any] | None, dict[str, Any]]], crs: CompiledRuleSet) -> list[Result]:
    """``(new state, events)`` per ``(state, scores)`` item, or the :class:`ScoresError` ``step`` would raise."""
    results: list[Result | None] = [None] * len(items)
    begun: list[tuple[int, Pending]] = []
    for i, (state, scores) in enumerate(items):
        try:
            p = begin(state, scores, crs, arrays=False)
        except ScoresError as exc:
            results[i] = exc
            continue
        if isinstance(p, tuple):
            results[i] = p
        else:
            begun.append((i, p))
    pending: list[tuple[int, Pending]] = []
    for (i, p), arrays in zip(begun, arrays_many([p.scores for _, p in begun])):
        if isinstance(arrays, ScoresError):
            results[i] = arrays
        else:
            if p.logits is None:
                p.logits, p.speech = arrays
            pending.append((i, p))
    groups: list[tuple[list[int], Any, Any, Any, Any]] = []
    wins = advance_many([(p.ring, p.open_bin, p.logits, p.start, p.frame_ms, p.end_of_call, p.speech, p.pre)
                         for _, p in pending],
                        crs.hop_ms, crs.lay, crs.max_bins, groups)
    conditions: list[Given | None] = [None] * len(pending)
    # one product for a whole group: exact, as every value is a sum of at most two probabilities (any
    # order of adding them gives the same float); wider sums are left to each message's own product
    shared_values = bool(crs.threshold_matrix.shape[1]) and crs.shared_exact
    for members, probs, valid, times, _ in groups:
        thresholds: list[Any] = [None] * 4
        if shared_values:
            thresholds = list(threshold_conditions(crs, probs, valid))
            thresholds[3] = thresholds[3].tolist()
        top = (probs.argmax(axis=-1), probs.max(axis=-1)) if crs.sequence_rules else (None, None)
        progress = _sequence_progress(crs, [pending[k][1] for k in members], valid, times, *top)
        values, holds, valid_r, any_hold = thresholds
        compound = (compound_many(crs, times, values, holds, valid_r, [pending[k][1] for k in members])
                    if values is not None and crs.compound_rules else None)
        parts = [repeat(None) if a is None else a for a in (values, holds, valid_r, any_hold, *top)]
        for k, *given in zip(members, *parts, progress, repeat(None) if compound is None else compound):
            conditions[k] = Given._make(given)
    calls: list[Any] = []
    for k, ((i, p), win) in enumerate(zip(pending, wins)):
        results[i] = win if isinstance(win, ScoresError) else finish(p, win, crs, conditions[k], calls)
    if calls:
        run_many(calls, crs)  # the conversation rules of all these calls at once (emowatch.rules.conversation)
    return results  # type: ignore[return-value]


def _sequence_progress(crs: CompiledRuleSet, members: list[Pending], valid: np.ndarray, times: np.ndarray,
                       dominant: np.ndarray | None, p_max: np.ndarray | None) -> list[dict[int, list | None]]:
    """Per member of a group: ``{sequence rule index: its new ``sq`` (None: no progress)}`` for the rules that can
    only progress in that message (see :func:`~emowatch.rules.lifecycle.progress_many`); the others are absent."""
    out: list[dict[int, list | None]] = [{} for _ in members]
    if dominant is None or p_max is None:
        return out
    for si, (rule, wi) in enumerate(crs.sequence_rules):
        dom, top, ok = dominant[:, wi], p_max[:, wi], valid[:, wi]
        reached = ((dom == rule.last_col) & (top >= rule.threshold) & ok).any(axis=1).tolist()
        rows: list[int] = []
        start: list[Any] = []
        rid = rule.id
        for b, p in enumerate(members):
            if reached[b]:
                continue
            st = p.rules_state.get(rid)
            if st is not None and ("st" in st or "m" in st):
                continue
            rows.append(b)
            start.append(None if st is None else st.get("sq"))
        if not rows:
            continue
        blank = [NO_STEP] * len(rule.cols)
        steps = np.array([[NO_STEP if s is None else s for s in sq] if sq else blank for sq in start],
                         dtype=np.int64).reshape(len(rows), len(rule.cols))
        sel = np.asarray(rows)
        progress_many(rule, steps, times[sel], dom[sel], top[sel], ok[sel])
        alive = (steps != NO_STEP).any(axis=1).tolist()
        for b, row, live in zip(rows, steps.tolist(), alive):
            out[b][si] = ([None if s == NO_STEP else s for s in row] if NO_STEP in row else row) if live else None
    return out


def step_batch(messages: Sequence[dict[str, Any]], state_of: Callable[[Any], dict[str, Any] | None],
               crs: CompiledRuleSet) -> list[Result]:
    """A batch of many calls' messages, several per call, in arrival order: per message its call's state after it
    and its events, or its :class:`ScoresError` - what :func:`~emowatch.rules.engine.step` gives one message after
    the other (a message that fails leaves its call's state as it was).

    ``state_of(call_id)`` is a call's state before the batch. The batch runs in waves (the first message of every
    call, then the second, ...), each one :func:`step_many` (fewer than :data:`MIN_WAVE`: ``step``). The states
    returned may hold array rings
    (:func:`stored_form` before storing them)."""
    results: list[Result | None] = [None] * len(messages)
    waves: list[list[int]] = []
    depth: dict[Any, int] = {}
    for i, scores in enumerate(messages):
        call_id = scores.get("call_id")
        k = depth.get(call_id, 0)
        depth[call_id] = k + 1
        if k == len(waves):
            waves.append([])
        waves[k].append(i)
    current: dict[Any, dict[str, Any] | None] = {}
    for wave in waves:
        calls = [messages[i].get("call_id") for i in wave]
        items = [(current[c] if c in current else state_of(c), messages[i]) for c, i in zip(calls, wave)]
        for c, i, res in zip(calls, wave, step_many(items, crs) if len(items) >= MIN_WAVE else map(_step, items,
                                                                                                  repeat(crs))):
            results[i] = res
            if not isinstance(res, ScoresError):
                current[c] = res[0]
    return results  # type: ignore[return-value]


def _step(item: tuple[dict[str, Any] | None, dict[str, Any]], crs: CompiledRuleSet) -> Result:
    try:
        return step(item[0], item[1], crs)
    except ScoresError as exc:
        return exc


def stored_form(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` as :func:`~emowatch.rules.engine.step` stores it: every window ring and baseline row as its string
    (:func:`~emowatch.rules.windows.encode_ring`), the conversation state in its stored form
    (:func:`~emowatch.rules.callstate.stored_call`); the same object when it is that already."""
    roles = state.get("r") or {}
    call = state.get("c")
    stored_c = call if call is None else stored_call(call)
    if not any(isinstance(r.get("ring"), np.ndarray) or isinstance(r.get("pre"), np.ndarray) for r in roles.values()):
        return state if stored_c is call else {**state, "c": stored_c}
    out = {**state, "r": {role: ({**r, **{k: encode_ring(r[k]) for k in ("ring", "pre")
                                         if isinstance(r.get(k), np.ndarray)}}
                                 if isinstance(r.get("ring"), np.ndarray) or isinstance(r.get("pre"), np.ndarray)
                                 else r) for role, r in roles.items()}}
    if stored_c is not call:
        out["c"] = stored_c
    return out
