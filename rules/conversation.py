"""Conversation rules (kind CALL): evaluated on the whole call once every role has reached a point in call time.

The roles' messages arrive independently (and one may run ahead of the other), so each role's message leaves,
per complete hop bin, its voice activity (one bit per frame, FrameScores ``speech`` >= 0.5; all frames when the
message has no ``speech``) and the values of the leaves that conversation rules score on that role. The call's
*frontier* is the first bin not yet seen by every role the call has (CUSTOMER and AGENT, or MIXED alone for a
mono call; a role that has ended no longer holds it back). Bins before the frontier are evaluated once, in
order, whatever order the roles' messages came in: the same alerts on a replay as live. Where a role's voice
activity is not known (its messages carry no ``speech``, a gap in its audio, after its end, a role that never came)
the signals that need it are not valid: no silence or overtalk is made up from missing data.

Signals per point (a bin's end): each role's silent time since its last speech frame, overlaps of both roles'
speech at frame resolution (gaps under :data:`BRIDGE_MS` do not split a run; the role that started speaking
last started the overlap), and each role's share of the speech over the last ``over``.

State ``c`` of the call (JSON): ``f`` frontier bin, ``x`` the roles, ``p`` per role its pending bins (``b``
first bin, ``s`` bits, ``l`` leaf values (``None``: not scored), ``o`` an open bin, ``e`` ended),
``v`` per role ``[last speech end, run start, run end]``, ``o`` the overlap run ``[start, end, who]``,
``t`` speech frames per bin of both roles (base64, the longest ``over``), ``r`` rule states.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from emowatch.rules.lifecycle import make_event, snapshot, transition
from emowatch.rules.tree import Context, Overtalk, Silence, Talk, evaluate, in_span

BRIDGE_MS = 100
"""Speech (and overlap) runs separated by less than this are one run: a detector's frame-level flicker."""
MAX_LAG_BINS = 1500
"""A role this many bins behind the other is taken as silent for the oldest bins (bounded state)."""
SPEECH_MIN = 0.5
UNKNOWN = -1
"""A bin's bits when the role's voice activity is not known there (no ``speech`` in the message, a gap in its
audio, a role that has not come yet or has ended): signals that need it are not valid there."""
STEREO = ("CUSTOMER", "AGENT")


