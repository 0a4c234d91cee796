"""The pure rule evaluator: ``step(state, scores, ruleset) -> (state, events)``.

One call's state is a JSON-serialisable dict (stored by the rules app in a Faust Table):

    {"v": 2, "r": {ROLE: {"seq": last seq, "t": end offset of the last message (ms),
                          "hop": ms, "ring": complete bins since reset (windows.encode_ring),
                          "open": [bin, n, 9 sums], "rules": {rule_id: lifecycle state},
                          "end": true once end_of_call was seen}}}

Nothing here reads the clock: every time is a call offset or the message's event time.
The input state is never mutated; the returned state is a new dict sharing unchanged parts.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import numpy as np

from emowatch.rules.combined import combined_item
from emowatch.rules.compiler import SEQUENCE, CompiledRuleSet, compile_ruleset
from emowatch.rules.conversation import Item, copy_call_state, run_many
from emowatch.rules.errors import ScoresError
from emowatch.rules.inputs import logits_of, speech_of
from emowatch.rules.lifecycle import inhibited, make_event, observe_sequence, snapshot, transition
from emowatch.rules.model import RuleSet
from emowatch.rules.windows import advance, decode_ring, encode_ring
from emowatch.topics.model_io import FRAME_MS

STATE_VERSION = 2
_READABLE_VERSIONS = (1, 2)  # v1 stored the window ring as nested lists; decode_ring reads both


def new_state() -> dict[str, Any]:
    """An empty call state."""
    return {"v": STATE_VERSION, "r": {}}


def step(state: dict[str, Any] | None, scores: dict[str, Any],
         ruleset: RuleSet | CompiledRuleSet) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Evaluate one FrameScores message against ``ruleset``.

    Returns the call's new state and the Alert events (FIRING / RESOLVED dicts) in
    evaluation order. Messages of another business line (unless the rule set is ``*``)
    and duplicate or older ``seq`` for the same role change nothing and emit nothing.
    Raises :class:`ScoresError` for a malformed message.

    Three phases: :func:`begin` (checks, the window state to continue from), ``advance`` (the
    windows, :mod:`emowatch.rules.windows`) and :func:`finish` (rules, events, new state);
    :mod:`emowatch.rules.batched` runs the middle one for many calls' messages at once.
    """
    crs = compile_ruleset(ruleset)
    p = begin(state, scores, crs)
    if isinstance(p, tuple):
        return p
    return finish(p, advance(p.ring, p.open_bin, p.logits, p.start, p.frame_ms, crs.hop_ms, crs.lay,
                             crs.max_bins, close_tail=p.end_of_call, speech=p.speech, pre=p.pre), crs)


class Pending(Item):
    """One message between :func:`begin` and :func:`finish` (and then its part in the conversation rules)."""

    __slots__ = ("end_ms", "logits", "open_bin", "pre", "ring", "seq", "state")


