"""Synthetic FrameScores messages for rules-worker tests and benchmarks (no model needed).

A call is a timeline of ``(duration_ms, probs)`` spans; every 20 ms frame of a span gets
``log(probs)`` as logits (unlisted classes share the rest, as in rule-file examples), plus
optional Gaussian noise; with ``speech`` (one probability per frame) the messages carry voice activity.
:func:`random_turns` makes the voice activity of a two-party call (turn-taking with overlaps and pauses).
:func:`interleave` orders several calls' messages the way live traffic arrives (by offset in the call, calls
side by side). Pure and deterministic.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from emowatch.rules.examples import probs_to_logits
from emowatch.rules.model import EMOTIONS
from emowatch.topics.model_io import FRAME_MS

__all__ = ["FRAME_MS", "interleave", "random_timeline", "random_turns", "synthetic_call"]

EVENT_TIME_0 = 1_700_000_000_000


def synthetic_call(call_id: str, timeline: Sequence[tuple[int, dict[str, float]]], *, business_line: str = "default",
                   role: str = "CUSTOMER", chunk_ms: int = 1000, end_of_call: bool = True,
                   attributes: dict[str, str] | None = None, noise: float = 0.0, seed: int = 0,
                   event_time: int = EVENT_TIME_0, speech: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """FrameScores dicts (schema ``FrameScores``) of one call+role, ``chunk_ms`` per message.

    ``speech``: the speech probability of every frame of the timeline (``vad`` ``synthetic``); without it the
    messages have no ``speech`` (every frame counts as speech)."""
    if chunk_ms % FRAME_MS or chunk_ms <= 0:
        raise ValueError(f"chunk_ms must be a positive multiple of {FRAME_MS}, got {chunk_ms}")
    frames = [np.tile(probs_to_logits(probs), (ms // FRAME_MS, 1)) for ms, probs in timeline]
    logits = np.vstack(frames) if frames else np.zeros((0, len(EMOTIONS)))
    voice = None if speech is None else np.asarray(speech, dtype=np.float64)
    if voice is not None and voice.shape != (len(logits),):
        raise ValueError(f"speech has {voice.size} values, the timeline {len(logits)} frames")
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
        if voice is not None:
            out[-1].update(speech=voice[k:k + per].tolist(), vad="synthetic")
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


def random_turns(rng: np.random.Generator, seconds: int, *, overlap_share: float = 0.15,
                 dead_air_share: float = 0.06, agent_weight: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Voice activity of a two-party call of ``seconds``: the speech probability of every frame of the
    CUSTOMER and of the AGENT track (>= 0.7 speaking, <= 0.3 not).

    The roles take turns of 1-8 s (the agent's scaled by ``agent_weight``) with short pauses inside a turn,
    0.1-0.8 s between turns; a turn is cut into by the next speaker 0.3-1.5 s before its end with probability
    ``overlap_share`` and followed by 3-10 s of silence of both with probability ``dead_air_share``; the listener
    sometimes says something short (0.2-0.6 s) during the other's turn."""
    n = seconds * 1000 // FRAME_MS
    active = np.zeros((2, n), dtype=bool)
    who, t = int(rng.integers(0, 2)), int(rng.integers(0, 25))
    while t < n:
        length = max(10, int(rng.integers(50, 400) * (agent_weight if who == 1 else 1.0)))
        active[who, t:t + length] = True
        for _ in range(int(rng.integers(0, 3))):  # pauses inside the turn
            p = t + int(rng.integers(0, length))
            active[who, p:p + int(rng.integers(10, 30))] = False
        if rng.random() < 0.2:  # the listener's short remark
            p = t + int(rng.integers(0, length))
            active[1 - who, p:p + int(rng.integers(10, 30))] = True
        u = rng.random()
        if u < overlap_share:
            nxt = t + length - int(rng.integers(15, 75))
        elif u < overlap_share + dead_air_share:
            nxt = t + length + int(rng.integers(150, 500))
        else:
            nxt = t + length + int(rng.integers(5, 40))
        t, who = max(nxt, t + 1), 1 - who
    prob = np.where(active, rng.uniform(0.7, 1.0, active.shape), rng.uniform(0.0, 0.3, active.shape))
    return prob[0], prob[1]


def interleave(calls: Sequence[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """All messages ordered by call offset, then by call (live traffic of concurrent calls)."""
    order = sorted(((m["start_ms"], i, j) for i, msgs in enumerate(calls) for j, m in enumerate(msgs)))
    return [calls[i][j] for _, i, j in order]
