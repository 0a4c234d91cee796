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
from dataclasses import dataclass, field
from functools import cached_property
from itertools import repeat
from typing import Any, NamedTuple

import numpy as np

from emowatch.rules.errors import ScoresError

N_CLASSES = 9
ROW = N_CLASSES + 1  # frame count + 9 logit sums
_ROUND = 4
_RING_DTYPE = np.dtype("<f4")
_EMPTY_RING = np.zeros((0, ROW))
_INDEX_CACHE: dict[tuple[int, int, tuple], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


@dataclass(slots=True)
class WindowResult:
    """Evaluation points of one message and the windowed probabilities at each.

    ``probs[i]`` and ``valid[i]`` belong to ``windows[i]`` of the :func:`advance` call."""

    times: np.ndarray        # (E,) call offsets, ms
    probs: np.ndarray        # (n_windows, E, 9) softmax of the mean logits
    valid: np.ndarray        # (n_windows, E) bool: the whole window lies after the last reset
    hist: np.ndarray | None = None  # (n_windows, E): the window's bins lie after the reset, scored or not (None:
    #                                 the same as ``valid``); a point valid here but not in ``valid`` had too little
    #                                 speech: its conditions are false, but it counts for the alert lifecycle
    ring: str = ""           # new state: complete bins (encode_ring)
    open: list[float] | None = None  # new state: [bin, row] (row: count + 9 sums per block)
    pre: str | np.ndarray = ""  # new state: sums of the bins that left the ring (baselines only; advance_many:
    #                             a float32 array of one row, like its rings)


def encode_ring(rows: np.ndarray) -> str:
    """Bins ``(k, 10)`` -> the state's string form (base64 of float32 rows)."""
    if not len(rows):
        return ""
    return base64.b64encode(np.ascontiguousarray(rows, dtype=_RING_DTYPE).tobytes()).decode("ascii")


def decode_ring(text: str | list[list[float]] | np.ndarray | None, width: int = ROW) -> np.ndarray:
    """The state's ring -> ``(k, 10)`` array. Also reads the v1 form (nested lists) and the in-memory
    form :func:`advance_many` keeps (a float32 array: the same values as the string)."""
    if isinstance(text, np.ndarray):
        return text
    if not text:
        return _EMPTY_RING if width == ROW else np.zeros((0, width))
    if isinstance(text, list):
        return np.asarray(text, dtype=np.float64).reshape(-1, width)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ScoresError(f"corrupt window state: {exc}") from None
    if len(raw) % (width * _RING_DTYPE.itemsize):
        raise ScoresError(f"corrupt window state: {len(raw)} bytes is not a whole number of bins")
    return np.frombuffer(raw, dtype=_RING_DTYPE).reshape(-1, width)


class WindowKey(NamedTuple):
    """One kind of window scored at every point: ``bins`` hops long, ending ``lag`` hops before the point
    (:data:`BASELINE`: the baseline, everything before the current window since the role's first audio), over
    the speech frames only (``speech``) or all frames, renormalised without the ``ignore`` classes."""

    bins: int
    lag: int = 0
    speech: bool = False
    ignore: tuple[int, ...] = ()

    @property
    def span(self) -> int:
        """Bins of history the window needs (the ring keeps ``max(span) - 1``)."""
        return self.bins + max(self.lag, 0)


BASELINE = -1
MIN_SPEECH_MS = 100
"""A speech-only window is scored when it holds at least this much speech (else it is not valid: silence and
the odd breath do not drive rules)."""
_LAYOUTS: dict[tuple[WindowKey, ...], Layout] = {}


@dataclass(frozen=True)
class Layout:
    """How a set of windows is computed: one block ``[count, 9 sums]`` per mode (all frames, speech frames) in
    every bin row, which block each window reads, which windows are lagged or baselines, which renormalise."""

    keys: tuple[WindowKey, ...]
    modes: tuple[bool, ...]          # the blocks: False = all frames, True = speech frames
    width: int
    blocks: np.ndarray               # (n_windows,) block of each window
    baseline: np.ndarray             # (n_windows,) bool
    speech: np.ndarray               # (n_windows,) bool
    bins: np.ndarray                 # (n_windows,)
    keep: list[tuple[int, np.ndarray]]  # (window index, class mask) of the windows that ignore classes
    _need: dict = field(default_factory=dict)

    @cached_property
    def has_baseline(self) -> bool:
        return bool(self.baseline.any())

    def need(self, per_bin: int, frame_ms: int) -> np.ndarray:
        """Frames a window must hold to be scored, ``(n_windows, 1)``: a baseline as many as the window, a speech
        window :data:`MIN_SPEECH_MS` of speech."""
        key = (per_bin, frame_ms)
        hit = self._need.get(key)
        if hit is None:
            hit = np.where(self.baseline, self.bins * per_bin,
                           np.where(self.speech, -(-MIN_SPEECH_MS // frame_ms), 1))[:, None]
            self._need[key] = hit
        return hit

    @cached_property
    def tag(self) -> str:
        """The state's ``ly``: the blocks of its ring (``s``: speech only, the default, stored without a tag)."""
        return "".join("s" if m else "a" for m in self.modes)


def layout(windows: tuple[int | WindowKey, ...]) -> Layout:
    """The :class:`Layout` of ``windows`` (plain ints: all-frame windows of that many bins; cached)."""
    hit = _LAYOUTS.get(windows)  # type: ignore[arg-type]
    if hit is None:
        keys = tuple(w if isinstance(w, WindowKey) else WindowKey(int(w)) for w in windows)
        modes = tuple(sorted({k.speech for k in keys})) or (False,)
        keep = []
        for i, k in enumerate(keys):
            if k.ignore:
                mask = np.ones(N_CLASSES)
                mask[list(k.ignore)] = 0.0
                keep.append((i, mask))
        hit = Layout(keys=keys, modes=modes, width=ROW * len(modes),
                     blocks=np.array([modes.index(k.speech) for k in keys], dtype=np.intp),
                     baseline=np.array([k.lag == BASELINE for k in keys], dtype=bool),
                     speech=np.array([k.speech for k in keys], dtype=bool),
                     bins=np.array([k.bins for k in keys], dtype=np.int64), keep=keep)
        if len(_LAYOUTS) < 256:
            _LAYOUTS[windows] = hit  # type: ignore[index]
    return hit


def _empty(n_windows: int, ring: str, open_bin: list[float] | None, pre: str = "") -> WindowResult:
    return WindowResult(times=np.zeros(0, dtype=np.int64), probs=np.zeros((n_windows, 0, N_CLASSES)),
                        valid=np.zeros((n_windows, 0), dtype=bool), ring=ring, open=open_bin, pre=pre)


def _pre_row(pre: str | np.ndarray, width: int) -> np.ndarray:
    """A baseline's bins before the ring, as one row (from the state's string or the in-memory array)."""
    if isinstance(pre, np.ndarray):
        return pre[0]
    return decode_ring(pre, width)[0] if pre else np.zeros(width)


def _indices(k: int, nc: int, lay: Layout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative-sum rows (end, start) of every window at each new point, and whether its bins lie after the
    reset; baselines end where the current window starts and start at the ring's start (plus ``pre``).

    Depends only on the history length ``k``, the new points ``nc`` and the windows, all
    small, so it is computed once per combination."""
    key = (k, nc, lay.keys)
    hit = _INDEX_CACHE.get(key)
    if hit is None:
        ends = k + np.arange(1, nc + 1)
        w = np.array([kk.bins for kk in lay.keys], dtype=np.int64)[:, None]
        lag = np.array([max(kk.lag, 0) for kk in lay.keys], dtype=np.int64)[:, None]
        base = lay.baseline[:, None]
        end = np.where(base, ends - w, ends - lag)
        start = np.where(base, 0, np.maximum(end - w, 0))
        valid = np.where(base, ends >= w, end - w >= 0)  # a baseline: its count decides (see _score)
        hit = (np.maximum(end, 0).ravel().astype(np.intp), start.ravel().astype(np.intp), valid.astype(bool))
        if len(_INDEX_CACHE) < 4096:
            _INDEX_CACHE[key] = hit
    return hit


def _score(span: np.ndarray, lay: Layout, n_points: int, valid: np.ndarray, pre: np.ndarray | None,
           per_bin: int, frame_ms: int, counts_vary: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Windows' sums ``span`` ``(..., n_windows * E, width)`` -> probabilities ``(..., n_windows, E, 9)`` and
    validity ``(..., n_windows, E)`` (and the history's alone, ``None`` when the same). The same operations for one
    message and for a group (exact equality).
    ``counts_vary``: some frame was not speech (else every window holds all its frames: no count to check)."""
    lead = span.shape[:-2]
    nk = len(lay.keys)
    if len(lay.modes) == 1:
        sel = span.reshape(*lead, nk, n_points, ROW)
        if pre is not None:
            sel[..., lay.baseline, :, :] += pre.reshape(*lead, 1, 1, ROW)
    else:
        span = span.reshape(*lead, nk, n_points, len(lay.modes), ROW)
        if pre is not None:
            span[..., lay.baseline, :, :, :] += pre.reshape(*lead, 1, 1, len(lay.modes), ROW)
        if len(lay.modes) == 1:
            sel = span[..., 0, :]
        else:
            sel = np.take_along_axis(span, lay.blocks.reshape((1,) * len(lead) + (nk, 1, 1, 1)), axis=-2)[..., 0, :]
    hist = np.broadcast_to(valid, (*lead, *valid.shape)) if lead else valid
    # the means and their softmax with the classes first: contiguous, and exact (the max and sum of small rows are
    # slow along a short last axis)
    by_class = np.empty((ROW - 1, *sel.shape[:-1]))
    if counts_vary or lay.has_baseline:
        counts = sel[..., 0]
        ok = valid & (counts >= lay.need(per_bin, frame_ms))
        np.divide(np.moveaxis(sel[..., 1:], -1, 0), np.maximum(counts, 1.0), out=by_class)
    else:
        ok, hist = hist, None
        np.divide(np.moveaxis(sel[..., 1:], -1, 0), sel[..., 0], out=by_class)
    by_class -= np.maximum.reduce(by_class, axis=0)
    np.exp(by_class, out=by_class)
    by_class /= np.add.reduce(by_class, axis=0)
    mean = np.moveaxis(by_class, 0, -1)
    for i, mask in lay.keep:
        part = mean[..., i, :, :] * mask
        part /= part.sum(axis=-1, keepdims=True)
        mean[..., i, :, :] = part
    return mean, ok, hist


def _accumulate(csum: np.ndarray) -> None:
    """Bins ``csum[1:]`` (``(n_bins + 1, size, width)``, ``csum[0]`` zero) -> their cumulative sums, in place: the
    values of ``np.cumsum`` (the same additions in the same order), bin after bin over the whole group (faster than
    ``cumsum`` along a middle axis, and so are gathers of whole bins)."""
    for b in range(1, len(csum)):
        np.add(csum[b - 1], csum[b], out=csum[b])


def _rows(logits: np.ndarray, sp: np.ndarray | None, lay: Layout, per_bin: int, nb: int) -> np.ndarray:
    """Aligned frames ``(..., nb * per_bin, 9)`` -> bin rows ``(..., nb, width)``; ``sp`` the frames' speech
    (1/0, ``None``: all speech)."""
    lead = logits.shape[:-2]
    frames = logits.reshape(*lead, nb, per_bin, N_CLASSES)
    out = np.empty((*lead, nb, lay.width))
    for b, speech in enumerate(lay.modes):
        blk = out[..., b * ROW:(b + 1) * ROW]
        if speech and sp is not None:
            w = sp.reshape(*lead, nb, per_bin)
            w.sum(axis=-1, out=blk[..., 0])
            sums = blk[..., 1:]  # the frames' weighted sum, frame after frame (as a sum along the frames)
            np.multiply(frames[..., 0, :], w[..., 0, None], out=sums)
            for f in range(1, per_bin):
                sums += frames[..., f, :] * w[..., f, None]
        else:
            blk[..., 0] = per_bin
            frames.sum(axis=-2, out=blk[..., 1:])
    return out


def advance(ring: str, open_bin: list[float] | None, logits: np.ndarray,
            start_ms: int, frame_ms: int, hop: int, windows: list[int] | tuple[int | WindowKey, ...] | Layout,
            max_bins: int,
            close_tail: bool, speech: np.ndarray | None = None, pre: str = "") -> WindowResult:
    """Add one message's frames to the bins and score every window at each new bin end.

    ``ring``/``open_bin`` come from the state (empty after a reset). With
    ``close_tail`` (end of call) a trailing incomplete bin is dropped instead of kept open.
    ``speech``: the frames' voice activity (1.0/0.0; ``None``: every frame is speech); ``pre``: the bins that
    left the ring (for baselines, :func:`encode_ring` of one row).
    """
    if frame_ms <= 0 or frame_ms > hop:
        raise ScoresError(f"frame_ms={frame_ms} must be in 1..hop ({hop} ms)")
    lay = windows if isinstance(windows, Layout) else layout(tuple(windows))
    n = logits.shape[0]
    if n == 0:
        return _empty(len(lay.keys), ring, None if close_tail else open_bin, pre)
    per_bin, rem = divmod(hop, frame_ms)
    first = start_ms // hop
    if rem == 0 and start_ms % hop == 0 and n % per_bin == 0:  # fast path: chunk aligned to bins
        nb = n // per_bin
        new = _rows(logits, speech, lay, per_bin, nb)
        last = first + nb - 1
    else:
        bins = (start_ms + np.arange(n, dtype=np.int64) * frame_ms) // hop
        starts = np.concatenate(([0], np.flatnonzero(bins[1:] != bins[:-1]) + 1))
        new = np.empty((len(starts), lay.width))
        for b, mode in enumerate(lay.modes):
            if mode and speech is not None:
                new[:, b * ROW] = np.add.reduceat(speech, starts)
                new[:, b * ROW + 1:(b + 1) * ROW] = np.add.reduceat(logits * speech[:, None], starts, axis=0)
            else:
                new[:, b * ROW] = np.diff(np.append(starts, n))
                new[:, b * ROW + 1:(b + 1) * ROW] = np.add.reduceat(logits, starts, axis=0)
        first, last = int(bins[0]), int(bins[-1])
    if open_bin is not None and int(open_bin[0]) == first and len(open_bin) == lay.width + 1:
        new[0] += open_bin[1:]  # complete the carried-over bin
    n_bins = len(new)
    n_complete = n_bins if (last + 1) * hop <= start_ms + n * frame_ms else n_bins - 1
    new_open = None
    if n_complete < n_bins and not close_tail:
        new_open = [float(last)] + np.round(new[-1], _ROUND).tolist()
    if n_complete == 0:
        return _empty(len(lay.keys), ring, new_open, pre)
    old = decode_ring(ring, lay.width)
    k = len(old)
    rows = np.concatenate((old, new[:n_complete])) if k else new[:n_complete]
    csum = np.empty((len(rows) + 1, lay.width))
    csum[0] = 0.0
    np.cumsum(rows, axis=0, out=csum[1:])
    end_idx, start_idx, valid = _indices(k, n_complete, lay)
    span = csum[end_idx] - csum[start_idx]                  # (n_windows * E, width)
    pre_row = _pre_row(pre, lay.width) if lay.has_baseline else None
    probs, ok, hist = _score(span, lay, n_complete, valid, pre_row if lay.has_baseline else None, per_bin, frame_ms,
                       speech is not None and bool(lay.speech.any()))
    keep = max_bins - 1
    new_pre = pre
    if pre_row is not None and len(rows) > max(keep, 0):
        new_pre = encode_ring((pre_row + rows[:len(rows) - max(keep, 0)].sum(axis=0))[None, :])
    return WindowResult(times=(np.arange(first + 1, first + 1 + n_complete, dtype=np.int64)) * hop,
                        probs=probs, valid=ok, hist=hist,
                        ring=encode_ring(rows[-keep:]) if keep > 0 else "", open=new_open, pre=new_pre)


def advance_many(items: list[tuple[Any, ...]], hop: int, windows: list[int] | tuple[int | WindowKey, ...],
                 max_bins: int, groups: list[tuple[list[int], np.ndarray, np.ndarray, np.ndarray]] | None = None,
                 ) -> list[WindowResult | ScoresError]:
    """:func:`advance` for many messages of *different* calls at once; each result equals ``advance`` of that
    item, except that its ring is kept as a float32 array (the values :func:`encode_ring` stores; states holding
    it are for this process only, e.g. a replay). Items are ``(ring, open_bin, logits, start_ms, frame_ms,
    close_tail[, speech, pre])``; a message that cannot be evaluated gets its :class:`ScoresError` in its place.

    Messages aligned to the bins (the usual 1 s chunks) with the same length and history are scored together
    with the same operations, in the same order, as one by one (cumulative sums along the bins, the softmax per
    window); the others go through :func:`advance` itself. ``groups`` (optional) receives each such set as
    ``(item indices, probs (size, n_windows, E, 9), valid (size, n_windows, E), times (size, E), history validity
    (n_windows, E) shared by the group, or None when the same as ``valid``)``."""
    lay = windows if isinstance(windows, Layout) else layout(tuple(windows))
    out: list[WindowResult | ScoresError | None] = [None] * len(items)
    by_shape: dict[tuple[int, int, int, bool], list[tuple[int, np.ndarray]]] = {}
    for i, item in enumerate(items):
        ring, open_bin, logits, start, frame_ms, close_tail, speech, pre = item if len(item) == 8 else (
            *item[:6], *((item[6], item[7]) if len(item) > 6 else (None, "")))
        n = logits.shape[0]
        per_bin = hop // frame_ms if 0 < frame_ms <= hop and hop % frame_ms == 0 else 0
        try:
            if not per_bin or open_bin is not None or n == 0 or start % hop or n % per_bin:
                out[i] = advance(ring, open_bin, logits, start, frame_ms, hop, lay, max_bins, close_tail,
                                 speech, pre)
                continue
            old = ring if isinstance(ring, np.ndarray) else decode_ring(ring, lay.width)
        except ScoresError as exc:
            out[i] = exc
            continue
        by_shape.setdefault((len(old), n, per_bin, speech is not None), []).append((i, old))
    keep = max_bins - 1
    has_base = lay.has_baseline
    for (k, n, per_bin, with_speech), members in by_shape.items():
        nb = n // per_bin
        logits = np.concatenate([items[i][2] for i, _ in members]).reshape(len(members), n, -1)  # (np.stack: slower)
        sp = np.concatenate([items[i][6] for i, _ in members]).reshape(len(members), n) if with_speech else None
        new = _rows(logits, sp, lay, per_bin, nb)
        csum = np.empty((k + nb + 1, len(members), lay.width))  # bins first: the group's rows, then their sums
        csum[0] = 0.0
        if k:
            csum[1:k + 1] = np.concatenate([old for _, old in members]).reshape(len(members), k, -1).transpose(1, 0, 2)
        csum[k + 1:] = new.transpose(1, 0, 2)
        rings = (np.ascontiguousarray(csum[1:][-keep:].transpose(1, 0, 2), dtype=_RING_DTYPE)  # a row per call
                 if keep > 0 else None)
        dropped = k + nb - max(keep, 0)
        dropped_sum = csum[1:dropped + 1].sum(axis=0) if has_base and dropped > 0 else None
        _accumulate(csum)
        end_idx, start_idx, valid = _indices(k, nb, lay)
        span = (csum[end_idx] - csum[start_idx]).transpose(1, 0, 2)  # (size, n_windows * nb, width)
        pres = [items[i][7] if len(items[i]) > 7 else "" for i, _ in members] if has_base else []
        pre_rows = ((np.concatenate(pres) if all(isinstance(p, np.ndarray) and p.shape == (1, lay.width) for p in pres)
                     else np.stack([_pre_row(p, lay.width) for p in pres])) if has_base else None)
        probs, ok, hist = _score(span, lay, nb, valid, pre_rows, per_bin, items[members[0][0]][4],
                           with_speech and bool(lay.speech.any()))
        firsts = np.array([items[i][3] // hop for i, _ in members], dtype=np.int64)
        times = (firsts[:, None] + np.arange(1, nb + 1, dtype=np.int64)) * hop
        if groups is not None:
            groups.append(([i for i, _ in members], probs, ok, times, valid if hist is not None else None))
        new_pres = None
        if dropped_sum is not None:  # kept as float32 arrays, the values encode_ring stores (see stored_form)
            new_pres = (pre_rows + dropped_sum).astype(_RING_DTYPE)[:, None, :]  # type: ignore[operator]
        shared_hist = None if hist is None else valid
        pre_out = (pres if has_base else repeat("")) if new_pres is None else new_pres
        for (i, _), t, pr, o, ring, new_pre in zip(members, times, probs, ok,
                                                   repeat("") if rings is None else rings, pre_out):
            out[i] = WindowResult(t, pr, o, shared_hist, ring, None, new_pre)
    return out  # type: ignore[return-value]
