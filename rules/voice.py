"""Conversation signals from the roles' voice activity, column-wise for many calls at once.

Input per call: its bins' speech bits for each role (bit i = frame i of the bin spoke; :data:`UNKNOWN` where the
role's voice activity is not known) and its carried state. Output per conversation node: ``(values, holds, valid)``
arrays ``(K calls, n points)``. Everything is array operations over ``(K, roles, n bins)`` or ``(K, roles, frames)``:
running maxima carry "last speech end", "current run start" and "current overlap" from frame to frame.
"""

from __future__ import annotations

import base64
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
    talk: np.ndarray | None  # (K, L, 2) speech frames per bin of the last L bins (L: the longest talk window)
    talk_seen: np.ndarray | None  # (K,) bins of history in ``talk`` (at most L)


def signals(g: Group, nodes: list[Any], hop: int, frame_ms: int) -> tuple[dict[Any, tuple], dict[str, Any]]:
    """Every node's arrays over the group, and the carried state after it (same keys as :class:`Group`)."""
    k, r, n = g.bits.shape
    known = g.bits != UNKNOWN
    bits = np.where(known, g.bits, 0)
    b0 = (g.first[:, None] + np.arange(n)) * hop                     # (K, n) bin starts
    times = b0 + hop
    _, length = np.frexp(bits.astype(np.float64))                    # index of the highest bit + 1 (0 for 0)
    ends = np.where(bits > 0, b0[:, None, :] + length * frame_ms, _NAN)
    last = np.fmax.accumulate(np.concatenate((g.last_end[..., None], ends), axis=2), axis=2)[..., 1:]
    out: dict[Any, tuple] = {}
    carried: dict[str, Any] = {"last_end": last[..., -1], "run_start": g.run_start, "overlap": g.overlap,
                               "talk": g.talk, "talk_seen": g.talk_seen}
    ov = None
    for node in nodes:
        if node in out:
            continue
        if isinstance(node, Silence):
            out[node] = _silence(node, g.roles, last, known, times)
        elif isinstance(node, Overtalk):
            if r != 2:
                out[node] = _never(k, n)
                continue
            if ov is None:
                ov = _overlaps(g, bits, hop, frame_ms, times, carried)
            o_len, o_on, who = ov
            mine = (who >= 0) if node.role == "ANY" else who == 1 + g.roles.index(node.role)
            both = known[:, 0] & known[:, 1]
            out[node] = (o_len, o_on & mine & (o_len * 1000.0 >= node.min_ms) & both, both)
    talks = [x for x in nodes if isinstance(x, Talk)]
    if talks:
        if r != 2 or g.talk is None:
            for node in talks:
                out[node] = _never(k, n)
        else:
            window = _talk(g, bits, carried)
            both = known[:, 0] & known[:, 1]
            for node in talks:
                mine, total, full = window(node.bins, g.roles.index(node.role))
                valid = full & (total * frame_ms >= node.min_speech_ms) & both
                share = np.where(total > 0, mine / np.maximum(total, 1.0), 0.0)
                out[node] = (share, valid & ((share - node.threshold) * node.sign > 0), valid)
    return out, carried


def _never(k: int, n: int) -> tuple:
    return np.zeros((k, n)), np.zeros((k, n), dtype=bool), np.zeros((k, n), dtype=bool)


def _silence(node: Silence, roles: tuple[str, ...], last: np.ndarray, known: np.ndarray, times: np.ndarray) -> tuple:
    idx = list(range(len(roles))) if node.role == "BOTH" else [roles.index(node.role)] if node.role in roles else []
    if not idx:
        return _never(*times.shape)
    latest = np.fmax.reduce(last[:, idx], axis=1) if len(idx) > 1 else last[:, idx[0]]
    valid = ~np.isnan(latest) & known[:, idx].all(axis=1)
    silent = np.where(valid, (times - np.nan_to_num(latest)) / 1000.0, 0.0)
    return silent, valid & (silent * 1000.0 >= node.min_ms), valid


