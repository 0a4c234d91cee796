"""Whole files scored as FunASR scores them: the model's own answer for a recording.

The streaming engine frames every window for the stream (left context trimmed to whole
frames, 80 zero samples appended: 50 frames per 1 s chunk, frames aligned across chunks).
For a whole file that framing changes the answer (docs/model.md, "Whole files vs streamed
windows"), so a file is scored here with :class:`~emowatch.models.engine.Window` ``whole=True``:
the waveform layer-normalised over its own samples, no trim, no pad, every frame, and
``softmax(mean(frame logits))`` with the model's ``unuse*`` classes masked, which is
``AutoModel.generate(granularity="utterance")``. The features are FunASR's
``granularity="frame"`` output (``embeddings="frames"``) or their mean (``embeddings=True``).

Attention memory grows with the square of the length (FunASR materialises a
``heads x T x T`` bias), so neither FunASR nor the engine can score an hour in one pass.
Files longer than ``segment_s`` (default 60 s) are scored in consecutive segments of
``segment_s`` on the same 20 ms frame grid as the whole file (each segment overlaps the next
by 80 samples, so every frame of the file is computed exactly once, from the same samples
as in one pass); each segment is FunASR's answer for that segment and the file's
probabilities are ``softmax(mean(all frame logits))``. A file up to ``segment_s`` is one
segment: exactly FunASR's answer. Channels and segments of equal length share one batch.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from emowatch.models.engine import MIN_SAMPLES, RIGHT_PAD, Engine, ItemError, Result, Window
from emowatch.models.timeline import softmax
from emowatch.topics.model_io import SAMPLE_RATE, SAMPLES_PER_FRAME

__all__ = ["DEFAULT_SEGMENT_S", "segment_bounds", "score_files"]

DEFAULT_SEGMENT_S = 60.0  #: longest file scored in one pass (FunASR-equal); longer files are segmented
MIN_TAIL = SAMPLE_RATE  #: a last segment shorter than this (1 s) is scored with the one before it


def segment_bounds(n: int, segment_samples: int, min_tail: int = MIN_TAIL) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` sample ranges covering ``n`` samples on the file's frame grid.

    ``segment_samples`` is a multiple of 320; segment ``k`` starts at ``k * segment_samples`` and
    ends 80 samples into the next one, so it yields exactly the file's frames
    ``[start // 320, next_start // 320)``; a short tail (< ``min_tail``) joins the last segment."""
    if segment_samples <= 0 or segment_samples % SAMPLES_PER_FRAME:
        raise ValueError(f"segment_samples={segment_samples} must be a positive multiple of {SAMPLES_PER_FRAME}")
    starts = list(range(0, max(n, 1), segment_samples))
    if len(starts) > 1 and n - starts[-1] < max(min_tail, MIN_SAMPLES):
        starts.pop()
    return [(s, min(n, starts[i + 1] + RIGHT_PAD) if i + 1 < len(starts) else n) for i, s in enumerate(starts)]


def _stitch(key: Any, parts: list[Result], masked: list[int], embeddings: bool | str) -> Result:
    if len(parts) == 1:
        return Result(key, parts[0].logits, parts[0].probs, parts[0].embedding)
    logits = np.concatenate([p.logits for p in parts])
    mean = logits.astype(np.float64).mean(axis=0)
    mean[masked] = -np.inf
    emb = None
    if embeddings == "frames":
        emb = np.concatenate([p.embedding for p in parts])
    elif embeddings:
        counts = np.array([len(p.logits) for p in parts], dtype=np.float64)
        emb = (np.stack([p.embedding for p in parts]).astype(np.float64) * counts[:, None]).sum(0) / counts.sum()
        emb = emb.astype(np.float32)
    return Result(key, logits, softmax(mean), emb)


def score_files(
    engine: Engine, waves: Sequence[np.ndarray], *, segment_s: float = DEFAULT_SEGMENT_S,
    embeddings: bool | str = False,
) -> list[Result | ItemError]:
    """Score whole mono 16 kHz float waveforms (one result per wave, in order).

    ``Result.logits`` is ``(n_frames(len(wave)), n_labels)``: frame ``j`` covers samples
    ``[320 j, 320 j + 400)``; ``Result.probs`` is the file's utterance probabilities;
    ``Result.embedding`` per ``embeddings`` (None, the mean feature ``(dim,)``, or ``"frames"``:
    ``(n_frames, dim)``). Errors are per wave (``too_short``, ``non_finite``, ...)."""
    seg = max(1, round(segment_s * SAMPLE_RATE / SAMPLES_PER_FRAME)) * SAMPLES_PER_FRAME
    if seg + MIN_TAIL + RIGHT_PAD > engine.max_samples:
        raise ValueError(f"segment_s={segment_s} needs an engine with max_seconds >= {segment_s + 1.01:.2f}")
    windows: list[Window] = []
    owners: list[int] = []
    for i, wave in enumerate(waves):
        a = np.asarray(wave)
        bounds = segment_bounds(len(a), seg) if a.ndim == 1 else [(0, len(a))]
        for s, e in bounds:
            windows.append(Window((i, s), a[s:e] if a.ndim == 1 else a, 0, whole=True))
            owners.append(i)
    results = engine.infer_batch(windows, embeddings=embeddings)
    out: list[Result | ItemError] = []
    for i in range(len(waves)):
        parts = [r for r, o in zip(results, owners) if o == i]
        err = next((r for r in parts if isinstance(r, ItemError)), None)
        if err is not None:
            out.append(ItemError(i, err.code, err.reason))
        else:
            out.append(_stitch(i, parts, engine.model.masked, embeddings))  # type: ignore[arg-type]
    return out
