"""Conversation rules (kind CALL): evaluated on the whole call once every role has reached a point in call time.

The roles' messages arrive independently (and one may run ahead of the other), so each role's message leaves,
per complete hop bin, its voice activity (one bit per frame, FrameScores ``speech`` >= 0.5) and the values of the
leaves that conversation rules score on that role. The call's *frontier* is the first bin not yet seen by every
role the call has (CUSTOMER and AGENT, or MIXED alone for a mono call; a role that has ended no longer holds it
back). Bins before the frontier are evaluated once, in order, whatever order the roles' messages came in: the
same alerts on a replay as live. Where a role's voice activity is not known (its messages carry no ``speech``, a
gap in its audio, after its end, a role that never came) the signals that need it are not valid: no silence or
overtalk is made up from missing data. The signals themselves are computed for many calls at once
(:mod:`emowatch.rules.voice`); :func:`run_many` takes one message of each of many calls.

State ``c`` of the call, as stored (JSON): ``x`` the roles, ``f`` frontier bin, ``p`` per role its pending bins
(``b`` first bin, ``s`` bits, ``l`` per bin ``[mask of the scored leaves, leaf values...]`` (``None``: none
scored), ``o`` an open bin, ``e`` ended), ``v`` per role ``[last speech end, run start]``, ``o`` the overlap run
``[start, end, who started it]``, ``t``/``tn`` speech frames per bin of both roles (base64 of a byte pair per bin)
and how many bins they cover, ``r`` rule states, ``end`` once the call has ended (nothing else is kept then).

In memory (the states :func:`run_many` leaves, carried from one message to the next by ``step_many`` and
``step_batch``) three parts have a cheaper form (:mod:`emowatch.rules.callstate`; ``batched.stored_form`` gives
the stored one; both are accepted): ``p``'s ``l`` is one flat list of the role's leaf values, as many per bin as
the role has leaves (nan: not scored); ``g`` replaces ``v`` and ``o``: ``[last speech end per role..., run start
per role..., overlap start, end, who started it (0: both at once, 1 + role index)]`` as floats (nan: none);
``t`` is bytes, the first role's bins then the second's.
"""

from __future__ import annotations

from itertools import repeat
from operator import is_, is_not
from typing import Any

import numpy as np

from emowatch.rules.callstate import stored_call, talk_rows, working_copy
from emowatch.rules.lifecycle import LIFECYCLE_KEYS, call_inhibited, make_event, snapshot, transition
from emowatch.rules.pending import NAN, leaf_values, record_next, take
from emowatch.rules.pending import bits_many as _bits_many
from emowatch.rules.pending import record as _record
from emowatch.rules.tree import Context, evaluate, in_span
from emowatch.rules.voice import Group, signals

MAX_LAG_MS = 30_000
"""A role this far behind the other is taken as unknown for the oldest bins (live alerts on a call whose other
track never comes, e.g. a mono upload labelled CUSTOMER, are at most this late; bounded state)."""


class Item:
    """One message's part in the conversation rules (built by ``engine.finish``); ``c`` is the call state to
    change (a working copy), ``events`` the message's event list to append to; ``values``/``valid`` all the
    threshold columns at the message's points (``None``: its role's leaves are not needed); ``roles`` and
    ``rules_state`` the call's roles' states and this role's new rule states (for inhibitions). The engine's
    pending message (``engine.Pending``) is one: it carries these parts through both phases."""

    __slots__ = ("base", "c", "end_of_call", "events", "frame_ms", "n", "role", "roles", "rules_state",
                 "scores", "speech", "start", "times", "valid", "values")


def copy_call_state(c: dict[str, Any] | None, crs: Any) -> dict[str, Any]:
    """A working copy of the call state, in memory, that :func:`run_many` may change (the input state, in
    either form, is never mutated)."""
    if c and "g" in c:  # run_many's own, in memory (the usual case): the dicts it changes in place, copied
        out = dict(c)
        if "p" in out:
            out["p"] = dict(out["p"])
        return out
    return working_copy(c, crs.role_leaf_cols)