def _overlaps(g: Group, bits: np.ndarray, hop: int, frame_ms: int, times: np.ndarray,
              carried: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per point: the current overlap's length (s), whether one is going on, who started it (0 nobody: both at
    once, 1 + role index; -1 none); carries each role's run start and the overlap run."""
    k, _, n = bits.shape
    per_bin = hop // frame_ms
    speaking = ((bits[..., None] >> np.arange(per_bin)) & 1).astype(bool).reshape(k, 2, n * per_bin)
    fs = g.first[:, None] * hop + np.arange(n * per_bin) * frame_ms     # (K, N) frame starts
    fe = fs + frame_ms
    starts = []
    for r in (0, 1):
        s = speaking[:, r]
        prev = np.fmax.accumulate(np.concatenate((g.last_end[:, r:r + 1], np.where(s, fe, _NAN)), axis=1),
                                  axis=1)[:, :-1]
        new_run = s & (np.isnan(prev) | (fs - prev > BRIDGE_MS))
        acc = np.fmax.accumulate(np.concatenate((g.run_start[:, r:r + 1], np.where(new_run, fs, _NAN)), axis=1),
                                 axis=1)[:, 1:]
        starts.append(acc)
    carried["run_start"] = np.stack([a[:, -1] for a in starts], axis=1)
    both = speaking[:, 0] & speaking[:, 1]
    ov_ends = np.concatenate((g.overlap[:, 1:2], np.where(both, fe, _NAN)), axis=1)
    prev = np.fmax.accumulate(ov_ends, axis=1)[:, :-1]
    new_ov = both & (np.isnan(prev) | (fs - prev > BRIDGE_MS))
    who_at = np.where(starts[0] > starts[1], 1, np.where(starts[1] > starts[0], 2, 0))
    pos = np.maximum.accumulate(np.where(new_ov, np.arange(n * per_bin), -1), axis=1)
    has = pos >= 0
    safe = np.maximum(pos, 0)
    run_start = np.where(has, np.take_along_axis(fs, safe, axis=1), g.overlap[:, :1])
    run_who = np.where(has, np.take_along_axis(who_at, safe, axis=1), g.overlap[:, 2:3])
    run_end = np.fmax.accumulate(ov_ends, axis=1)[:, 1:]
    at = (np.arange(1, n + 1) * per_bin - 1)                           # each point's last frame
    e, s, w = run_end[:, at], run_start[:, at], run_who[:, at]
    on = ~np.isnan(e) & (times - np.nan_to_num(e, nan=-1e18) <= BRIDGE_MS)
    length = np.where(on, (e - s) / 1000.0, 0.0)
    live = on[:, -1]
    carried["overlap"] = np.where(live[:, None], np.stack((s[:, -1], e[:, -1], w[:, -1]), axis=1), _NAN)
    return length, on, np.where(on, w, -1)


def _talk(g: Group, bits: np.ndarray, carried: dict[str, Any]) -> Any:
    counts = np.bitwise_count(bits).astype(np.int64).transpose(0, 2, 1)   # (K, n, 2)
    hist = g.talk.astype(np.int64)  # type: ignore[union-attr]
    longest, n = hist.shape[1], counts.shape[1]
    allc = np.concatenate((hist, counts), axis=1)
    csum = np.concatenate((np.zeros((len(allc), 1, 2), dtype=np.int64), np.cumsum(allc, axis=1)), axis=1)
    seen = g.talk_seen
    carried["talk"] = allc[:, -longest:].astype(np.uint8)
    carried["talk_seen"] = np.minimum(seen + n, longest)  # type: ignore[operator]
    ends = longest + np.arange(1, n + 1)

    def window(w: int, idx: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        span = csum[:, ends] - csum[:, ends - w]                               # (K, n, 2)
        full = (seen[:, None] + np.arange(1, n + 1)) >= w  # type: ignore[index]
        return span[..., idx].astype(np.float64), span.sum(axis=2).astype(np.float64), full

    return window


def encode_talk(rows: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(rows, dtype=np.uint8).tobytes()).decode("ascii")


def decode_talk(text: str | None, longest: int) -> np.ndarray:
    raw = np.frombuffer(base64.b64decode(text), dtype=np.uint8).reshape(-1, 2) if text else np.zeros((0, 2), np.uint8)
    if len(raw) >= longest:
        return raw[-longest:]
    return np.concatenate((np.zeros((longest - len(raw), 2), dtype=np.uint8), raw))