def begin(state: dict[str, Any] | None, scores: dict[str, Any], crs: CompiledRuleSet,
          arrays: bool = True) -> Pending | tuple[dict[str, Any], list[dict[str, Any]]]:
    """The checks of :func:`step`: its result when the message changes nothing, else the :class:`Pending`
    message (its logits, the window state it continues from, the events of removed rules).

    ``arrays=False``: the logits and voice activity are left to the caller (``p.logits``/``p.speech`` are
    ``None``; :func:`emowatch.rules.inputs.arrays_many` checks and converts many messages' at once)."""
    if not state or state.get("v") not in _READABLE_VERSIONS:
        state = new_state()
    business_line = scores.get("business_line") or ""
    if crs.business_line != "*" and business_line != crs.business_line:
        return state, []
    role, seq = scores.get("role"), scores.get("seq")
    if role not in ("CUSTOMER", "AGENT", "MIXED") or not isinstance(seq, int):
        raise ScoresError(f"bad role/seq: role={role!r} seq={seq!r}")
    old = (roles := state.get("r", {})).get(role)
    if old is not None and seq <= old["seq"]:
        return state, []
    p = Pending()
    p.state, p.roles, p.scores, p.role, p.seq = state, roles, scores, role, seq
    n = scores.get("n_frames")
    if arrays or not isinstance(n, int) or n < 0:
        p.logits = logits = logits_of(scores)
        n = logits.shape[0]
        p.speech = speech_of(scores, n)
    else:
        p.logits = p.speech = None
    p.start, p.frame_ms = start, frame_ms = int(scores["start_ms"]), int(scores.get("frame_ms") or FRAME_MS)
    p.end_ms = start + n * frame_ms
    p.base = base = int(scores["event_time"]) - start
    p.end_of_call = bool(scores.get("end_of_call"))
    live = old is not None and not old.get("end")
    p.rules_state = rules_state = ({rid: dict(st) for rid, st in old.get("rules", {}).items()}  # type: ignore[union-attr]
                                   if live else {})
    p.events = events = []
    for rid in ([] if rules_state.keys() <= crs.by_id.keys()
                else [r for r in rules_state if r not in crs.by_id]):  # rule removed or disabled by a reload
        snap = rules_state.pop(rid).get("ev")
        if snap is not None:
            events.append(make_event("RESOLVED", snap, crs, scores, start, snap["v"], base))
    lay = crs.lay
    same_layout = live and old.get("ly", "s") == lay.tag and old.get("hop") == crs.hop_ms  # type: ignore[union-attr]
    continuous = (same_layout and not scores.get("gap_before") and old.get("t") == start  # type: ignore[union-attr]
                  and seq == old["seq"] + 1)  # type: ignore[index]
    p.pre = old.get("pre", "") if same_layout else ""  # type: ignore[union-attr]
    if continuous:
        ring = old.get("ring")  # type: ignore[union-attr]
        p.ring, p.open_bin = "" if ring is None else ring, old.get("open")  # type: ignore[union-attr]
    else:
        if same_layout and lay.has_baseline and old.get("ring") is not None:  # type: ignore[union-attr]
            kept = decode_ring(old["ring"], lay.width)  # type: ignore[index]
            if len(kept):  # the bins before a gap still count for the baseline
                before = decode_ring(p.pre, lay.width)[0] if len(p.pre) else 0.0
                p.pre = encode_ring((before + kept.sum(axis=0))[None, :])
        p.ring, p.open_bin = "", None
        for st in rules_state.values():  # smoothing restarts: pending episodes and sequence progress too
            if st.get("st") == "p":
                del st["st"], st["s"]
            st.pop("sq", None)
    return p


class Given(NamedTuple):
    """What :func:`finish` is given about one message when it was computed for many messages at once
    (:mod:`emowatch.rules.batched`); a ``None`` part is computed by :func:`finish` itself."""

    values: Any = None     # threshold rules: (values, holds, valid, any_hold), see threshold_conditions
    holds: Any = None
    valid: Any = None
    any_hold: Any = None
    dominant: Any = None   # windows: (n_windows, E) dominant class and its probability
    p_max: Any = None
    progress: dict[int, list[int | None] | None] | None = None
    """sequence rule index -> its new ``sq`` (None: no progress), for the rules that can only progress in this
    message (``lifecycle.progress_many``); absent rules go point by point"""
    compound: list[tuple[Any, tuple[Any, ...]]] | None = None
    """the combined rules with something to do, each with its tree's values and holds at every point, its new node
    memory and whether it holds anywhere (``combined.compound_many``); the others change nothing"""


