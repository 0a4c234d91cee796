"""A FrameScores message's inputs to the rules, checked: the logits in canonical class order, the voice activity."""

from __future__ import annotations

from typing import Any

import numpy as np

from emowatch.rules.errors import ScoresError
from emowatch.rules.fields import EMOTIONS

SPEECH_MIN = 0.5
"""A frame is speech when its FrameScores ``speech`` probability is at least this (silero-vad's own threshold)."""
_CANONICAL = list(EMOTIONS)
_PERMUTATIONS: dict[tuple[str, ...], np.ndarray] = {}


def logits_of(scores: dict[str, Any]) -> np.ndarray:
    """The message's logits as an (n_frames, 9) array in canonical class order."""
    n = scores.get("n_frames")
    raw = scores.get("logits")
    if not isinstance(n, int) or n < 0 or raw is None:
        raise ScoresError(f"bad n_frames/logits: n_frames={n!r}")
    try:
        arr = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ScoresError(f"logits are not numbers: {exc}") from None
    labels = scores.get("labels") or _CANONICAL
    if arr.size != n * len(labels):
        raise ScoresError(f"logits has {arr.size} values, expected n_frames*{len(labels)} = {n * len(labels)}")
    arr = arr.reshape(n, len(labels))
    if labels != _CANONICAL:
        arr = arr[:, _permutation(labels)]
    if not np.isfinite(arr).all():
        raise ScoresError("logits contain NaN or infinity")
    return arr


def _permutation(labels: list[str]) -> np.ndarray:
    key = tuple(labels)
    perm = _PERMUTATIONS.get(key)
    if perm is None:
        missing = [e for e in EMOTIONS if e not in labels]
        if missing:
            raise ScoresError(f"labels lack the classes {missing}")
        perm = np.array([labels.index(e) for e in EMOTIONS])
        _PERMUTATIONS[key] = perm
    return perm


def speech_of(scores: dict[str, Any], n: int) -> np.ndarray | None:
    """The frames' voice activity as 1.0 / 0.0 (``speech`` >= :data:`SPEECH_MIN`; ``None``: the message has none)."""
    raw = scores.get("speech")
    if raw is None:
        return None
    try:
        sp = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ScoresError(f"speech is not numbers: {exc}") from None
    if sp.shape != (n,):
        raise ScoresError(f"speech has {sp.size} values, expected n_frames = {n}")
    return (sp >= SPEECH_MIN).astype(np.float64)
