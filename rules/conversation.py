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

State ``c`` of the call (JSON): ``f`` frontier bin, ``x`` the roles, ``p`` per role its pending bins (``b``
first bin, ``s`` bits, ``l`` per bin ``[mask of the scored leaves, leaf values...]`` (``None``: none scored), ``o``
an open bin, ``e`` ended),
``v`` per role ``[last speech end, run start]``, ``o`` the overlap run ``[start, end, who started it]``,
``t``/``tn`` speech frames per bin of both roles (base64) and how many bins they cover, ``r`` rule states.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from emowatch.rules.lifecycle import LIFECYCLE_KEYS, call_inhibited, make_event, snapshot, transition
from emowatch.rules.tree import Context, evaluate, in_span
from emowatch.rules.voice import UNKNOWN, Group, decode_talk, encode_talk, signals

MAX_LAG_MS = 30_000
"""A role this far behind the other is taken as unknown for the oldest bins (live alerts on a call whose other
track never comes, e.g. a mono upload labelled CUSTOMER, are at most this late; bounded state)."""
STEREO = ("CUSTOMER", "AGENT")


class Item:
    """One message's part in the conversation rules (built by ``engine.finish``); ``c`` is the call state to
    change (a copy), ``events`` the message's event list to append to."""

    __slots__ = ("base", "c", "end_of_call", "events", "frame_ms", "n", "role", "roles", "scores", "speech", "start",
                 "times", "valid", "values")


def copy_call_state(c: dict[str, Any] | None) -> dict[str, Any]:
    """A copy of the call state that :func:`run_many` may change (the input state is never
    mutated): the dicts it changes in place are copied; lists and rule states it replaces are shared."""
    if not c:
        return {}
    out = dict(c)
    if "p" in c:
        out["p"] = {r: dict(v) for r, v in c["p"].items()}
    if "r" in c:
        out["r"] = dict(c["r"])
    return out


def run_many(items: list[Item], crs: Any) -> None:
    """Record each message (of a different call each) and evaluate the bins its call's frontier passes."""
    hop = crs.hop_ms
    bits = _bits_many(items, hop)
    todo: dict[tuple, list[tuple[Item, int, int]]] = {}
    for it, (bins, bts) in zip(items, bits):
        if it.c.get("end"):
            continue
        _record(it, bins, bts, hop)
        span = _frontier(it.c, hop)
        if span is not None:
            f, nf = span
            if nf > f:
                todo.setdefault((nf - f, tuple(it.c["x"])), []).append((it, f, nf))
            elif it.end_of_call:  # (a call ends with the end of its last live role)
                _finish_if_ended(it, crs, f)
    for (n, roles), group in todo.items():
        _evaluate_group(group, n, roles, crs)
        for it, _, nf in group:
            _trim(it.c, nf)
            if it.end_of_call:
                _finish_if_ended(it, crs, nf)


def _bits_many(items: list[Item], hop: int) -> list[tuple[list[int], list[int]]]:
    """Per message, the bins it touches and their speech bits; aligned messages with voice activity column-wise."""
    out: list[Any] = [None] * len(items)
    aligned: dict[tuple[int, int], list[int]] = {}
    for i, it in enumerate(items):
        per_bin = hop // it.frame_ms
        if it.speech is None:
            first, last = it.start // hop, (it.start + max(it.n, 1) * it.frame_ms - 1) // hop
            out[i] = (list(range(first, last + 1)) if it.n else [], [UNKNOWN] * ((last - first + 1) if it.n else 0))
        elif it.start % hop == 0 and it.n % per_bin == 0 and hop % it.frame_ms == 0:
            aligned.setdefault((it.n, per_bin), []).append(i)
        else:
            out[i] = _frame_bits(it, hop)
    for (_n, per_bin), members in aligned.items():
        sp = np.stack([items[i].speech for i in members]).astype(np.int64).reshape(len(members), -1, per_bin)
        rows = (sp << np.arange(per_bin)).sum(axis=2).tolist()
        for i, row in zip(members, rows):
            first = items[i].start // hop
            out[i] = (list(range(first, first + len(row))), row)
    return out


