"""Combined rules (kind COMPOUND) on one role's messages: their trees at a message's points
(:mod:`emowatch.rules.tree`), one message at a time (:func:`combined_item`, for ``engine._run_points``) or a
whole group of messages at once (:func:`compound_many`, for ``batched.step_many``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from emowatch.rules.lifecycle import LIFECYCLE_KEYS
from emowatch.rules.tree import Context, evaluate, in_span


def combined_item(crs: Any, rule: Any, times: np.ndarray, values: np.ndarray, holds: np.ndarray,
              valid: np.ndarray, rules_state: dict[str, dict[str, Any]], role: str, business_line: str,
              attributes: dict[str, str], given: tuple[Any, Any, dict[str, Any]] | None = None,
              ) -> tuple[Any, ...] | None:
    """A combined rule's tree at every point (its node memory updated in its state); its ``active`` entry when
    its lifecycle has something to do. ``given``: the tree's values, holds and new memory, computed for many
    messages at once (:func:`compound_many`)."""
    cols = crs.leaf_cols[rule.id]
    st = rules_state.get(rule.id)
    in_scope = rule.in_scope(role, business_line, attributes)
    if not in_scope and st is None:
        return None
    if given is not None:
        v, h, mem = given
    else:
        mem = dict(st.get("n", {})) if st else {}

        def leaf(i: int) -> tuple[np.ndarray, ...]:
            c = cols[i]
            return values[None, :, c], holds[None, :, c], valid[None, :, c]

        v, h, _ = (a[0] for a in evaluate(rule.tree, Context(times[None, :], leaf, None, [mem])))
    span = in_span(times, rule.scope)
    if span is not None:
        h = h & span
    if mem:
        st = rules_state.setdefault(rule.id, {})
        st["n"] = mem
    elif st is not None:
        st.pop("n", None)
        if not st:
            del rules_state[rule.id]
            st = None
    if not (in_scope and h.any()) and (st is None or not LIFECYCLE_KEYS.intersection(st)):
        return None  # nothing can happen to its alert (its node memory is kept)
    return rule, v.tolist(), h.tolist(), [True] * len(times), None, in_scope, None, None



def compound_many(crs: Any, times: np.ndarray, values: np.ndarray, holds: np.ndarray, valid: np.ndarray,
                  members: list[Any]) -> list[dict[str, tuple[Any, Any, dict[str, Any]]]]:
    """Per member of a group: every combined rule's tree values and holds at its points and its new node memory,
    the trees evaluated on the whole group's arrays at once (rows: messages; see ``engine._compound``)."""
    out: list[dict[str, tuple[Any, Any, dict[str, Any]]]] = [{} for _ in members]
    for rule in crs.compound_rules:
        cols = crs.leaf_cols[rule.id]
        mems = [dict((p.rules_state.get(rule.id) or {}).get("n", {})) for p in members]

        def leaf(i: int, cols: np.ndarray = cols) -> tuple[np.ndarray, ...]:
            c = cols[i]
            return values[..., c], holds[..., c], valid[..., c]

        v, h, _ = evaluate(rule.tree, Context(times, leaf, None, mems))
        for b in range(len(members)):
            out[b][rule.id] = (v[b], h[b], mems[b])
    return out
