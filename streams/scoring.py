"""Inference pipeline logic between Kafka and the model, as pure steps.

AudioChunk record -> (per role) admitted window -> engine -> FrameScores record.
Kafka I/O lives in ``emowatch.streams.io.infer_service``; the model in ``emowatch.models``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from emowatch.streams.audio import AudioError, decode_pcm
from emowatch.streams.context import ContextStore


@dataclass
class ChunkRef:
    """One role of one AudioChunk waiting for the model."""

    source: Any  # opaque handle of the input message (topic, partition, offset)
    chunk: dict  # the decoded AudioChunk record (audio bytes dropped)
    role: str
    window: np.ndarray
    emit_samples: int
    gap_before: bool

    @property
    def call_id(self) -> str:
        return self.chunk["call_id"]


@dataclass
class Rejected:
    source: Any
    code: str
    reason: str
    call_id: str | None


def split_roles(chunk: dict, channels: list[np.ndarray], stereo_roles: tuple[str, str]) -> list[tuple[str, np.ndarray]]:
    """Mono -> the chunk's role. Stereo -> one role per channel when the chunk is MIXED
    (the configured left/right roles), else the channels are averaged into the chunk's role."""
    if len(channels) == 1:
        return [(chunk["role"], channels[0])]
    if chunk["role"] == "MIXED":
        return [(stereo_roles[0], channels[0]), (stereo_roles[1], channels[1])]
    return [(chunk["role"], (channels[0] + channels[1]) * 0.5)]


def admit_chunk(chunk: dict, source: Any, ctx: ContextStore, *, max_chunk_s: float,
                stereo_roles: tuple[str, str], now: float) -> tuple[list[ChunkRef], Rejected | None, int]:
    """Decode one AudioChunk and admit each role into its call context.

    Returns (refs to score, rejection or None, number of roles skipped as duplicates).
    """
    try:
        decoded = decode_pcm(chunk["audio"], encoding=chunk["encoding"], sample_rate=chunk["sample_rate"],
                             channels=chunk["channels"], max_seconds=max_chunk_s)
    except AudioError as exc:
        return [], Rejected(source, exc.code, exc.reason, chunk.get("call_id")), 0
    meta = {k: v for k, v in chunk.items() if k != "audio"}
    refs, skipped = [], 0
    for role, signal in split_roles(chunk, decoded.channels, stereo_roles):
        adm = ctx.admit(chunk["call_id"], role, chunk["seq"], signal, now)
        if adm is None:
            skipped += 1
            continue
        refs.append(ChunkRef(source, meta, role, adm.window, adm.emit_samples, adm.gap_before))
        if chunk.get("end_of_call"):
            ctx.end(chunk["call_id"], role)
    return refs, None, skipped


def frame_scores_record(ref: ChunkRef, logits: np.ndarray, probs: np.ndarray, embedding: np.ndarray | None,
                        *, labels: list[str], model_name: str, model_version: str, frame_ms: int) -> dict:
    """The FrameScores record for one scored chunk (see topics/schemas/FrameScores.v1.avsc)."""
    c = ref.chunk
    return {
        "call_id": c["call_id"],
        "role": ref.role,
        "seq": c["seq"],
        "start_ms": c["start_ms"],
        "frame_ms": frame_ms,
        "n_frames": int(logits.shape[0]),
        "labels": list(labels),
        "logits": logits.astype(np.float32).ravel().tolist(),
        "chunk_probs": probs.astype(np.float32).tolist(),
        "model": {"name": model_name, "version": model_version},
        "business_line": c.get("business_line", "default"),
        "event_time": c["event_time"],
        "gap_before": ref.gap_before,
        "end_of_call": bool(c.get("end_of_call", False)),
        "attributes": dict(c.get("attributes") or {}),
        "embedding": None if embedding is None else embedding.astype(np.float32).tolist(),
    }
