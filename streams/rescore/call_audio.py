"""The stored audio of labelled calls (``call_id`` rows of ``emowatch model evaluate``), read from the audio topic.

The audio topic is read once with rescore's throw-away :class:`~emowatch.streams.kafka.audio_reader.AudioReader`
(assigned partitions, no consumer group, no commits; from the earliest offsets to the end offsets at start).
The chunks of the wanted calls are decoded and split into roles exactly as the inference agent does
(:func:`~emowatch.streams.audio.codec.decode_pcm`, :func:`~emowatch.streams.infer.scoring.split_roles`: stereo
MIXED chunks -> the configured left/right roles), and placed at their ``start_ms`` (duplicate ``seq`` skipped,
gaps left silent). An item then gets its ``role`` (or the call's only role) cut to ``[start_s, end_s)``.
Audio older than the topic's retention is gone: such items are reported as not found, never guessed.
"""
from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from emowatch.models.quality.errors import QualityError
from emowatch.models.quality.labels import LabelledItem
from emowatch.streams.audio.codec import AudioError, decode_pcm
from emowatch.streams.infer.scoring import parse_stereo_roles, split_roles
from emowatch.streams.kafka.audio_reader import AudioReader
from emowatch.streams.kafka.clients import topics_for
from emowatch.streams.settings import Settings
from emowatch.topics.model_io import SAMPLE_RATE

__all__ = ["read_call_audio"]

IDLE_TIMEOUT_S = 60.0
"""Give up when no record arrives for this long while partitions are still short of their end offsets."""


def _collect(settings: Settings, calls: set[str], idle_timeout_s: float) -> dict[str, list[dict]]:
    reader = AudioReader(settings.kafka, topics_for(settings.kafka).audio)
    found: dict[str, list[dict]] = defaultdict(list)
    last = time.monotonic()
    try:
        while not reader.done:
            got = False
            for rec in reader.poll():
                got = True
                if rec.chunk is not None and rec.chunk["call_id"] in calls:
                    found[rec.chunk["call_id"]].append(rec.chunk)
            if got:
                last = time.monotonic()
            elif time.monotonic() - last > idle_timeout_s:
                raise QualityError(f"no audio records for {idle_timeout_s:g}s with "
                                   f"{reader.total - reader.consumed} left in {reader.topic}")
    finally:
        reader.close()
    return found


def _roles(chunks: list[dict], settings: Settings) -> dict[str, np.ndarray]:
    """``{role: audio of the call}`` from its chunks (placed at start_ms, first of each seq kept)."""
    stereo = parse_stereo_roles(settings.infer.stereo_roles)
    parts: dict[str, list[tuple[int, np.ndarray]]] = defaultdict(list)
    seen: set[tuple[str, int]] = set()
    for c in sorted(chunks, key=lambda c: (c["start_ms"], c["seq"])):
        if (c["role"], c["seq"]) in seen:
            continue
        seen.add((c["role"], c["seq"]))
        try:
            decoded = decode_pcm(c["audio"], encoding=c["encoding"], sample_rate=c["sample_rate"],
                                 channels=c["channels"], max_seconds=settings.infer.max_chunk_s)
        except AudioError:
            continue  # the agent dead-letters these: they were never scored either
        for role, x in split_roles(c, decoded.channels, stereo):
            parts[role].append((c["start_ms"] * SAMPLE_RATE // 1000, x))
    out = {}
    for role, pieces in parts.items():
        audio = np.zeros(max(at + len(x) for at, x in pieces), dtype=np.float32)
        for at, x in pieces:
            audio[at:at + len(x)] = x
        out[role] = audio
    return out


def read_call_audio(settings: Settings, items: Sequence[LabelledItem], *, source: str = "labels",
                    idle_timeout_s: float = IDLE_TIMEOUT_S) -> dict[int, np.ndarray]:
    """``{item.line: mono 16 kHz float32 audio}`` for the ``call_id`` items found in the audio topic.

    Items whose call is not in the topic are left out (the evaluation lists them as errors); an item
    without a role whose call has several roles, or a span outside the call, is a :class:`QualityError`."""
    found = _collect(settings, {it.call_id for it in items if it.call_id}, idle_timeout_s)
    calls = {cid: _roles(chunks, settings) for cid, chunks in found.items()}
    out: dict[int, np.ndarray] = {}
    for it in items:
        roles = calls.get(it.call_id or "")
        if not roles:
            continue
        role = (it.role or "").upper() or (next(iter(roles)) if len(roles) == 1 else "")
        if role not in roles:
            raise QualityError(f"{source}:{it.line}: call {it.call_id!r} has the roles {sorted(roles)}; "
                               f"{'role ' + repr(it.role) + ' is not one' if it.role else 'give a role column'}")
        x = roles[role]
        lo = int(round((it.start_s or 0.0) * SAMPLE_RATE))
        hi = len(x) if it.end_s is None else int(round(it.end_s * SAMPLE_RATE))
        if lo >= len(x):
            raise QualityError(f"{source}:{it.line}: start_s {it.start_s:g} is past the end of call "
                               f"{it.call_id!r} ({len(x) / SAMPLE_RATE:.2f} s stored)")
        out[it.line] = x[lo:hi]
    return out
