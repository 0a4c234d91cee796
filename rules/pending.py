"""The roles' pending bins of a call (:mod:`emowatch.rules.conversation`): what each message leaves per complete hop
bin - its speech bits and its role's leaf values - kept until the call's frontier passes them.

Messages are taken many at once: the bits of aligned messages and the leaf values of messages with the same
number of points are computed column-wise, each message then only appends its bins to its role's lists. In
memory a role's leaf values are one flat list of floats, ``w`` per bin (``w``: the role's leaves; nan: not
scored), the form :mod:`emowatch.rules.callstate` converts to and from the stored one.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from emowatch.rules.voice import UNKNOWN

NAN = float("nan")
STEREO = ("CUSTOMER", "AGENT")
EXACT_BITS = 52
"""Bins of at most this many frames get their bits column-wise (sums of powers of two, exact in float64)."""

Bins = Sequence[int]


def bits_many(items: list[Any], hop: int) -> list[tuple[Bins, list[int]]]:
    """Per message, the bins it touches and their speech bits; aligned messages with voice activity column-wise."""
    out: list[Any] = [None] * len(items)
    aligned: dict[tuple[int, int], list[int]] = {}
    for i, it in enumerate(items):
        if it.speech is None:
            first = it.start // hop
            count = (it.start + max(it.n, 1) * it.frame_ms - 1) // hop - first + 1 if it.n else 0
            out[i] = (range(first, first + count), [UNKNOWN] * count)
        elif it.start % hop:
            out[i] = _frame_bits(it, hop)
        else:  # (aligned if its length and frames are: checked once per length and frame length)
            aligned.setdefault((it.n, it.frame_ms), []).append(i)
    for (n, frame_ms), members in aligned.items():  # speech is 0.0 / 1.0: the bits' sums are exact in float64
        per_bin = hop // frame_ms
        if not (hop % frame_ms == 0 and 0 < per_bin <= EXACT_BITS and n % per_bin == 0):
            for i in members:
                out[i] = _frame_bits(items[i], hop)
            continue
        sp = np.concatenate([items[i].speech for i in members]).reshape(-1, per_bin)
        rows = (sp @ _powers(per_bin)).astype(np.int64).reshape(len(members), -1).tolist()
        for i, row in zip(members, rows):
            first = items[i].start // hop
            out[i] = (range(first, first + len(row)), row)
    return out


@functools.lru_cache(maxsize=8)
def _powers(per_bin: int) -> np.ndarray:
    return 2.0 ** np.arange(per_bin)


def _frame_bits(it: Any, hop: int) -> tuple[list[int], list[int]]:
    offs = it.start + np.arange(it.n, dtype=np.int64) * it.frame_ms
    bins = offs // hop
    if not it.n:
        return [], []
    vals = it.speech.astype(np.int64) << ((offs % hop) // it.frame_ms)
    starts = np.concatenate(([0], np.flatnonzero(bins[1:] != bins[:-1]) + 1))
    return bins[starts].tolist(), np.add.reduceat(vals, starts).tolist()


def leaf_values(items: list[Any], role_cols: dict[str, Any]) -> list[list[float] | None]:
    """Per message, its role's leaf values at its points, flat (nan: not valid there), or ``None`` (none given);
    messages of the same role and number of points column-wise."""
    out: list[list[float] | None] = [None] * len(items)
    groups: dict[tuple[str, int], list[int]] = {}
    for i, it in enumerate(items):
        if it.values is not None:  # (points, all the columns)
            groups.setdefault((it.role, len(it.values)), []).append(i)
    for (role, _), members in groups.items():
        cols = role_cols[role]
        values = np.concatenate([items[i].values for i in members])[:, cols]
        valid = np.concatenate([items[i].valid for i in members])[:, cols]
        rows = np.where(valid, values, NAN).reshape(len(members), -1).tolist()
        for i, row in zip(members, rows):
            out[i] = row
    return out


def record(it: Any, bins_l: Bins, bits_l: list[int], values: list[float] | None, hop: int, width: int) -> None:
    """Append one message's complete bins to its role's pending ones (``it.c`` is the call state's working copy:
    the role's dict is replaced, never changed in place); ``width``: the role's number of leaves. ``bits_l`` and
    ``values`` (:func:`bits_many`, :func:`leaf_values`) become the state's when they can."""
    c, role = it.c, it.role
    roles = c.setdefault("x", ["MIXED"] if role == "MIXED" else list(STEREO))
    if role not in roles:
        return
    pend = c.setdefault("p", {})
    old = pend.get(role)
    p = {"b": None, "s": [], "l": []} if old is None else dict(old)
    pend[role] = p
    open_bin = p.pop("o", None)
    if open_bin is not None and bins_l and bins_l[0] == open_bin[0]:
        bits_l = list(bits_l)
        bits_l[0] = UNKNOWN if UNKNOWN in (bits_l[0], open_bin[1]) else bits_l[0] | open_bin[1]
    end_ms = it.start + it.n * it.frame_ms
    if bins_l and (bins_l[-1] + 1) * hop > end_ms:  # incomplete last bin
        if not it.end_of_call:
            p["o"] = [bins_l[-1], bits_l[-1]]
        bins_l, bits_l = bins_l[:-1], bits_l[:-1]
    count = len(bins_l)
    if values is None or not count or not width:
        rows = [NAN] * (count * width)
    else:
        times = it.times
        if len(times) == count and times[0] == (bins_l[0] + 1) * hop:
            rows = values
        else:
            at = {t: j for j, t in enumerate(times.tolist())}
            rows = []
            for b in bins_l:
                j = at.get((b + 1) * hop)
                rows += [NAN] * width if j is None else values[j * width:(j + 1) * width]
    if len(p["l"]) != len(p["s"]) * width:  # recorded with another number of leaves (a rule-set reload)
        p["l"] = [NAN] * (len(p["s"]) * width)
    have = p["s"]
    if p["b"] is not None and count and bins_l[0] == p["b"] + len(have) and bins_l[-1] - bins_l[0] == count - 1:
        # the usual case: the next bins, in order (``bits_l`` and ``rows`` are this message's own lists)
        p["s"], p["l"] = (have + bits_l, p["l"] + rows) if have else (bits_l, rows)
    elif count:
        _append(c, p, bins_l, bits_l, rows, width)
    if it.end_of_call:
        p["e"] = 1


def record_next(it: Any, bins_l: Bins, bits_l: list[int], values: list[float] | None, hop: int,
                width: int) -> int | None:
    """:func:`record` in the usual case - the role's pending bins are none yet (no open bin, not ended), the
    message's complete bins follow them - done with fewer operations: the role's new end (its next bin); ``None``
    (nothing done) in any other case."""
    pend = it.c.get("p")
    if pend is None or it.end_of_call:
        return None
    old = pend.get(it.role)
    if old is None or len(old) != 3 or old["s"] or old["l"]:  # (3 keys: b, s, l)
        return None
    b, count = old["b"], len(bins_l)
    if b is None or not count or bins_l[0] != b or bins_l[-1] - b != count - 1 or (
            (b + count) * hop > it.start + it.n * it.frame_ms):  # (an incomplete last bin)
        return None
    if values is None or not width:
        rows = [NAN] * (count * width)
    else:
        times = it.times
        if len(times) != count or times[0] != (b + 1) * hop:
            return None
        rows = values
    pend[it.role] = {"b": b, "s": bits_l, "l": rows}
    return b + count


def _append(c: dict[str, Any], p: dict[str, Any], bins_l: Bins, bits_l: list[int], rows: list[float],
            width: int) -> None:
    """Bins that do not simply follow the pending ones: the first, repeated ones, a gap (new lists: the input
    state's are shared, never changed)."""
    s_new, l_new = list(p["s"]), list(p["l"])
    for j, (b, bit) in enumerate(zip(bins_l, bits_l)):
        if p["b"] is None:
            p["b"] = max(b, c.get("f", b))
            c.setdefault("f", p["b"])
        have = p["b"] + len(s_new)
        if b < have:
            continue  # already seen (a repeated bin)
        if b > have:  # a gap in this role's audio: nothing known, nothing scored
            s_new += [UNKNOWN] * (b - have)
            l_new += [NAN] * ((b - have) * width)
        s_new.append(bit)
        l_new += rows[j * width:(j + 1) * width]
    p["s"], p["l"] = s_new, l_new


def bits_at(p: dict[str, Any] | None, f: int, n: int) -> list[int]:
    """The role's bits of bins ``f .. f + n - 1`` (:data:`UNKNOWN` where it has none)."""
    if p is None or p["b"] is None:
        return [UNKNOWN] * n
    off, seq = f - p["b"], p["s"]
    if off >= 0 and off + n <= len(seq):
        return seq[off:off + n] if off or n != len(seq) else seq
    return [seq[off + j] if 0 <= off + j < len(seq) else UNKNOWN for j in range(n)]


def leaves_at(p: dict[str, Any] | None, f: int, n: int, width: int) -> list[float]:
    """The role's leaf values of bins ``f .. f + n - 1``, flat (nan where not scored)."""
    if p is None or p["b"] is None or len(p["l"]) != len(p["s"]) * width:
        return [NAN] * (n * width)
    off, seq, have = f - p["b"], p["l"], len(p["s"])
    if off >= 0 and off + n <= have:
        return seq[off * width:(off + n) * width] if off or n != have else seq
    out: list[float] = []
    for j in range(off, off + n):
        out += seq[j * width:(j + 1) * width] if 0 <= j < have else [NAN] * width
    return out


def take(cs: list[dict[str, Any]], firsts: list[int], n: int, roles: tuple[str, ...],
         widths: dict[str, int]) -> tuple[list[list[int]], dict[str, list[list[float]]]]:
    """The bins ``f .. f + n - 1`` of each call of a group (its frontier ``f``), then dropped from its pending ones
    (the call's frontier moves to ``f + n``): per role the bits (one flat list: calls, then bins) and, for a role
    with leaves (``widths``), its leaf values (one flat list per call)."""
    pends = [c.setdefault("p", {}) for c in cs]
    bits: list[list[int]] = []
    leaves: dict[str, list[list[float]]] = {}
    for r in roles:
        flat: list[int] = []
        width = widths.get(r, 0)
        rows: list[list[float]] = []
        for pend, f in zip(pends, firsts):
            p = pend.get(r)
            if p is not None and p["b"] == f and len(p["s"]) == n and len(p["l"]) == n * width:  # the usual case
                flat += p["s"]
                rows.append(p["l"])
                pend[r] = {"b": f + n, "s": [], "l": []} if len(p) == 3 else {**p, "b": f + n, "s": [], "l": []}
                continue
            flat += bits_at(p, f, n)
            rows.append(leaves_at(p, f, n, width))
            if p is not None and p["b"] is not None and p["b"] < f + n:
                drop, s = f + n - p["b"], p["s"]
                recorded = len(p["l"]) // len(s) if s else 0
                pend[r] = {**p, "b": f + n, "s": s[drop:], "l": p["l"][drop * recorded:]}
        bits.append(flat)
        if width:
            leaves[r] = rows
    for c, f in zip(cs, firsts):
        c["f"] = f + n
    return bits, leaves