def finish(p: Pending, win: Any, crs: CompiledRuleSet, conditions: Given | None = None,
           defer: list[Any] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The rules at the message's evaluation points (``win``: its ``advance`` result), the events, the new state.

    ``conditions`` (optional): the rules' inputs at every point of ``win`` when computed for many messages at
    once (:class:`Given`). A kind of condition without a column-wise form is simply computed here."""
    scores, rules_state, events, end_ms, base = p.scores, p.rules_state, p.events, p.end_ms, p.base
    last_value: dict[str, float] = {}
    if win.times.shape[0] and crs.threshold_matrix.shape[1] and (conditions is None or conditions.values is None):
        conditions = (conditions or _NOT_GIVEN)._replace(  # once, for the rules and the conversation's leaves
            **dict(zip(("values", "holds", "valid", "any_hold"), threshold_conditions(crs, win.probs, win.valid))))
    if win.times.shape[0]:
        _run_points(crs, win, scores, p.role, p.roles, rules_state, base, events, last_value, conditions,
                    (p.state.get("c") or {}).get("r"))
    for rid in list(rules_state):
        st = rules_state[rid]
        if p.end_of_call and "ev" in st:
            events.append(make_event("RESOLVED", st["ev"], crs, scores, end_ms,
                                     last_value.get(rid, st["ev"]["v"]), base))
        if st.get("cd", end_ms + 1) <= end_ms:
            del st["cd"]
        if not st:
            del rules_state[rid]
    if p.end_of_call:
        new_role: dict[str, Any] = {"seq": p.seq, "t": end_ms, "end": True}
    else:
        new_role = {"seq": p.seq, "t": end_ms, "hop": crs.hop_ms, "ring": win.ring}
        if win.open is not None:
            new_role["open"] = win.open
        if rules_state:
            new_role["rules"] = rules_state
        if len(win.pre):
            new_role["pre"] = win.pre
        tag = crs.lay.tag
        if tag != "s":
            new_role["ly"] = tag
    new_state = {**p.state, "v": STATE_VERSION, "r": {**p.roles, p.role: new_role}}
    if crs.call_rules:
        it = _call(p, win, crs, conditions)
        new_state["c"] = it.c
        if defer is None:
            run_many([it], crs)
        else:
            defer.append(it)  # the caller runs conversation.run_many for many calls at once
    return new_state, events


def _call(p: Pending, win: Any, crs: CompiledRuleSet, given: Given | None) -> Item:
    """This message's part in the conversation rules (:mod:`emowatch.rules.conversation`), on a working copy of
    the call state: recorded and evaluated by ``conversation.run_many`` (for many calls at once in ``step_many``)."""
    p.c = c = copy_call_state(p.state.get("c"), crs)
    p.n, p.times = p.logits.shape[0], win.times
    if p.role in crs.role_leaf_cols and win.times.shape[0] and not c.get("end"):
        p.values, p.valid = given.values, given.valid  # type: ignore[union-attr]  # every column: run_many picks
    else:
        p.values = p.valid = None
    return p


_NOT_GIVEN = Given()


def threshold_conditions(crs: CompiledRuleSet, probs: np.ndarray, valid: np.ndarray) -> tuple[Any, ...]:
    """Every column's (threshold rule's, then the combined rules' leaves') value and condition at every point:
    ``(values (E, C), holds (E, C), valid (E, C), any_hold: list[bool] per threshold rule)``. ``probs`` and
    ``valid`` may carry leading batch axes (``(..., n_windows, E, 9)``, ``(..., n_windows, E)``, the same windows
    and points): the results then carry them too, and ``any_hold`` is an array."""
    *lead, n_windows, n_points, n_classes = probs.shape
    flat = probs.swapaxes(-3, -2).reshape(-1, n_windows * n_classes)
    values = (flat @ crs.threshold_matrix).reshape(*lead, n_points, crs.threshold_matrix.shape[1])  # (..., E, C)
    valid_r = valid[..., crs.threshold_windows, :]
    if crs.two_windows:
        valid_r = valid_r & valid[..., crs.threshold_windows2, :]
    valid_r = valid_r.swapaxes(-1, -2)
    holds = ((values - crs.thresholds) * crs.signs > 0) & valid_r
    any_hold = holds[..., :len(crs.threshold_rules)].any(axis=-2)
    return values, holds, valid_r, any_hold if lead else any_hold.tolist()


def _run_points(crs: CompiledRuleSet, win: Any, scores: dict[str, Any], role: str, roles: dict[str, Any],
                rules_state: dict[str, dict[str, Any]], base: int, events: list[dict[str, Any]],
                last_value: dict[str, float], conditions: Given | None = None,
                call_rules: dict[str, Any] | None = None) -> None:
    """Condition values for every rule at every evaluation point, then the lifecycle per point.

    Rules whose condition holds nowhere in the message and that have no state are skipped
    (nothing can happen to them); the others go through the lifecycle point by point."""
    business_line = scores.get("business_line") or ""
    attributes = scores.get("attributes") or {}
    scoped = None if crs._attribute_keys else crs._scopes.get((role, business_line))  # crs.scoped, inlined
    if scoped is None:
        scoped = crs.scoped(role, business_line, attributes)
    given = conditions or _NOT_GIVEN
    if (given.progress is not None and given.any_hold is not None and True not in given.any_hold
            and not (crs.compound_rules if given.compound is None else given.compound)
            and crs.threshold_index.keys().isdisjoint(rules_state) and _progress_only(crs, rules_state, scoped,
                                                                                       given.progress)):
        return
    active: list[tuple[Any, ...]] = []  # (rule, values, holds, valid, observe, in_scope, dominant, p_max)
    probs, valid = win.probs, win.valid  # (n_windows, E, 9), (n_windows, E)
    hist = win.hist  # None: the same as valid; else a point with too little speech counts, its condition false
    if crs.threshold_matrix.shape[1]:
        values, holds, valid_r, any_hold = given[:4]  # finish computes them when they are not given
        compound = given.compound
        for rule, part in (((r, None) for r in crs.compound_rules) if compound is None else compound):
            item = combined_item(crs, rule, win.times, values, holds, valid_r, rules_state, rule.id in scoped, part)
            if item is not None:
                active.append(item)
        hist_r = valid_r if hist is None else None  # computed when a threshold rule needs it
        index = crs.threshold_index
        todo = [j for j, h in enumerate(any_hold) if h] if True in any_hold else []
        todo += [j for rid in rules_state if (j := index.get(rid)) is not None and not any_hold[j]]
        for j in todo:
            rule = crs.threshold_rules[j]
            in_scope = rule.id in scoped
            if in_scope or rule.id in rules_state:
                if hist_r is None:
                    hist_r = history_columns(crs, hist)  # type: ignore[arg-type]
                active.append((rule, values[:, j].tolist(), holds[:, j].tolist(), hist_r[:, j].tolist(), None,
                               in_scope, None, None))
    deferred: list[tuple[Any, ...]] = []  # new sequence progress, inserted only if no other rule is active
    if crs.sequence_rules:
        dominant_all, p_max_all = (given[4:6] if given.dominant is not None
                                   else (probs.argmax(axis=2), probs.max(axis=2)))
        progress = given.progress
        for si, (rule, wi) in enumerate(crs.sequence_rules):
            in_scope = rule.id in scoped
            st = rules_state.get(rule.id)
            if progress is not None and in_scope and si in progress:
                # computed for many messages at once (lifecycle.progress_many): the rule is not matched, not in
                # an episode, and its last step is reached nowhere in this message - only ``sq`` moves
                steps = progress[si]
                if st is not None:
                    _move_progress(st, steps)
                elif steps is not None:
                    deferred.append((steps, (rule, probs[wi, :, rule.last_col].tolist(), None,
                                             *_seq_valid(valid[wi], hist, wi), in_scope, dominant_all[wi].tolist(),
                                             p_max_all[wi].tolist())))
                continue
            dominant, p_max, ok = dominant_all[wi], p_max_all[wi], valid[wi]
            if st is not None and in_scope and "st" not in st and "m" not in st:
                ok_l, dom_l, top_l = ok.tolist(), dominant.tolist(), p_max.tolist()
                last, thr = rule.last_col, rule.threshold
                if not any(v and d == last and p >= thr for v, d, p in zip(ok_l, dom_l, top_l)):
                    # the last step is never reached here, so the condition cannot hold: the lifecycle stays
                    # inactive at every point and only the sequence progress moves (as in the loop below)
                    for t, v, d, p in zip(win.times.tolist(), ok_l, dom_l, top_l):
                        if v:
                            observe_sequence(st, rule, t, d, p)
                    continue
                active.append((rule, probs[wi, :, rule.last_col].tolist(), None, *_seq_valid(ok, hist, wi), in_scope,
                               dom_l, top_l))
            elif st is not None or (in_scope and bool(
                    (ok & (p_max >= rule.threshold) & rule.step_mask[dominant]).any())):
                active.append((rule, probs[wi, :, rule.last_col].tolist(), None, *_seq_valid(ok, hist, wi), in_scope,
                               dominant.tolist(), p_max.tolist()))
    if deferred:
        if not active and len(deferred) == 1:  # alone: its new state holds just the progress, as the loop leaves it
            steps, item = deferred[0]
            rules_state[item[0].id] = {"sq": steps}
            return
        active += [item for _, item in deferred]  # else the loop creates the rules' states, in its order
    if not active:
        return
    active.sort(key=lambda item: item[0].order)
    for j, t in enumerate(win.times.tolist()):
        stepped = []
        for rule, values, holds, valid_j, observe, in_scope, dominant, p_max in active:
            if not valid_j[j]:
                continue
            st = rules_state.setdefault(rule.id, {})
            value = values[j]
            last_value[rule.id] = value
            if not in_scope:  # e.g. call attributes changed: the condition is false
                ok = False
                st.pop("m", None)
                st.pop("sq", None)
            elif rule.kind != SEQUENCE:
                ok = holds[j]
            elif observe is not None and not observe[j]:  # too little speech: no dominant emotion to follow
                ok = False
                st.pop("m", None)
            else:
                ok = observe_sequence(st, rule, t, dominant[j], p_max[j])
            if rule.scope is not None and not rule.scope[0] <= t <= rule.scope[1]:
                ok = False  # outside the rule's during/after span
            ended = transition(st, ok, t, rule)
            if ended is not None:
                events.append(make_event("RESOLVED", ended, crs, scores, t, value, base))
            stepped.append((rule, st, value))
        for rule, st, value in stepped:
            if st.get("st") != "f" or "ev" in st:
                continue
            if st.get("cd", -1) > t:
                continue  # cooldown after the previous episode
            if crs.silences and crs.silenced(rule.id, scores["call_id"], scores.get("business_line") or "",
                                              role, base + t):
                continue
            if rule.inhibited_by and inhibited(rule, role, rules_state, roles, call_rules, crs.subjects):
                continue
            snap = snapshot(crs, rule, scores, st["s"], value)
            st["ev"] = snap
            st.pop("cd", None)
            events.append(make_event("FIRING", snap, crs, scores, t, value, base))


def _progress_only(crs: CompiledRuleSet, rules_state: dict[str, dict[str, Any]], scoped: frozenset[str],
                   progress: dict[int, Any]) -> bool:
    """The usual message (no threshold or combined rule to do, every sequence rule in scope only progressing:
    ``Given.progress``) as :func:`_run_points`' loop does it, with fewer operations; False (nothing done) else."""
    if len(progress) != len(crs.sequence_rules) or not crs.sequence_ids <= scoped:
        return False
    if sum(progress[si] is not None and r.id not in rules_state for si, (r, _) in enumerate(crs.sequence_rules)) > 1:
        return False  # several new states: the loop creates them, in its order
    for si, (rule, _) in enumerate(crs.sequence_rules):
        steps, st = progress[si], rules_state.get(rule.id)
        if st is not None:
            _move_progress(st, steps)
        elif steps is not None:
            rules_state[rule.id] = {"sq": steps}
    return True