def run_many(items: list[Item], crs: Any) -> None:
    """Record each message (of a different call each) and evaluate the bins its call's frontier passes. The
    call states are left in memory; a single message (``engine.step``'s) leaves its state in the stored form."""
    hop, role_cols = crs.hop_ms, crs.role_leaf_cols
    bits = _bits_many(items, hop)
    leaves = leaf_values(items, role_cols)
    todo: dict[tuple, list[tuple[Item, int, int]]] = {}
    lag = MAX_LAG_MS // hop
    for it, (bins, bts), values in zip(items, bits, leaves):
        c = it.c
        if c.get("end"):
            continue
        cols = role_cols.get(it.role)
        width = 0 if cols is None else len(cols)
        end = record_next(it, bins, bts, values, hop, width)
        span = None
        if end is not None and len(x := c["x"]) == 2:  # the usual case: both roles live, the frontier at once
            other = c["p"].get(x[0] if x[1] == it.role else x[1])
            f = c.get("f")
            if other is not None and (b := other["b"]) is not None and "e" not in other and f is not None:
                end_o = b + len(other["s"])
                low, high = (end, end_o) if end < end_o else (end_o, end)
                span = f, max(low, high - lag, f)
        if span is None:
            if end is None:
                _record(it, bins, bts, values, hop, width)
            span = _frontier(c, lag)
        if span is not None:
            f, nf = span
            if nf > f:
                todo.setdefault((nf - f, tuple(c["x"])), []).append((it, f, nf))
            elif it.end_of_call:  # (a call ends with the end of its last live role)
                _finish_if_ended(it, crs, f)
    for (n, roles), group in todo.items():
        _evaluate_group(group, n, roles, crs)  # (the calls' frontiers move on)
        for it, _, nf in group:
            if it.end_of_call:
                _finish_if_ended(it, crs, nf)
    if len(items) == 1:
        c = items[0].c
        stored = stored_call(c)
        if stored is not c:
            c.clear()
            c.update(stored)


def _frontier(c: dict[str, Any], lag: int) -> tuple[int, int] | None:
    """``(frontier, new frontier)``: every live role has reached the new one (a role not seen yet holds it at the
    frontier, a role that has ended no longer holds it; none live: the end of the longest track); at most
    ``lag`` bins (:data:`MAX_LAG_MS`) behind the role furthest ahead."""
    if "x" not in c:
        return None
    pend = c.get("p", {})
    low = high = live = None
    waiting = False
    for r in c["x"]:
        p = pend.get(r)
        if p is None or p["b"] is None:
            waiting = True
            continue
        end = p["b"] + len(p["s"])
        low = end if low is None or end < low else low
        high = end if high is None or end > high else high
        if not p.get("e"):
            live = end if live is None or end < live else live
    if high is None:
        return None
    f = c.get("f", low)
    if live is None:  # every role that came has ended
        return f, max(high, f)
    return f, max(f if waiting else live, high - lag, f)


def _ended(c: dict[str, Any]) -> bool:
    """Every role that came has ended (a role that never came does not keep the call open)."""
    pend = c.get("p", {})
    seen = [r for r in c["x"] if r in pend]
    return bool(seen) and all(pend[r].get("e") for r in seen)


def _finish_if_ended(it: Item, crs: Any, nf: int) -> None:
    c = it.c
    if c.get("end") or "x" not in c or not _ended(c):
        return
    if c.get("f", nf) < nf:
        return  # bins still to evaluate (done by the group, then called again)
    for rule in crs.call_rules:
        st = c.get("r", {}).get(rule.id)
        if st and "ev" in st:
            subject = {**it.scores, "role": rule.subject}
            it.events.append(make_event("RESOLVED", st["ev"], crs, subject, nf * crs.hop_ms, st["ev"]["v"], it.base))
    for key in ("p", "g", "t", "tn", "r"):
        c.pop(key, None)
    c["end"] = 1


