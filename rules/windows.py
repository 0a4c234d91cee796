"""Event-time windowing: frame logits -> hop bins -> hopping windows -> probabilities.

Frame ``k`` of a message sits at call offset ``start_ms + k * frame_ms`` and belongs to
bin ``offset // hop``. A bin is complete once the message covers its end. At the end of
every complete bin (an *evaluation point*, call offset ``(bin + 1) * hop``) each window
length ``W`` (a multiple of the hop) is scored as ``softmax(mean of the frame logits
of the last W/hop bins)`` — the model's own utterance probability for that span.
A window is evaluated only when all its bins lie after the last reset (call start or
gap).

The JSON state keeps the complete bins since the reset, at most the last ``max_bins - 1``,
as one string (:func:`encode_ring`: base64 of little-endian float32 rows ``[frame count,
9 logit sums]``; compact, and ~20x cheaper to load and store than nested JSON lists), and
the open, incomplete bin as ``[bin, n, 9 sums]`` (rounded to 4 decimals). The ring is
contiguous, so its length says how much history there is. The stored form is the only
form: a state recovered from a changelog evaluates exactly like the one kept in memory.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import numpy as np

from emowatch.rules.errors import ScoresError

N_CLASSES = 9
ROW = N_CLASSES + 1  # frame count + 9 logit sums
_ROUND = 4
_RING_DTYPE = np.dtype("<f4")
_EMPTY_RING = np.zeros((0, ROW))
_INDEX_CACHE: dict[tuple[int, int, tuple[int, ...]], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


@dataclass
class WindowResult:
    """Evaluation points of one message and the windowed probabilities at each.

    ``probs[i]`` and ``valid[i]`` belong to ``windows[i]`` of the :func:`advance` call."""

    times: np.ndarray        # (E,) call offsets, ms
    probs: np.ndarray        # (n_windows, E, 9) softmax of the mean logits
    valid: np.ndarray        # (n_windows, E) bool: the whole window lies after the last reset
    ring: str = ""           # new state: complete bins (encode_ring)
    open: list[float] | None = None  # new state: [bin, n, 9 sums]


def encode_ring(rows: np.ndarray) -> str:
    """Bins ``(k, 10)`` -> the state's string form (base64 of float32 rows)."""
    if not len(rows):
        return ""
    return base64.b64encode(np.ascontiguousarray(rows, dtype=_RING_DTYPE).tobytes()).decode("ascii")


def decode_ring(text: str | list[list[float]] | np.ndarray | None) -> np.ndarray:
    """The state's ring -> ``(k, 10)`` array. Also reads the v1 form (nested lists) and the in-memory
    form :func:`advance_many` keeps (a float32 array: the same values as the string)."""
    if isinstance(text, np.ndarray):
        return text
    if not text:
        return _EMPTY_RING
    if isinstance(text, list):
        return np.asarray(text, dtype=np.float64).reshape(-1, ROW)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ScoresError(f"corrupt window state: {exc}") from None
    if len(raw) % (ROW * _RING_DTYPE.itemsize):
        raise ScoresError(f"corrupt window state: {len(raw)} bytes is not a whole number of bins")
    return np.frombuffer(raw, dtype=_RING_DTYPE).reshape(-1, ROW)


def _empty(n_windows: int, ring: str, open_bin: list[float] | None) -> WindowResult:
    return WindowResult(times=np.zeros(0, dtype=np.int64), probs=np.zeros((n_windows, 0, N_CLASSES)),
                        valid=np.zeros((n_windows, 0), dtype=bool), ring=ring, open=open_bin)


