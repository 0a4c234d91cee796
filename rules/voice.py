"""Conversation signals from the roles' voice activity, column-wise for many calls at once.

Input per call: its bins' speech bits for each role (bit i = frame i of the bin spoke; :data:`UNKNOWN` where the
role's voice activity is not known) and its carried state. Output per conversation node: ``(values, holds, valid)``
arrays ``(K calls, n points)``. Everything is array operations over ``(K, roles, n bins)``, frames as the bits of
their bin's mask: running maxima over the bins carry "last speech end", "current run start" and "current overlap"
(a few operations per call whatever its number of frames; the calls' own Python work stays in the caller).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from emowatch.rules.tree import Overtalk, Silence, Talk

BRIDGE_MS = 100
"""Speech (and overlap) runs separated by at most this are one run: a detector's frame-level flicker."""
UNKNOWN = -1
"""A bin's bits when the role's voice activity is not known there (no ``speech`` in the message, a gap in its
audio, a role that has not come yet or has ended): signals that need it are not valid there."""
_NAN = float("nan")


@dataclass
class Group:
    """K calls advancing by the same number of bins ``n``, with the same roles."""

    roles: tuple[str, ...]
    first: np.ndarray        # (K,) first bin of the advance
    bits: np.ndarray         # (K, R, n) int64, UNKNOWN where not known
    last_end: np.ndarray     # (K, R) ms of the last speech frame's end before the advance (nan: never spoke)
    run_start: np.ndarray    # (K, R) start of that speech run (nan)
    overlap: np.ndarray      # (K, 3) start, end of the last overlap run, who started it (0 nobody, 1 + role index)
    talk: np.ndarray | None  # (K, 2, L) speech frames per bin of the last L bins (L: the longest talk window)
    talk_seen: np.ndarray | None  # (K,) bins of history in ``talk`` (at most L)


def signals(g: Group, nodes: list[Any], hop: int, frame_ms: int) -> tuple[dict[Any, tuple], dict[str, Any]]:
    """Every node's arrays over the group, and the carried state after it (same keys as :class:`Group`)."""
    k, r, n = g.bits.shape
    known = g.bits != UNKNOWN
    bits = np.where(known, g.bits, 0)
    b0 = (g.first[:, None] + np.arange(n)) * hop                     # (K, n) bin starts
    times = b0 + hop
    length = _bitlen(bits)                                           # index of the highest bit + 1 (0 for 0)
    ends = np.where(bits > 0, b0[:, None, :] + length * frame_ms, _NAN)
    last = np.fmax.accumulate(np.concatenate((g.last_end[..., None], ends), axis=2), axis=2)[..., 1:]
    out: dict[Any, tuple] = {}
    carried: dict[str, Any] = {"last_end": last[..., -1], "run_start": g.run_start, "overlap": g.overlap,
                               "talk": g.talk, "talk_seen": g.talk_seen}
    ov = both = None
    if r == 2:
        both = known[:, 0] & known[:, 1]
    for node in nodes:
        if node in out:
            continue
        if isinstance(node, Silence):
            out[node] = _silence(node, g.roles, last, known, times, both)
        elif isinstance(node, Overtalk):
            if both is None:
                out[node] = _never(k, n)
                continue
            if ov is None:
                ov = _overlaps(g, bits, hop, frame_ms, times, carried)
                ov = (*ov, ov[1] & both)
            o_len, _, who, on = ov
            mine = (who >= 0) if node.role == "ANY" else who == 1 + g.roles.index(node.role)
            out[node] = (o_len, on & mine & (o_len * 1000.0 >= node.min_ms), both)
    talks = [x for x in nodes if isinstance(x, Talk)]
    if talks:
        if both is None or g.talk is None:
            for node in talks:
                out[node] = _never(k, n)
        else:
            window = _talk(g, bits, carried)
            for node in talks:
                mine, total, full = window(node.bins, g.roles.index(node.role))
                valid = full & (total * frame_ms >= node.min_speech_ms) & both
                share = np.where(total > 0, mine / np.maximum(total, 1.0), 0.0)
                out[node] = (share, valid & ((share - node.threshold) * node.sign > 0), valid)
    return out, carried


