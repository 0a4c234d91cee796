"""Frame logits -> what a person reads: stacked probabilities per step, segments, the seed's summary line.

Pure numpy, shared by the gateway's upload analysis and the history read API so that the console
draws a live upload and a stored call the same way. ``softmax(mean(logits over a window))`` is the
model's own probability for that window (docs/ARCHITECTURE.md §3), so a step of ``step_ms`` is
scored from the frames it covers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emowatch.topics.model_io import EMOTIONS, FRAME_MS

#: the emoji the seed's web page shows next to each class (model order)
EMOJI = {
    "angry": "😠", "disgusted": "🤢", "fearful": "😨", "happy": "😊", "neutral": "😐",
    "other": "🤔", "sad": "😢", "surprised": "😲", "unknown": "❓",
}
#: one colour per class for the timeline, bars and legend: the console's (static/common.js COLORS; a test keeps
#: the two equal) and the call report picture's (streams/analytics/report.py)
COLORS = {
    "angry": "#d64541", "disgusted": "#7d8f3a", "fearful": "#8e5cc4", "happy": "#f2b33d", "neutral": "#a3b1bf",
    "other": "#3fb5c4", "sad": "#3f78c4", "surprised": "#f07f3c", "unknown": "#dde3e9",
}
DEFAULT_STEP_MS = 200


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    z = np.asarray(x, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)


def step_probs(logits: np.ndarray, *, frame_ms: int = FRAME_MS, step_ms: int = DEFAULT_STEP_MS) -> np.ndarray:
    """(n_steps, n_labels) probabilities: softmax of the mean frame logits of each ``step_ms`` step
    (the last step may cover fewer frames). ``logits`` is (n_frames, n_labels)."""
    lg = np.asarray(logits, dtype=np.float32)
    if lg.ndim != 2:
        raise ValueError(f"logits must be 2-D (frames x labels), got shape {lg.shape}")
    if step_ms < frame_ms or step_ms % frame_ms:
        raise ValueError(f"step_ms={step_ms} must be a positive multiple of frame_ms={frame_ms}")
    per = step_ms // frame_ms
    n = lg.shape[0]
    if n == 0:
        return np.zeros((0, lg.shape[1]), dtype=np.float32)
    full = n // per * per  # whole steps in one reshape; the last, shorter step (if any) on its own
    parts = [lg[:full].reshape(-1, per, lg.shape[1]).mean(axis=1)] if full else []
    if full < n:
        parts.append(lg[full:].mean(axis=0, keepdims=True))
    return softmax(np.concatenate(parts))


@dataclass(frozen=True)
class Segment:
    start_ms: int
    end_ms: int
    emotion: str
    confidence: float  #: mean top probability over the segment's steps

    def as_dict(self) -> dict:
        return {"start_ms": self.start_ms, "end_ms": self.end_ms, "emotion": self.emotion,
                "confidence": round(self.confidence, 4)}


def segments(probs: np.ndarray, *, step_ms: int = DEFAULT_STEP_MS, labels: tuple[str, ...] = EMOTIONS,
             start_ms: int = 0, min_steps: int = 2) -> list[Segment]:
    """Runs of the same top emotion over the steps of ``probs`` (n_steps x labels).

    Runs shorter than ``min_steps`` steps are merged into the previous segment (a 200 ms flicker
    is not a change of mood); the first run is kept whatever its length."""
    p = np.asarray(probs, dtype=np.float32)
    if len(p) == 0:
        return []
    top = p.argmax(axis=1)
    change = np.flatnonzero(top[1:] != top[:-1]) + 1  # steps where the top emotion changes
    first, last = np.concatenate(([0], change)), np.concatenate((change - 1, [len(top) - 1]))
    runs: list[list[int]] = np.stack([top[first], first, last], axis=1).tolist()  # [label, first step, last step]
    merged: list[list[int]] = []
    for r in runs:
        if merged and (r[2] - r[1] + 1 < min_steps or merged[-1][0] == r[0]):
            merged[-1][2] = r[2]
        else:
            merged.append(r)
    out = []
    for k, a, b in merged:
        conf = float(p[a:b + 1, k].mean())
        out.append(Segment(start_ms + a * step_ms, start_ms + (b + 1) * step_ms, labels[k], conf))
    return out


def summary(segs: list[Segment]) -> str:
    """The seed's one-line timeline: ``0.0–1.2 s neutral → 1.2–2.6 s fearful → 2.6–4.0 s angry``."""
    return " → ".join(f"{s.start_ms / 1000:.1f}–{s.end_ms / 1000:.1f} s {s.emotion}" for s in segs)


def top_of(probs: np.ndarray, labels: tuple[str, ...] = EMOTIONS) -> tuple[str, float]:
    """(label, probability) of the most probable class."""
    p = np.asarray(probs, dtype=np.float32)
    k = int(p.argmax())
    return labels[k], float(p[k])