def frame_bits(scores: dict[str, Any], n: int, start: int, frame_ms: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Per bin touched by the message: its index and the bits of its speech frames (bit = frame in the bin)."""
    offs = start + np.arange(n, dtype=np.int64) * frame_ms
    bins = offs // hop
    speech = scores.get("speech")
    sp = np.ones(n, dtype=np.int64) if speech is None else (np.asarray(speech, dtype=np.float64) >= SPEECH_MIN)
    vals = sp.astype(np.int64) << ((offs % hop) // frame_ms)
    starts = np.concatenate(([0], np.flatnonzero(bins[1:] != bins[:-1]) + 1)) if n else np.zeros(0, dtype=np.int64)
    return bins[starts], np.add.reduceat(vals, starts) if n else np.zeros(0, dtype=np.int64)


def record(c: dict[str, Any], role: str, scores: dict[str, Any], logits_n: int, start: int, frame_ms: int,
           hop: int, end_of_call: bool, times: np.ndarray, leaf_values: np.ndarray | None,
           leaf_valid: np.ndarray | None) -> None:
    """Add one role message's complete bins (bits, leaf values at its points) to the call state ``c``."""
    roles = c.setdefault("x", ["MIXED"] if role == "MIXED" else list(STEREO))
    if role not in roles:
        return
    p = c.setdefault("p", {}).setdefault(role, {"b": None, "s": [], "l": []})
    bins, bits = frame_bits(scores, logits_n, start, frame_ms, hop)
    bins_l, bits_l = bins.tolist(), bits.tolist()
    if scores.get("speech") is None:  # no voice activity in this message: nothing is known of who spoke
        bits_l = [UNKNOWN] * len(bits_l)
    open_bin = p.pop("o", None)
    if open_bin is not None and bins_l and bins_l[0] == open_bin[0]:
        bits_l[0] = UNKNOWN if UNKNOWN in (bits_l[0], open_bin[1]) else bits_l[0] | open_bin[1]
    end_ms = start + logits_n * frame_ms
    if bins_l and (bins_l[-1] + 1) * hop > end_ms:  # incomplete last bin
        if not end_of_call:
            p["o"] = [bins_l[-1], bits_l[-1]]
        bins_l, bits_l = bins_l[:-1], bits_l[:-1]
    by_time: dict[int, int] = {t: j for j, t in enumerate(times.tolist())}
    for b, bit in zip(bins_l, bits_l):
        if p["b"] is None:
            p["b"] = max(b, c.get("f", b))
            c.setdefault("f", p["b"])
        have = p["b"] + len(p["s"])
        if b < have:
            continue  # already seen (a repeated bin)
        for _ in range(have, b):  # a gap in this role's audio: nothing known, nothing scored
            p["s"].append(UNKNOWN)
            p["l"].append(None)
        p["s"].append(bit)
        j = by_time.get((b + 1) * hop)
        if leaf_values is None or j is None:
            p["l"].append(None)
        else:
            p["l"].append([float(v) if ok else None for v, ok in zip(leaf_values[j].tolist(), leaf_valid[j].tolist())])
    if end_of_call:
        p["e"] = 1


def advance_call(c: dict[str, Any], crs: Any, scores: dict[str, Any], base: int, frame_ms: int,
                 events: list[dict[str, Any]]) -> None:
    """Evaluate the conversation rules on every bin all roles have reached; at the end of the call resolve."""
    if c.get("end") or "x" not in c:
        return
    hop, roles, pend = crs.hop_ms, c["x"], c.get("p", {})
    ends = {r: (pend[r]["b"] + len(pend[r]["s"])) if r in pend and pend[r]["b"] is not None else None
            for r in roles}
    ended = all(r in pend and pend[r].get("e") for r in roles)
    known = [e for e in ends.values() if e is not None]
    if not known:
        return
    f = c.get("f", min(known))
    if ended:
        nf = max(known)
    else:
        live = [e for r, e in ends.items() if not (r in pend and pend[r].get("e"))]
        nf = min(e if e is not None else f for e in live)
        nf = max(nf, max(known) - MAX_LAG_BINS)
    if nf > f:
        _evaluate_bins(c, crs, scores, base, frame_ms, f, nf, events)
        c["f"] = nf
        for r in roles:
            p = pend.get(r)
            if p is not None and p["b"] is not None:
                drop = max(0, nf - p["b"])
                p["s"], p["l"], p["b"] = p["s"][drop:], p["l"][drop:], p["b"] + min(drop, len(p["s"]))
                if p["b"] < nf:
                    p["b"] = nf
    if ended:
        t_end = nf * hop
        for rule in crs.call_rules:
            st = c.get("r", {}).get(rule.id)
            if st and "ev" in st:
                subject = {**scores, "role": rule.subject}
                events.append(make_event("RESOLVED", st["ev"], crs, subject, t_end, st["ev"]["v"], base))
        for key in ("p", "v", "o", "t", "r"):
            c.pop(key, None)
        c["end"] = 1


def _evaluate_bins(c: dict[str, Any], crs: Any, scores: dict[str, Any], base: int, frame_ms: int,
                   f: int, nf: int, events: list[dict[str, Any]]) -> None:
    hop, roles, pend = crs.hop_ms, c["x"], c.get("p", {})
    n = nf - f
    times = (np.arange(f + 1, nf + 1, dtype=np.int64)) * hop
    bits = {r: _slice(pend.get(r), "s", f, n, UNKNOWN) for r in roles}
    leaf_rows = {r: _slice(pend.get(r), "l", f, n, None) for r in roles}
    signals = _signals(c, roles, bits, f, n, hop, frame_ms, crs)
    rstates = c.setdefault("r", {})
    business_line = scores.get("business_line") or ""
    attributes = scores.get("attributes") or {}
    for rule in crs.call_rules:
        st = rstates.get(rule.id)
        mem = dict(st.get("n", {})) if st else {}
        cols = crs.leaf_cols[rule.id]

        def leaf(i: int, rule: Any = rule, cols: np.ndarray = cols) -> tuple[np.ndarray, ...]:
            spec = rule.leaves[i]
            role = spec.role or rule.subject
            col = int(np.searchsorted(crs.role_leaf_cols[role], cols[i]))
            vals = [None if row is None else row[col] for row in leaf_rows.get(role, [None] * n)]
            valid = np.array([v is not None for v in vals], dtype=bool)
            values = np.array([0.0 if v is None else v for v in vals])
            return values, ((values - spec.threshold) * spec.sign > 0) & valid, valid

        values, holds, valid = evaluate(rule.tree, Context(times, leaf, signals.get, mem))
        span = in_span(times, rule.scope)
        if span is not None:
            holds = holds & span
        if not rule.in_scope(rule.subject, business_line, attributes):
            holds = np.zeros_like(holds)
        if st is None and not holds.any() and not mem:
            continue
        st = dict(st or {})
        if mem:
            st["n"] = mem
        else:
            st.pop("n", None)
        subject = {**scores, "role": rule.subject}
        for t, v, h, ok in zip(times.tolist(), values.tolist(), holds.tolist(), valid.tolist()):
            if not ok:
                continue
            done = transition(st, h, t, rule)
            if done is not None:
                events.append(make_event("RESOLVED", done, crs, subject, t, v, base))
            if st.get("st") == "f" and "ev" not in st and st.get("cd", -1) <= t and not (
                    crs.silences and crs.silenced(rule.id, scores["call_id"], business_line, rule.subject,
                                                  base + t)):
                st["ev"] = snap = snapshot(crs, rule, subject, st["s"], v)
                st.pop("cd", None)
                events.append(make_event("FIRING", snap, crs, subject, t, v, base))
            if st.get("cd", t + 1) <= t:
                del st["cd"]
        if st:
            rstates[rule.id] = st
        else:
            rstates.pop(rule.id, None)


def _slice(p: dict[str, Any] | None, key: str, f: int, n: int, fill: Any) -> list[Any]:
    if p is None or p["b"] is None:
        return [fill] * n
    off = f - p["b"]
    out = [fill] * n
    for j in range(n):
        k = off + j
        if 0 <= k < len(p[key]):
            out[j] = p[key][k]
    return out


def _signals(c: dict[str, Any], roles: list[str], bits: dict[str, list[int]], f: int, n: int, hop: int,
             frame_ms: int, crs: Any) -> dict[Any, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Every conversation node's ``(values, holds, valid)`` over the bins ``f .. f + n - 1``; updates ``c``."""
    per_bin = hop // frame_ms
    full = (1 << per_bin) - 1
    voice = c.setdefault("v", {})
    last_end = {r: np.zeros(n) for r in roles}
    spoke = {r: np.zeros(n, dtype=bool) for r in roles}
    known = {r: np.array([x != UNKNOWN for x in bits[r]], dtype=bool) for r in roles}
    bits = {r: [0 if x == UNKNOWN else x for x in bits[r]] for r in roles}
    run = c.get("o")
    ov_len, ov_on, ov_who = np.zeros(n), np.zeros(n, dtype=bool), [""] * n
    stereo = len(roles) == 2
    for j in range(n):
        b0 = (f + j) * hop
        if stereo and (bits[roles[0]][j] & bits[roles[1]][j] or run is not None):
            run = _frames(voice, roles, bits, j, b0, per_bin, frame_ms, run)
        else:
            for r in roles:
                _runs(voice, r, bits[r][j], b0, per_bin, full, frame_ms)
        for r in roles:
            v = voice.get(r)
            if v is not None and v[0] is not None:
                last_end[r][j], spoke[r][j] = v[0], True
        t = b0 + hop
        if run is not None:
            if t - run[1] > BRIDGE_MS:
                run = None
            else:
                ov_len[j], ov_on[j], ov_who[j] = (run[1] - run[0]) / 1000.0, True, run[2]
    if run is None:
        c.pop("o", None)
    else:
        c["o"] = run
    times = (np.arange(f + 1, f + n + 1, dtype=np.int64)) * hop
    out: dict[Any, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    talk = _talk_counts(c, roles, bits, n, crs) if stereo else None
    for rule in crs.call_rules:
        for node in _conv_nodes(rule.tree):
            if node in out:
                continue
            if isinstance(node, Silence):
                targets = roles if node.role == "BOTH" else [node.role] if node.role in roles else []
                if not targets:
                    out[node] = (np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool))
                    continue
                ok = np.zeros(n, dtype=bool)
                last = np.zeros(n)
                for r in targets:
                    ok |= spoke[r]
                    last = np.maximum(last, np.where(spoke[r], last_end[r], 0.0))
                for r in targets:
                    ok &= known[r]
                silent = np.where(ok, (times - last) / 1000.0, 0.0)
                out[node] = (silent, ok & (silent * 1000.0 >= node.min_ms), ok)
            elif isinstance(node, Overtalk):
                who = np.array([node.role in ("ANY", w) for w in ov_who], dtype=bool)
                both = known[roles[0]] & known[roles[-1]]
                holds = ov_on & who & (ov_len * 1000.0 >= node.min_ms) & both
                out[node] = (ov_len, holds, both)
            elif isinstance(node, Talk):
                if talk is None:
                    out[node] = (np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool))
                    continue
                mine, total, full_hist = talk(node.bins, roles.index(node.role))
                valid = full_hist & (total * frame_ms >= node.min_speech_ms) & known[roles[0]] & known[roles[1]]
                share = np.where(total > 0, mine / np.maximum(total, 1), 0.0)
                out[node] = (share, valid & ((share - node.threshold) * node.sign > 0), valid)
    return out


def _conv_nodes(node: Any) -> list[Any]:
    if isinstance(node, (Silence, Overtalk, Talk)):
        return [node]
    kids = getattr(node, "children", None) or [getattr(node, a) for a in ("child", "first", "then") if hasattr(node, a)]
    return [x for k in kids for x in _conv_nodes(k)]


def _runs(voice: dict[str, Any], r: str, bits: int, b0: int, per_bin: int, full: int, frame_ms: int) -> None:
    """A role's speech run ``[last speech end, run start, run end]`` after one bin (frames walked only when the
    bin is neither silent nor all speech)."""
    if not bits:
        return
    v = voice.setdefault(r, [None, None, None])
    if bits == full:
        if v[2] is None or b0 - v[2] > BRIDGE_MS:
            v[1] = b0
        v[0] = v[2] = b0 + per_bin * frame_ms
        return
    for i in range(per_bin):
        if bits >> i & 1:
            fs = b0 + i * frame_ms
            if v[2] is None or fs - v[2] > BRIDGE_MS:
                v[1] = fs
            v[0] = v[2] = fs + frame_ms


def _frames(voice: dict[str, Any], roles: list[str], bits: dict[str, list[int]], j: int, b0: int, per_bin: int,
            frame_ms: int, run: list[Any] | None) -> list[Any] | None:
    """One bin frame by frame: both roles' runs, and the overlap run ``[start, end, who started it]``."""
    a, b = roles
    ba, bb = bits[a][j], bits[b][j]
    for i in range(per_bin):
        fs = b0 + i * frame_ms
        for r, bts in ((a, ba), (b, bb)):
            if bts >> i & 1:
                v = voice.setdefault(r, [None, None, None])
                if v[2] is None or fs - v[2] > BRIDGE_MS:
                    v[1] = fs
                v[0] = v[2] = fs + frame_ms
        if ba >> i & 1 and bb >> i & 1:
            if run is not None and fs - run[1] <= BRIDGE_MS:
                run[1] = fs + frame_ms
            else:
                sa, sb = voice[a][1], voice[b][1]
                run = [fs, fs + frame_ms, a if sa > sb else b if sb > sa else ""]
    return run


def _talk_counts(c: dict[str, Any], roles: list[str], bits: dict[str, list[int]], n: int, crs: Any) -> Any:
    """A function ``(window bins, role index) -> (role's speech frames, both roles', window full)`` per point,
    from the kept per-bin counts plus these bins; keeps the longest window's counts in ``c["t"]``."""
    longest = max((node.bins for rule in crs.call_rules for node in _conv_nodes(rule.tree) if isinstance(node, Talk)),
                  default=0)
    if not longest:
        return None
    raw = base64.b64decode(c.get("t", "")) if c.get("t") else b""
    hist = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 2).astype(np.int64)
    new = np.array([[bin(bits[r][j]).count("1") for r in roles] for j in range(n)], dtype=np.int64).reshape(-1, 2)
    allc = np.concatenate((hist, new)) if len(hist) else new
    seen = int(c.get("tn", 0))
    c["tn"] = min(seen + n, longest)
    c["t"] = base64.b64encode(allc[-longest:].astype(np.uint8).tobytes()).decode("ascii")
    csum = np.concatenate((np.zeros((1, 2), dtype=np.int64), np.cumsum(allc, axis=0)))
    k = len(hist)

    def window(w: int, idx: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ends = k + np.arange(1, n + 1)
        starts = np.maximum(ends - w, 0)
        span = csum[ends] - csum[starts]
        full_hist = (seen + np.arange(1, n + 1)) >= w
        return span[:, idx].astype(np.float64), span.sum(axis=1).astype(np.float64), full_hist

    return window