def _never(k: int, n: int) -> tuple:
    return np.zeros((k, n)), np.zeros((k, n), dtype=bool), np.zeros((k, n), dtype=bool)


def _silence(node: Silence, roles: tuple[str, ...], last: np.ndarray, known: np.ndarray, times: np.ndarray,
             both: np.ndarray | None) -> tuple:
    if node.role == "BOTH" and len(roles) == 2:
        latest, ok = np.fmax(last[:, 0], last[:, 1]), both
    elif node.role == "BOTH" or node.role in roles:
        i = 0 if node.role == "BOTH" else roles.index(node.role)
        latest, ok = last[:, i], known[:, i]
    else:
        return _never(*times.shape)
    valid = (latest == latest) & ok
    silent = np.where(valid, (times - latest) / 1000.0, 0.0)
    return silent, valid & (silent * 1000.0 >= node.min_ms), valid


def _overlaps(g: Group, bits: np.ndarray, hop: int, frame_ms: int, times: np.ndarray,
              carried: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per point: the current overlap's length (s), whether one is going on, who started it (0 nobody: both at
    once, 1 + role index; -1 none); carries each role's run start and the overlap run.

    Frame ``i`` of the advance starts at ``first * hop + i * frame_ms``; a frame starts a run (of a role's speech,
    or of overlap) when no such frame ended within :data:`BRIDGE_MS` before it (nor the carried end). Computed
    on the bins' bit masks (bit b of bin j: frame ``j * per_bin + b``), not frame by frame."""
    k, _, n = bits.shape
    per_bin = hop // frame_ms
    fs0 = g.first[:, None] * hop                                        # (K, 1) the first frame's start
    base = np.arange(n) * per_bin                                       # each bin's first frame
    masks = np.concatenate((bits, (bits[:, 0] & bits[:, 1])[:, None]), axis=1)   # (K, 3, n): the roles, overlap
    ends = np.concatenate((g.last_end, g.overlap[:, 1:2]), axis=1)[..., None]    # (K, 3, 1) their carried ends
    limit = (BRIDGE_MS + ends - fs0[..., None]) // frame_ms              # the last frame they bridge to
    limit = np.where(limit == limit, limit, _NONE).astype(np.int64)
    last = _last_frame(masks, base)
    firsts = _run_firsts(masks, _before(last), BRIDGE_MS // frame_ms + 1, per_bin, base, limit)
    first_last = _last_frame(firsts, base)
    run_before = _before(first_last[:, :2])
    final = np.maximum(run_before[..., -1], first_last[:, :2, -1])
    carried["run_start"] = np.fmax(g.run_start, np.where(final >= 0, fs0 + final * frame_ms, _NAN))
    pos = np.maximum.accumulate(first_last[:, 2], axis=-1)             # each point's overlap run: first frame
    end = np.maximum.accumulate(last[:, 2], axis=-1)                   # and last one so far
    has = pos >= 0
    safe = np.maximum(pos, 0)
    at_bin = (safe // per_bin)[:, None, :]                              # (K, 1, n): where each run began
    rows, roles = np.arange(k)[:, None, None], np.arange(2)[:, None]
    upto = firsts[rows, roles, at_bin] & _low(safe % per_bin + 1)[:, None, :]
    began = np.where(upto > 0, at_bin * per_bin + _bitlen(upto) - 1, run_before[rows, roles, at_bin])
    starts = np.fmax(g.run_start[..., None], np.where(began >= 0, fs0[..., None] + began * frame_ms, _NAN))
    who = np.where(starts[:, 0] > starts[:, 1], 1, np.where(starts[:, 1] > starts[:, 0], 2, 0))
    s = np.where(has, fs0 + safe * frame_ms, g.overlap[:, :1])
    w = np.where(has, who, g.overlap[:, 2:3])
    e = np.fmax(g.overlap[:, 1:2], np.where(end >= 0, fs0 + (end + 1) * frame_ms, _NAN))
    on = times - e <= BRIDGE_MS                                         # (nan: none, false)
    length = np.where(on, (e - s) / 1000.0, 0.0)
    live = on[:, -1]
    carried["overlap"] = np.where(live[:, None], np.stack((s[:, -1], e[:, -1], w[:, -1]), axis=1), _NAN)
    return length, on, np.where(on, w, -1)


_NONE = -(1 << 40)
"""No such frame (a frame index far before any)."""


def _run_firsts(m: np.ndarray, before: np.ndarray, reach: int, per_bin: int, base: np.ndarray,
                limit: np.ndarray) -> np.ndarray:
    """The frames (bit masks per bin, last axis) that start a run: set, and none set within ``reach`` frames before
    them - in the same bin, in an earlier one (``before``: their last) or up to frame ``limit`` (the carried end)."""
    span = min(reach, per_bin - 1)
    if span > 0:  # the same bin: the mask shifted by 1 .. span frames
        near, done = m << 1, 1
        while done < span:
            step = min(done, span - done)
            near, done = near | (near << step), done + step
    else:
        near = np.zeros_like(m)
    lim = np.maximum(before + reach, limit) - base                      # frames up to this one (in the bin) are near
    return m & ~(near | _low(np.minimum(np.maximum(lim + 1, 0), per_bin)))  # (np.clip: slower on small arrays)


def _last_frame(m: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Per bin the index of its last set frame (:data:`_NONE`: none)."""
    return np.where(m > 0, base + _bitlen(m) - 1, _NONE)


def _before(last: np.ndarray) -> np.ndarray:
    """Per bin the last set frame of the bins before it (:data:`_NONE`: none)."""
    out = np.full(last.shape, _NONE, dtype=np.int64)
    np.maximum.accumulate(last[..., :-1], axis=-1, out=out[..., 1:])
    return out


def _low(count: np.ndarray) -> np.ndarray:
    """Masks of the lowest ``count`` bits (0 .. 63)."""
    return np.left_shift(1, count.astype(np.int64)) - 1


def _bitlen(x: np.ndarray) -> np.ndarray:
    """The bit length of each value (0 .. 2**63 - 1), exactly (below 2**53 a float64 holds it; else by halves)."""
    if x.size and x.max() >= _EXACT:
        hi, lo = x >> 32, x & 0xFFFFFFFF
        return np.where(hi > 0, 32 + np.frexp(hi.astype(np.float64))[1], np.frexp(lo.astype(np.float64))[1])
    return np.frexp(x.astype(np.float64))[1]


_EXACT = 1 << 53


def _talk(g: Group, bits: np.ndarray, carried: dict[str, Any]) -> Any:
    """Per talk window of ``w`` bins, at every point: each role's speech frames in the last ``w`` bins (the history's
    last ones, plus the new bins up to the point, minus those that left the window), exact integers."""
    counts = np.bitwise_count(bits).astype(np.uint8)                    # (K, 2, n)
    hist = g.talk
    longest, n = hist.shape[2], counts.shape[2]  # type: ignore[union-attr]
    allc = np.concatenate((hist, counts), axis=2)  # type: ignore[arg-type]
    seen = g.talk_seen
    carried["talk"] = allc[..., -longest:]
    carried["talk_seen"] = np.minimum(seen + n, longest)  # type: ignore[operator]
    added = np.cumsum(counts, axis=2, dtype=np.int64)                  # the new bins' frames up to each point

    def window(w: int, idx: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        before = allc[..., longest - w:longest].sum(axis=2, dtype=np.int64)              # (K, 2)
        dropped = np.cumsum(allc[..., longest - w:longest - w + n], axis=2, dtype=np.int64)   # left the window
        span = before[..., None] + (added - dropped)                                       # (K, 2, n)
        full = (seen[:, None] + np.arange(1, n + 1)) >= w  # type: ignore[index]
        return span[:, idx], span[:, 0] + span[:, 1], full

    return window
