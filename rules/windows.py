"""Event-time windowing: frame logits -> hop bins -> hopping windows -> probabilities.

Frame ``k`` of a message sits at call offset ``start_ms + k * frame_ms`` and belongs to
bin ``offset // hop``. A bin is complete once the message covers its end. At the end of
every complete bin (an *evaluation point*, call offset ``(bin + 1) * hop``) each window
length ``W`` (a multiple of the hop) is scored as ``softmax(mean of the frame logits
of the last W/hop bins)`` — the model's own utterance probability for that span.
A window is evaluated only when all its bins lie after the last reset (call start or
gap). The JSON state keeps the complete bins since the reset, at most the last
``max_bins - 1`` (frame count + 9 logit sums, rounded to 4 decimals), and the open,
incomplete bin; the ring is contiguous, so its length says how much history there is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from emowatch.rules.errors import ScoresError

N_CLASSES = 9
_ROUND = 4
_ZERO_ROW = np.zeros((1, N_CLASSES))


@dataclass
class WindowResult:
    """Evaluation points of one message and the windowed probabilities at each."""

    times: np.ndarray                                      # (E,) call offsets, ms
    probs: dict[int, np.ndarray] = field(default_factory=dict)   # window bins -> (E, 9)
    valid: dict[int, np.ndarray] = field(default_factory=dict)   # window bins -> (E,) bool
    ring: list[list[float]] = field(default_factory=list)       # new state: complete bins
    open: list[float] | None = None                             # new state: [bin, n, 9 sums]


def advance(ring: list[list[float]], open_bin: list[float] | None, logits: np.ndarray,
            start_ms: int, frame_ms: int, hop: int, windows: list[int], max_bins: int,
            close_tail: bool) -> WindowResult:
    """Add one message's frames to the bins and score every window at each new bin end.

    ``ring``/``open_bin`` come from the state (empty after a reset). With
    ``close_tail`` (end of call) a trailing incomplete bin is dropped instead of kept open.
    """
    if frame_ms <= 0 or frame_ms > hop:
        raise ScoresError(f"frame_ms={frame_ms} must be in 1..hop ({hop} ms)")
    n = logits.shape[0]
    if n == 0:
        keep_open = None if close_tail else open_bin
        empty = WindowResult(times=np.zeros(0, dtype=np.int64), ring=ring, open=keep_open)
        for w in windows:
            empty.probs[w], empty.valid[w] = np.zeros((0, N_CLASSES)), np.zeros(0, dtype=bool)
        return empty
    per_bin, rem = divmod(hop, frame_ms)
    if rem == 0 and start_ms % hop == 0 and n % per_bin == 0:  # fast path: chunk aligned to bins
        sums = logits.reshape(n // per_bin, per_bin, N_CLASSES).sum(axis=1)
        bidx = np.arange(start_ms // hop, start_ms // hop + n // per_bin, dtype=np.int64)
        counts = np.full(len(bidx), float(per_bin))
    else:
        bins = (start_ms + np.arange(n, dtype=np.int64) * frame_ms) // hop
        starts = np.concatenate(([0], np.flatnonzero(bins[1:] != bins[:-1]) + 1))
        bidx = bins[starts]
        sums = np.add.reduceat(logits, starts, axis=0)
        counts = np.diff(np.append(starts, n)).astype(np.float64)
    if open_bin is not None and int(open_bin[0]) == int(bidx[0]):  # complete the carried-over bin
        sums[0] += np.asarray(open_bin[2:], dtype=np.float64)
        counts[0] += open_bin[1]
    end_ms = start_ms + n * frame_ms
    n_complete = len(bidx) if (int(bidx[-1]) + 1) * hop <= end_ms else len(bidx) - 1
    new_open = None
    if n_complete < len(bidx) and not close_tail:
        new_open = [float(bidx[-1]), float(counts[-1])] + np.round(sums[-1], _ROUND).tolist()
    result = WindowResult(times=(bidx[:n_complete] + 1) * hop, open=new_open)
    if n_complete == 0:
        result.ring = ring
        for w in windows:
            result.probs[w], result.valid[w] = np.zeros((0, N_CLASSES)), np.zeros(0, dtype=bool)
        return result
    k = len(ring)
    if k:
        old = np.asarray(ring, dtype=np.float64)
        all_counts = np.concatenate((old[:, 0], counts[:n_complete]))
        all_sums = np.concatenate((old[:, 1:], sums[:n_complete]))
    else:
        all_counts, all_sums = counts[:n_complete], sums[:n_complete]
    csum = np.concatenate((_ZERO_ROW, np.cumsum(all_sums, axis=0)))
    ccnt = np.concatenate(([0.0], np.cumsum(all_counts)))
    ends = k + np.arange(1, n_complete + 1)                 # = bins since reset at each point
    for w in windows:
        valid = ends >= w
        result.valid[w] = valid
        probs = np.zeros((n_complete, N_CLASSES))
        if valid.any():
            e = ends[valid]
            mean = (csum[e] - csum[e - w]) / (ccnt[e] - ccnt[e - w])[:, None]
            mean -= mean.max(axis=1, keepdims=True)
            np.exp(mean, out=mean)
            mean /= mean.sum(axis=1, keepdims=True)
            probs[valid] = mean
        result.probs[w] = probs
    keep = max_bins - 1
    if keep > 0:
        tail = np.concatenate((all_counts[-keep:, None], all_sums[-keep:]), axis=1)
        result.ring = np.round(tail, _ROUND).tolist()
    return result