def _evaluate_group(group: list[tuple[Item, int, int]], n: int, roles: tuple[str, ...], crs: Any) -> None:
    """The signals and the rules at bins ``f .. f + n - 1`` of every call of the group (the same roles)."""
    hop = crs.hop_ms
    frame_ms = group[0][0].frame_ms
    nodes, longest = crs.conversation_nodes, crs.longest_talk
    k, width = len(group), len(roles)
    cs = [it.c for it, _, _ in group]
    firsts = [f for _, f, _ in group]
    first = np.array(firsts, dtype=np.int64)
    widths = {r: len(cols) for r, cols in crs.role_leaf_cols.items()}
    per_role, leaf_lists = take(cs, firsts, n, roles, widths)
    bits = np.array(per_role, dtype=np.int64).reshape(width, k, n).transpose(1, 0, 2)
    none = [NAN] * (2 * width + 3)
    voice = np.array([c.get("g") or none for c in cs], dtype=np.float64)
    talk = seen = None
    if longest and width == 2:
        size = 2 * longest
        raw = b"".join([t if (t := c.get("t")) is not None and len(t) == size else talk_rows(t, longest) for c in cs])
        talk = np.frombuffer(raw, dtype=np.uint8).reshape(k, 2, longest)
        seen = np.array([c.get("tn", 0) for c in cs], dtype=np.int64)
    g = Group(roles, first, bits, voice[:, :width], voice[:, width:2 * width], voice[:, 2 * width:], talk, seen)
    out, carried = signals(g, nodes, hop, frame_ms)
    rows = np.concatenate((carried["last_end"], carried["run_start"], carried["overlap"]), axis=1).tolist()
    for c, row in zip(cs, rows):
        c["g"] = row
    if talk is not None:
        raw, seens = carried["talk"].tobytes(), carried["talk_seen"].tolist()
        for j, c in enumerate(cs):
            c["t"], c["tn"] = raw[j * size:(j + 1) * size], seens[j]
    times = (first[:, None] + np.arange(1, n + 1)) * hop
    leaves = _leaf_tables(leaf_lists, n, crs)
    rstates = [c.get("r") or _NO_STATES for c in cs]  # the input state's until changed (then a copy: _own)
    owned = [False] * k
    stateful = [row for row, rs in enumerate(rstates) if rs]  # (a rule only adds its own state: none for the others)
    for rule in crs.call_rules:
        _rule(rule, group, rstates, owned, stateful, times, out, leaves, crs)


_NO_STATES: dict[str, Any] = {}


def _own(group: list[tuple[Item, int, int]], rstates: list[dict[str, Any]], owned: list[bool], row: int
         ) -> dict[str, Any]:
    """The call's rule states, to change (the first time a copy, the call state's from then on)."""
    if not owned[row]:
        rstates[row] = group[row][0].c["r"] = dict(rstates[row])
        owned[row] = True
    return rstates[row]