def _move_progress(st: dict[str, Any], steps: list[int | None] | None) -> None:
    """A sequence rule's new progress (``None``: none) in its state."""
    if steps is None:
        st.pop("sq", None)
    else:
        st["sq"] = steps


def _seq_valid(ok: np.ndarray, hist: np.ndarray | None, wi: int) -> tuple[list[bool], list[bool] | None]:
    """A sequence rule's lifecycle points and the points it observes (None: the same)."""
    return (ok.tolist(), None) if hist is None else (hist[wi].tolist(), ok.tolist())


def history_columns(crs: CompiledRuleSet, hist: np.ndarray) -> np.ndarray:
    """Per column, whether its windows lie after the reset (``(..., E, C)``), scored or not."""
    h = hist[..., crs.threshold_windows, :]
    if crs.two_windows:
        h = h & hist[..., crs.threshold_windows2, :]
    return h.swapaxes(-1, -2)


def state_size_bytes(state: dict[str, Any] | None) -> int:
    """Approximate stored size of one call's state: ``len(json.dumps(state))``."""
    return len(json.dumps(state)) if state is not None else 0


def call_finished(state: dict[str, Any] | None) -> bool:
    """True when every role seen has ended (the rules app may then drop the table entry)."""
    roles = (state or {}).get("r", {})
    return bool(roles) and all(r.get("end") for r in roles.values())

