"""A FrameScores message's inputs to the rules, checked: the logits in canonical class order, the voice activity."""

from __future__ import annotations

from itertools import repeat
from typing import Any

import numpy as np

from emowatch.rules.errors import ScoresError
from emowatch.rules.fields import EMOTIONS
from emowatch.rules.windows import N_CLASSES

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


def arrays_many(messages: list[dict[str, Any]]) -> list[tuple[np.ndarray, np.ndarray | None] | ScoresError]:
    """``(logits_of(m), speech_of(m, n))`` of many messages, or the :class:`ScoresError` they raise: the usual
    messages (numpy arrays of the same length, canonical labels) are checked and converted with one array
    operation per group (the same values as one by one), the others one at a time."""
    out: list[Any] = [None] * len(messages)
    groups: dict[tuple[int, bool], list[int]] = {}
    for i, m in enumerate(messages):
        n, raw, sp, labels = m.get("n_frames"), m.get("logits"), m.get("speech"), m.get("labels")
        if (isinstance(raw, np.ndarray) and raw.ndim == 1 and isinstance(n, int) and raw.size == n * N_CLASSES
                and (labels is None or labels == _CANONICAL)
                and (sp is None or (isinstance(sp, np.ndarray) and sp.shape == (n,)))):
            groups.setdefault((n, sp is not None), []).append(i)
        else:
            out[i] = _one(m)
    for (n, with_speech), members in groups.items():
        k = len(members)  # (np.concatenate, then reshape: np.stack costs ~1 us more per message)
        logits = np.concatenate([messages[i]["logits"] for i in members]).astype(np.float64).reshape(k, n, N_CLASSES)
        finite = np.isfinite(logits).all(axis=(1, 2)).tolist()
        speech = (np.concatenate([messages[i]["speech"] for i in members]).astype(np.float64).reshape(k, n)
                  >= SPEECH_MIN).astype(np.float64) if with_speech else None
        for i, ok, lg, sp in zip(members, finite, logits, repeat(None) if speech is None else speech):
            out[i] = (lg, sp) if ok else _one(messages[i])
    return out


def _one(m: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None] | ScoresError:
    try:
        logits = logits_of(m)
        return logits, speech_of(m, logits.shape[0])
    except ScoresError as exc:
        return exc