def _frame_bits(it: Item, hop: int) -> tuple[list[int], list[int]]:
    offs = it.start + np.arange(it.n, dtype=np.int64) * it.frame_ms
    bins = offs // hop
    if not it.n:
        return [], []
    vals = it.speech.astype(np.int64) << ((offs % hop) // it.frame_ms)
    starts = np.concatenate(([0], np.flatnonzero(bins[1:] != bins[:-1]) + 1))
    return bins[starts].tolist(), np.add.reduceat(vals, starts).tolist()


def _record(it: Item, bins_l: list[int], bits_l: list[int], hop: int) -> None:
    c, role = it.c, it.role
    roles = c.setdefault("x", ["MIXED"] if role == "MIXED" else list(STEREO))
    if role not in roles:
        return
    p = c.setdefault("p", {}).setdefault(role, {"b": None, "s": [], "l": []})
    open_bin = p.pop("o", None)
    if open_bin is not None and bins_l and bins_l[0] == open_bin[0]:
        bits_l = list(bits_l)
        bits_l[0] = UNKNOWN if UNKNOWN in (bits_l[0], open_bin[1]) else bits_l[0] | open_bin[1]
    end_ms = it.start + it.n * it.frame_ms
    if bins_l and (bins_l[-1] + 1) * hop > end_ms:  # incomplete last bin
        if not it.end_of_call:
            p["o"] = [bins_l[-1], bits_l[-1]]
        bins_l, bits_l = bins_l[:-1], bits_l[:-1]
    rows: list[Any] = [None] * len(bins_l)
    if it.values is not None and bins_l:  # per bin [mask of the scored leaves, their values]
        width = it.valid.shape[1]
        masks = ([(1 << width) - 1] * len(it.valid) if it.valid.all()
                 else (it.valid.astype(np.int64) << np.arange(width)).sum(axis=1).tolist())
        table = [[m, *v] for m, v in zip(masks, it.values.tolist())]
        times = it.times.tolist()
        if len(times) == len(bins_l) and times and times[0] == (bins_l[0] + 1) * hop:
            rows = table
        else:
            at = {t: j for j, t in enumerate(times)}
            rows = [table[at[(b + 1) * hop]] if (b + 1) * hop in at else None for b in bins_l]
    if p["b"] is not None and bins_l and bins_l[0] == p["b"] + len(p["s"]) \
            and bins_l[-1] - bins_l[0] == len(bins_l) - 1:
        p["s"], p["l"] = p["s"] + bits_l, p["l"] + rows  # the usual case: the next bins, in order
    elif bins_l:
        _append(c, p, bins_l, bits_l, rows)
    if it.end_of_call:
        p["e"] = 1


def _append(c: dict[str, Any], p: dict[str, Any], bins_l: list[int], bits_l: list[int], rows: list[Any]) -> None:
    """Bins that do not simply follow the pending ones: the first, repeated ones, a gap (new lists: the input
    state's are shared, never changed)."""
    s_new, l_new = list(p["s"]), list(p["l"])
    for b, bit, row in zip(bins_l, bits_l, rows):
        if p["b"] is None:
            p["b"] = max(b, c.get("f", b))
            c.setdefault("f", p["b"])
        have = p["b"] + len(s_new)
        if b < have:
            continue  # already seen (a repeated bin)
        if b > have:  # a gap in this role's audio: nothing known, nothing scored
            s_new += [UNKNOWN] * (b - have)
            l_new += [None] * (b - have)
        s_new.append(bit)
        l_new.append(row)
    p["s"], p["l"] = s_new, l_new


def _frontier(c: dict[str, Any], hop: int) -> tuple[int, int] | None:
    """``(frontier, new frontier)``: every live role has reached the new one (a role not seen yet holds it at the
    frontier, a role that has ended no longer holds it; none live: the end of the longest track); at most
    :data:`MAX_LAG_MS` behind the role furthest ahead."""
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
    return f, max(f if waiting else live, high - MAX_LAG_MS // hop, f)


def _ended(c: dict[str, Any]) -> bool:
    """Every role that came has ended (a role that never came does not keep the call open)."""
    pend = c.get("p", {})
    seen = [r for r in c["x"] if r in pend]
    return bool(seen) and all(pend[r].get("e") for r in seen)


def _trim(c: dict[str, Any], nf: int) -> None:
    c["f"] = nf
    for p in c.get("p", {}).values():
        if p["b"] is not None and p["b"] < nf:
            drop = nf - p["b"]
            p["s"], p["l"], p["b"] = p["s"][drop:], p["l"][drop:], nf


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
    for key in ("p", "v", "o", "t", "tn", "r"):
        c.pop(key, None)
    c["end"] = 1


def _evaluate_group(group: list[tuple[Item, int, int]], n: int, roles: tuple[str, ...], crs: Any) -> None:
    hop = crs.hop_ms
    frame_ms = group[0][0].frame_ms
    nodes, longest = crs.conversation_nodes, crs.longest_talk
    cs = [it.c for it, _, _ in group]
    first = np.array([f for _, f, _ in group], dtype=np.int64)
    bits = np.array([[_slice(c.get("p", {}).get(r), "s", f, n, UNKNOWN) for r in roles]
                     for c, (_, f, _) in zip(cs, group)], dtype=np.int64).reshape(len(cs), len(roles), n)
    voice = [c.get("v", {}) for c in cs]
    last_end = np.array([[_num(v.get(r, (None, None))[0]) for r in roles] for v in voice]).reshape(len(cs), -1)
    run_start = np.array([[_num(v.get(r, (None, None))[1]) for r in roles] for v in voice]).reshape(len(cs), -1)
    overlap = np.array([_overlap_in(c.get("o"), roles) for c in cs]).reshape(len(cs), 3)
    talk = seen = None
    if longest and len(roles) == 2:
        talk = np.stack([decode_talk(c.get("t"), longest) for c in cs])
        seen = np.array([int(c.get("tn", 0)) for c in cs], dtype=np.int64)
    g = Group(roles, first, bits, last_end, run_start, overlap, talk, seen)
    out, carried = signals(g, nodes, hop, frame_ms)
    ends, starts, ovs = (carried["last_end"].tolist(), carried["run_start"].tolist(),
                         carried["overlap"].tolist())
    talks = seens = None
    if talk is not None:
        talks, seens = carried["talk"], carried["talk_seen"].tolist()
    for k, c in enumerate(cs):
        c["v"] = {r: [_py(e), _py(s)] for r, e, s in zip(roles, ends[k], starts[k]) if e == e}
        o = ovs[k]
        if o[1] != o[1]:
            c.pop("o", None)
        else:
            c["o"] = [_py(o[0]), _py(o[1]), "" if o[2] == 0 else roles[int(o[2]) - 1]]
        if talks is not None:
            c["t"], c["tn"] = encode_talk(talks[k]), seens[k]  # type: ignore[index]
    times = (first[:, None] + np.arange(1, n + 1)) * hop
    leaves = _leaf_tables(cs, first, n, roles, crs)
    for rule in crs.call_rules:
        _rule(rule, group, times, out, leaves, crs)


def _rule(rule: Any, group: list[tuple[Item, int, int]], times: np.ndarray, out: dict[Any, tuple],
          leaves: dict[str, tuple[np.ndarray, dict[int, int]]], crs: Any) -> None:
    cols = crs.leaf_cols[rule.id]
    k, n = times.shape
    mems = [dict(it.c.get("r", {}).get(rule.id, {}).get("n", {})) for it, _, _ in group]

    def leaf(i: int) -> tuple[np.ndarray, ...]:
        spec = rule.leaves[i]
        table = leaves.get(spec.role or rule.subject)
        if table is None:
            return np.zeros((k, n)), np.zeros((k, n), dtype=bool), np.zeros((k, n), dtype=bool)
        values = table[0][:, :, table[1][int(cols[i])]]
        valid = ~np.isnan(values)
        values = np.nan_to_num(values)
        return values, ((values - spec.threshold) * spec.sign > 0) & valid, valid

    values, holds, valid = evaluate(rule.tree, Context(times, leaf, out.get, mems))
    span = in_span(times, rule.scope)
    if span is not None:
        holds = holds & span
    any_hold = holds.any(axis=1).tolist()
    for row, (it, _, _) in enumerate(group):
        rstates = it.c.setdefault("r", {})
        st = rstates.get(rule.id)
        mem = mems[row]
        if not any_hold[row] and (st is None or not LIFECYCLE_KEYS.intersection(st)):
            if mem or st:  # only the node memory changes
                st = {**(st or {}), "n": mem} if mem else {k: v for k, v in (st or {}).items() if k != "n"}
                if st:
                    rstates[rule.id] = st
                else:
                    rstates.pop(rule.id, None)
            continue
        scores = it.scores
        business_line = scores.get("business_line") or ""
        h_row = holds[row].tolist() if rule.in_scope(rule.subject, business_line, scores.get("attributes") or {}) \
            else [False] * n
        st = dict(st or {})
        if mem:
            st["n"] = mem
        else:
            st.pop("n", None)
        subject = {**scores, "role": rule.subject}
        for t, v, h in zip(times[row].tolist(), values[row].tolist(), h_row):  # not valid: false (holds is)
            done = transition(st, h, t, rule)
            if done is not None:
                it.events.append(make_event("RESOLVED", done, crs, subject, t, v, it.base))
            if st.get("st") == "f" and "ev" not in st and st.get("cd", -1) <= t and not (
                    crs.silences and crs.silenced(rule.id, scores["call_id"], business_line, rule.subject,
                                                  it.base + t)) and not (
                    rule.inhibited_by and call_inhibited(rule, rstates, it.roles, crs.subjects)):
                st["ev"] = snap = snapshot(crs, rule, subject, st["s"], v)
                st.pop("cd", None)
                it.events.append(make_event("FIRING", snap, crs, subject, t, v, it.base))
            if st.get("cd", t + 1) <= t:
                del st["cd"]
        if st:
            rstates[rule.id] = st
        else:
            rstates.pop(rule.id, None)


def _leaf_tables(cs: list[dict[str, Any]], first: np.ndarray, n: int, roles: tuple[str, ...],
                 crs: Any) -> dict[str, tuple[np.ndarray, dict[int, int]]]:
    """Per role: its leaves' values ``(K, n, C_role)`` (nan: not scored) and column -> position."""
    out = {}
    for r in roles:
        cols = crs.role_leaf_cols.get(r)
        if cols is None:
            continue
        width = len(cols)
        none = [0] + [0.0] * width
        table = np.array([[none if row is None else row for row in _slice(c.get("p", {}).get(r), "l", int(f), n, None)]
                          for c, f in zip(cs, first)], dtype=np.float64).reshape(len(cs), n, width + 1)
        scored = (table[..., :1].astype(np.int64) >> np.arange(width)) & 1
        out[r] = (np.where(scored.astype(bool), table[..., 1:], np.nan), {int(col): j for j, col in enumerate(cols)})
    return out


def _slice(p: dict[str, Any] | None, key: str, f: int, n: int, fill: Any) -> list[Any]:
    if p is None or p["b"] is None:
        return [fill] * n
    off = f - p["b"]
    seq = p[key]
    if off >= 0 and off + n <= len(seq):
        return seq[off:off + n] if off or n != len(seq) else seq
    return [seq[off + j] if 0 <= off + j < len(seq) else fill for j in range(n)]


def _num(x: Any) -> float:
    return np.nan if x is None else float(x)


def _py(x: float) -> int | float | None:
    if x != x:
        return None
    return int(x) if x.is_integer() else x


def _overlap_in(o: list[Any] | None, roles: tuple[str, ...]) -> list[float]:
    if not o:
        return [np.nan, np.nan, np.nan]
    return [float(o[0]), float(o[1]), 0.0 if not o[2] else float(roles.index(o[2]) + 1)]
