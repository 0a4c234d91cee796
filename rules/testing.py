"""Synthetic FrameScores messages for rules-worker tests and benchmarks (no model needed).

A call is a timeline of ``(duration_ms, probs)`` spans; every 20 ms frame of a span gets
``log(probs)`` as logits (unlisted classes share the rest, as in rule-file examples), plus
optional Gaussian noise. :func:`interleave` orders several calls' messages the way live
traffic arrives (by offset in the call, calls side by side). Pure and deterministic.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from emowatch.rules.examples import probs_to_logits
from emowatch.rules.model import EMOTIONS
from emowatch.topics.model_io import FRAME_MS

__all__ = ["FRAME_MS", "interleave", "random_timeline", "synthetic_call"]

EVENT_TIME_0 = 1_700_000_000_000


def synthetic_call(call_id: str, timeline: Sequence[tuple[int, dict[str, float]]], *, business_line: str = "default",
                   role: str = "CUSTOMER", chunk_ms: int = 1000, end_of_call: bool = True,
                   attributes: dict[str, str] | None = None, noise: float = 0.0, seed: int = 0,
                   event_time: int = EVENT_TIME_0) -> list[dict[str, Any]]:
    """FrameScores dicts (schema ``FrameScores``) of one call+role, ``chunk_ms`` per message."""
    if chunk_ms % FRAME_MS or chunk_ms <= 0:
        raise ValueError(f"chunk_ms must be a positive multiple of {FRAME_MS}, got {chunk_ms}")
    frames = [np.tile(probs_to_logits(probs), (ms // FRAME_MS, 1)) for ms, probs in timeline]
    logits = np.vstack(frames) if frames else np.zeros((0, len(EMOTIONS)))
    if noise:
        logits = logits + np.random.default_rng(seed).normal(0.0, noise, logits.shape)
    per = chunk_ms // FRAME_MS
    out: list[dict[str, Any]] = []
    for seq, k in enumerate(range(0, len(logits), per)):
        block = logits[k:k + per]
        start_ms = k * FRAME_MS
        mean = block.mean(axis=0)
        probs = np.exp(mean - mean.max())
        out.append({
            "call_id": call_id, "role": role, "seq": seq, "start_ms": start_ms, "frame_ms": FRAME_MS,
            "n_frames": len(block), "labels": list(EMOTIONS),
            "logits": block.astype(np.float32).ravel().tolist(), "chunk_probs": (probs / probs.sum()).tolist(),
            "model": {"name": "synthetic", "version": "0"}, "business_line": business_line,
            "event_time": event_time + start_ms, "gap_before": False, "end_of_call": False,
            "attributes": dict(attributes or {}), "embedding": None, "trace_id": None})
    if out and end_of_call:
        out[-1]["end_of_call"] = True
    return out


def random_timeline(rng: np.random.Generator, seconds: int, *, calm: str = "neutral",
                    episodes: Sequence[str] = ("angry", "fearful", "sad", "other", "happy"),
                    episode_share: float = 0.3) -> list[tuple[int, dict[str, float]]]:
    """A call of ``seconds``: calm speech with emotional episodes of 1-6 s (whole seconds)."""
    spans: list[tuple[int, dict[str, float]]] = []
    left = seconds
    while left > 0:
        if rng.random() < episode_share:
            length, emotion = int(rng.integers(1, 7)), str(rng.choice(list(episodes)))
            p = float(rng.uniform(0.55, 0.95))
        else:
            length, emotion, p = int(rng.integers(2, 9)), calm, float(rng.uniform(0.6, 0.9))
        length = min(length, left)
        spans.append((length * 1000, {emotion: round(p, 3)}))
        left -= length
    return spans


def interleave(calls: Sequence[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """All messages ordered by call offset, then by call (live traffic of concurrent calls)."""
    order = sorted(((m["start_ms"], i, j) for i, msgs in enumerate(calls) for j, m in enumerate(msgs)))
    return [calls[i][j] for _, i, j in order]