def _rule(rule: Any, group: list[tuple[Item, int, int]], rstates: list[dict[str, Any]], owned: list[bool],
          stateful: list[int], times: np.ndarray, out: dict[Any, tuple],
          leaves: dict[str, tuple[np.ndarray, np.ndarray, dict[int, int]]], crs: Any) -> None:
    """One rule over the group (``stateful``: the rows whose calls had rule states before the group)."""
    cols = crs.leaf_cols[rule.id]
    k, n = times.shape
    rid = rule.id
    sts: list[Any] = [None] * k
    mems = [_NO_MEMORY] * k  # the nodes copy what they change
    for row in stateful:
        st = sts[row] = rstates[row].get(rid)
        if st is not None:
            mems[row] = st.get("n", _NO_MEMORY)
    before = list(mems)

    def leaf(i: int) -> tuple[np.ndarray, ...]:
        spec = rule.leaves[i]
        table = leaves.get(spec.role or rule.subject)
        if table is None:
            return np.zeros((k, n)), np.zeros((k, n), dtype=bool), np.zeros((k, n), dtype=bool)
        j = table[2][int(cols[i])]
        values, valid = table[0][:, :, j], table[1][:, :, j]
        return values, ((values - spec.threshold) * spec.sign > 0) & valid, valid

    values, holds, valid = evaluate(rule.tree, Context(times, leaf, out.get, mems, [True] * k))
    span = in_span(times, rule.scope)
    if span is not None:
        holds = holds & span
    hold_rows = holds.any(axis=1)
    any_hold = hold_rows.tolist()
    if sts.count(None) != k:
        hold_rows |= np.fromiter(map(is_not, sts, repeat(None)), dtype=bool, count=k)
    if not all(map(is_, mems, before)):
        hold_rows |= np.fromiter(map(is_not, mems, before), dtype=bool, count=k)
    for row in np.flatnonzero(hold_rows).tolist():  # a state, a hold, or a memory that changed
        st, mem = sts[row], mems[row]
        if not any_hold[row] and (st is None or LIFECYCLE_KEYS.isdisjoint(st)):
            if mem is before[row]:
                continue  # nothing changes
            st = {**(st or {}), "n": mem} if mem else {k: v for k, v in st.items() if k != "n"}
        else:
            st = _lifecycle(rule, group[row][0], rstates[row], st, mem, holds[row], values[row], times[row], crs)
        if st:
            _own(group, rstates, owned, row)[rid] = st
        elif rid in rstates[row]:
            del _own(group, rstates, owned, row)[rid]


_NO_MEMORY: dict[str, Any] = {}


def _lifecycle(rule: Any, it: Item, rstates: dict[str, Any], st: dict[str, Any] | None, mem: dict[str, Any],
               holds: np.ndarray, values: np.ndarray, times: np.ndarray, crs: Any) -> dict[str, Any]:
    """One call's rule through its points, one by one (its condition holds somewhere, or an alert is going on):
    its new state (``rstates``: the call's rule states, for inhibitions)."""
    scores = it.scores
    business_line = scores.get("business_line") or ""
    h_row = holds.tolist() if rule.in_scope(rule.subject, business_line, scores.get("attributes") or {}) \
        else [False] * len(holds)
    st = dict(st or {})
    if mem:
        st["n"] = mem
    else:
        st.pop("n", None)
    subject = {**scores, "role": rule.subject}
    for t, v, h in zip(times.tolist(), values.tolist(), h_row):  # not valid: false (holds is)
        done = transition(st, h, t, rule)
        if done is not None:
            it.events.append(make_event("RESOLVED", done, crs, subject, t, v, it.base))
        if st.get("st") == "f" and "ev" not in st and st.get("cd", -1) <= t and not (
                crs.silences and crs.silenced(rule.id, scores["call_id"], business_line, rule.subject,
                                              it.base + t)) and not (
                rule.inhibited_by and call_inhibited(rule, rstates, _roles(it), crs.subjects)):
            st["ev"] = snap = snapshot(crs, rule, subject, st["s"], v)
            st.pop("cd", None)
            it.events.append(make_event("FIRING", snap, crs, subject, t, v, it.base))
        if st.get("cd", t + 1) <= t:
            del st["cd"]
    return st


def _roles(it: Item) -> dict[str, Any]:
    """The roles' states with this role's rule states as of this message (for inhibitions)."""
    return {**it.roles, it.role: {"rules": it.rules_state}}


def _leaf_tables(lists: dict[str, list[list[float]]], n: int,
                 crs: Any) -> dict[str, tuple[np.ndarray, np.ndarray, dict[int, int]]]:
    """Per role: its leaves' values and validity ``(K, n, C_role)`` (not scored: 0, not valid) and column ->
    position."""
    out = {}
    for r, rows in lists.items():
        cols = crs.role_leaf_cols[r]
        table = np.array(rows, dtype=np.float64).reshape(len(rows), n, len(cols))
        valid = table == table
        out[r] = (np.where(valid, table, 0.0), valid, {int(col): j for j, col in enumerate(cols)})
    return out