def _indices(k: int, nc: int, windows: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative-sum rows (end, start) of every window at each new point, and validity.

    Depends only on the history length ``k``, the new points ``nc`` and the windows, all
    small, so it is computed once per combination."""
    key = (k, nc, windows)
    hit = _INDEX_CACHE.get(key)
    if hit is None:
        ends = k + np.arange(1, nc + 1)
        w = np.asarray(windows)[:, None]
        hit = (np.broadcast_to(ends, (len(windows), nc)).ravel().copy(), np.maximum(ends - w, 0).ravel(), ends >= w)
        if len(_INDEX_CACHE) < 4096:
            _INDEX_CACHE[key] = hit
    return hit


def advance(ring: str, open_bin: list[float] | None, logits: np.ndarray,
            start_ms: int, frame_ms: int, hop: int, windows: list[int] | tuple[int, ...], max_bins: int,
            close_tail: bool) -> WindowResult:
    """Add one message's frames to the bins and score every window at each new bin end.

    ``ring``/``open_bin`` come from the state (empty after a reset). With
    ``close_tail`` (end of call) a trailing incomplete bin is dropped instead of kept open.
    """
    if frame_ms <= 0 or frame_ms > hop:
        raise ScoresError(f"frame_ms={frame_ms} must be in 1..hop ({hop} ms)")
    windows = tuple(windows)
    n = logits.shape[0]
    if n == 0:
        return _empty(len(windows), ring, None if close_tail else open_bin)
    per_bin, rem = divmod(hop, frame_ms)
    first = start_ms // hop
    if rem == 0 and start_ms % hop == 0 and n % per_bin == 0:  # fast path: chunk aligned to bins
        nb = n // per_bin
        new = np.empty((nb, ROW))
        new[:, 0] = per_bin
        logits.reshape(nb, per_bin, N_CLASSES).sum(axis=1, out=new[:, 1:])
        last = first + nb - 1
    else:
        bins = (start_ms + np.arange(n, dtype=np.int64) * frame_ms) // hop
        starts = np.concatenate(([0], np.flatnonzero(bins[1:] != bins[:-1]) + 1))
        new = np.empty((len(starts), ROW))
        new[:, 0] = np.diff(np.append(starts, n))
        new[:, 1:] = np.add.reduceat(logits, starts, axis=0)
        first, last = int(bins[0]), int(bins[-1])
    if open_bin is not None and int(open_bin[0]) == first:  # complete the carried-over bin
        new[0, 0] += open_bin[1]
        new[0, 1:] += open_bin[2:]
    n_bins = len(new)
    n_complete = n_bins if (last + 1) * hop <= start_ms + n * frame_ms else n_bins - 1
    new_open = None
    if n_complete < n_bins and not close_tail:
        new_open = [float(last), float(new[-1, 0])] + np.round(new[-1, 1:], _ROUND).tolist()
    if n_complete == 0:
        return _empty(len(windows), ring, new_open)
    old = decode_ring(ring)
    k = len(old)
    rows = np.concatenate((old, new[:n_complete])) if k else new[:n_complete]
    csum = np.empty((len(rows) + 1, ROW))
    csum[0] = 0.0
    np.cumsum(rows, axis=0, out=csum[1:])
    end_idx, start_idx, valid = _indices(k, n_complete, windows)
    span = csum[end_idx] - csum[start_idx]                  # (n_windows * E, 10)
    mean = span[:, 1:] / span[:, :1]
    mean -= mean.max(axis=1, keepdims=True)
    np.exp(mean, out=mean)
    mean /= mean.sum(axis=1, keepdims=True)
    keep = max_bins - 1
    return WindowResult(times=(np.arange(first + 1, first + 1 + n_complete, dtype=np.int64)) * hop,
                        probs=mean.reshape(len(windows), n_complete, N_CLASSES), valid=valid,
                        ring=encode_ring(rows[-keep:]) if keep > 0 else "", open=new_open)


def advance_many(items: list[tuple[str | np.ndarray, list[float] | None, np.ndarray, int, int, bool]], hop: int,
                 windows: list[int] | tuple[int, ...], max_bins: int,
                 groups: list[tuple[list[int], np.ndarray, np.ndarray, np.ndarray]] | None = None,
                 ) -> list[WindowResult | ScoresError]:
    """:func:`advance` for many messages of *different* calls at once; each result equals ``advance`` of that
    item, except that its ring is kept as a float32 array (the values :func:`encode_ring` stores; states holding
    it are for this process only, e.g. a replay). Items are ``(ring, open_bin, logits, start_ms, frame_ms,
    close_tail)``; a message that cannot be evaluated gets its :class:`ScoresError` in its place.

    Messages aligned to the bins (the usual 1 s chunks) with the same length and history are scored together
    with the same operations, in the same order, as one by one (cumulative sums along the bins, the softmax per
    window); the others go through :func:`advance` itself. ``groups`` (optional) receives each such set as
    ``(item indices, probs (size, n_windows, E, 9), valid (n_windows, E), times (size, E))``."""
    windows = tuple(windows)
    out: list[WindowResult | ScoresError | None] = [None] * len(items)
    by_shape: dict[tuple[int, int, int], list[tuple[int, np.ndarray]]] = {}
    for i, (ring, open_bin, logits, start, frame_ms, close_tail) in enumerate(items):
        n = logits.shape[0]
        per_bin = hop // frame_ms if 0 < frame_ms <= hop and hop % frame_ms == 0 else 0
        try:
            if not per_bin or open_bin is not None or n == 0 or start % hop or n % per_bin:
                out[i] = advance(ring, open_bin, logits, start, frame_ms, hop, windows, max_bins, close_tail)
                continue
            old = decode_ring(ring)
        except ScoresError as exc:
            out[i] = exc
            continue
        by_shape.setdefault((len(old), n, per_bin), []).append((i, old))
    keep = max_bins - 1
    for (k, n, per_bin), members in by_shape.items():
        nb, size = n // per_bin, len(members)
        new = np.empty((size, nb, ROW))
        new[..., 0] = per_bin
        np.stack([items[i][2] for i, _ in members]).reshape(size, nb, per_bin, N_CLASSES).sum(axis=2, out=new[..., 1:])
        rows = np.concatenate((np.stack([old for _, old in members]), new), axis=1) if k else new
        csum = np.empty((size, k + nb + 1, ROW))
        csum[:, 0] = 0.0
        np.cumsum(rows, axis=1, out=csum[:, 1:])
        end_idx, start_idx, valid = _indices(k, nb, windows)
        span = csum[:, end_idx] - csum[:, start_idx]                 # (size, n_windows * nb, 10)
        mean = span[..., 1:] / span[..., :1]
        mean -= mean.max(axis=2, keepdims=True)
        np.exp(mean, out=mean)
        mean /= mean.sum(axis=2, keepdims=True)
        probs = mean.reshape(size, len(windows), nb, N_CLASSES)
        rings = rows[:, -keep:].astype(_RING_DTYPE) if keep > 0 else None
        firsts = np.array([items[i][3] // hop for i, _ in members], dtype=np.int64)
        times = (firsts[:, None] + np.arange(1, nb + 1, dtype=np.int64)) * hop
        if groups is not None:
            groups.append(([i for i, _ in members], probs, valid, times))
        for b, (i, _) in enumerate(members):
            out[i] = WindowResult(times=times[b], probs=probs[b], valid=valid,
                                  ring=rings[b] if rings is not None else "", open=None)
    return out  # type: ignore[return-value]
