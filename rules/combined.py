"""Combined rules (kind COMPOUND) on one role's messages: their trees at a message's points
(:mod:`emowatch.rules.tree`), one message at a time (:func:`combined_item`, for ``engine._run_points``) or a
whole group of messages at once (:func:`compound_many`, for ``batched.step_many``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from emowatch.rules.lifecycle import LIFECYCLE_KEYS
from emowatch.rules.tree import Context, evaluate, in_span


def combined_item(crs: Any, rule: Any, times: np.ndarray, values: np.ndarray, holds: np.ndarray,
                  valid: np.ndarray, rules_state: dict[str, dict[str, Any]], in_scope: bool,
                  given: tuple[Any, Any, dict[str, Any], bool] | None = None) -> tuple[Any, ...] | None:
    """A combined rule's tree at every point (its node memory updated in its state); its ``active`` entry when
    its lifecycle has something to do. ``given``: the tree's values, holds (inside the rule's span), new memory and
    whether it holds anywhere, computed for many messages at once (:func:`compound_many`)."""
    st = rules_state.get(rule.id)
    if not in_scope and st is None:
        return None
    if given is not None:
        v, h, mem, any_h = given
    else:
        cols = crs.leaf_cols[rule.id]
        mem = dict(st.get("n", {})) if st else {}

        def leaf(i: int) -> tuple[np.ndarray, ...]:
            c = cols[i]
            return values[None, :, c], holds[None, :, c], valid[None, :, c]

        v, h, _ = (a[0] for a in evaluate(rule.tree, Context(times[None, :], leaf, None, [mem])))
        span = in_span(times, rule.scope)
        if span is not None:
            h = h & span
        any_h = bool(h.any())
    if mem:
        st = rules_state.setdefault(rule.id, {})
        st["n"] = mem
    elif st is not None:
        st.pop("n", None)
        if not st:
            del rules_state[rule.id]
            st = None
    if not (in_scope and any_h) and (st is None or not LIFECYCLE_KEYS.intersection(st)):
        return None  # nothing can happen to its alert (its node memory is kept)
    return rule, v.tolist(), h.tolist(), [True] * len(times), None, in_scope, None, None


_NO_MEMORY: dict[str, Any] = {}


def compound_many(crs: Any, times: np.ndarray, values: np.ndarray, holds: np.ndarray, valid: np.ndarray,
                  members: list[Any]) -> list[list[tuple[Any, tuple[Any, Any, dict[str, Any], bool]]]]:
    """Per member of a group: ``(rule, given)`` for every combined rule that has something to do in that message -
    it has a state, a node memory, or it holds somewhere - with its tree values and holds at the message's points
    (inside the rule's span), its new node memory and whether it holds anywhere (the ``given`` of
    :func:`combined_item`); the trees evaluated on the whole group's arrays at once (rows: messages). A rule
    absent for a member changes nothing there."""
    out: list[list[tuple[Any, tuple[Any, Any, dict[str, Any], bool]]]] = [[] for _ in members]
    for rule in crs.compound_rules:
        cols = crs.leaf_cols[rule.id]
        rid = rule.id
        states = [p.rules_state.get(rid) for p in members]
        mems = [st.get("n") or _NO_MEMORY if st else _NO_MEMORY for st in states]  # copied by a node that changes one

        def leaf(i: int, cols: np.ndarray = cols) -> tuple[np.ndarray, ...]:
            c = cols[i]
            return values[..., c], holds[..., c], valid[..., c]

        v, h, _ = evaluate(rule.tree, Context(times, leaf, None, mems, [True] * len(mems)))
        span = in_span(times, rule.scope)
        if span is not None:
            h = h & span
        for b, any_b in enumerate(h.any(axis=1).tolist()):
            if any_b or states[b] is not None or mems[b]:
                out[b].append((rule, (v[b], h[b], mems[b], any_b)))
    return out
