"""Inference pipeline logic between Kafka and the model, as pure steps.

AudioChunk record -> decode -> (per role) context/reorder -> window -> engine -> FrameScores record.
Kafka I/O lives in ``emowatch.streams.infer.service``; the model in ``emowatch.models``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emowatch.streams.audio.codec import AudioError, decode_pcm
from emowatch.streams.infer.context import Admitted, ContextStore
from emowatch.streams.infer.vad import Activity, FrameActivity
from emowatch.topics.call_ids import MAX_CALL_ID_CHARS

ROLES = ("CUSTOMER", "AGENT", "MIXED")


@dataclass
class ChunkRef:
    """One role of one AudioChunk, released by the context store and waiting for the model."""

    source: Any  # opaque handle of the input message (the agent uses (topic, partition, offset, message))
    chunk: dict  # the decoded AudioChunk record (audio bytes dropped)
    role: str
    window: np.ndarray
    emit_samples: int
    gap_before: bool

    @property
    def call_id(self) -> str:
        return self.chunk["call_id"]

    @property
    def seq(self) -> int:
        return self.chunk["seq"]

    @property
    def key(self) -> tuple[str, str]:
        """Output ordering key: scores of one call+role are published in seq order."""
        return (self.chunk["call_id"], self.role)


@dataclass
class Admission:
    """What offering one AudioChunk did.

    ``refs`` are ready to score now (they may include earlier-held chunks of other
    messages, released by this one); ``outputs`` is how many outputs this message will
    eventually produce (roles admitted now or held), ``skipped`` how many roles were
    duplicates or older seqs, ``held`` how many roles wait in the reorder buffer.
    """

    refs: list[ChunkRef] = field(default_factory=list)
    rejected: AudioError | None = None
    """Set when the chunk cannot be handled: the error that dead-letters it (stage DECODE)."""
    call_id: str | None = None
    outputs: int = 0
    skipped: int = 0
    held: int = 0
    seconds: float = 0.0
    """The chunk's duration."""


@dataclass
class _Pending:
    source: Any
    meta: dict


def parse_stereo_roles(value: str) -> tuple[str, str] | None:
    """``"CUSTOMER,AGENT"`` -> roles of the left and right channel; ``""``/``"none"`` -> no split (downmix).

    Raises ValueError for anything else, naming the accepted roles.
    """
    v = value.strip()
    if v == "" or v.lower() == "none":
        return None
    parts = tuple(p.strip().upper() for p in v.split(","))
    if len(parts) != 2 or any(p not in ROLES for p in parts) or parts[0] == parts[1]:
        raise ValueError(f"stereo roles must be two different roles of {ROLES} as 'LEFT,RIGHT' "
                         f"(e.g. 'CUSTOMER,AGENT') or 'none'; got {value!r}")
    return parts  # type: ignore[return-value]


def split_roles(chunk: dict, channels: list[np.ndarray],
                stereo_roles: tuple[str, str] | None) -> list[tuple[str, np.ndarray]]:
    """Mono -> the chunk's role. Stereo -> one role per channel when the chunk is MIXED and
    stereo roles are configured (left, right); otherwise the channels are averaged into the chunk's role."""
    if len(channels) == 1:
        return [(chunk["role"], channels[0])]
    if chunk["role"] == "MIXED" and stereo_roles is not None:
        return [(stereo_roles[0], channels[0]), (stereo_roles[1], channels[1])]
    return [(chunk["role"], (channels[0] + channels[1]) * 0.5)]


def to_ref(adm: Admitted) -> ChunkRef:
    """A released context entry as a ChunkRef (the token carries the source and chunk metadata)."""
    p: _Pending = adm.token
    return ChunkRef(p.source, p.meta, adm.role, adm.window, adm.emit_samples, adm.gap_before)


def admit_chunk(chunk: dict, source: Any, ctx: ContextStore, *, max_chunk_s: float,
                stereo_roles: tuple[str, str] | None, now: float, partition: int | None = None) -> Admission:
    """Decode one AudioChunk and offer each role to its call context."""
    if not chunk.get("call_id"):  # its scores could not be keyed (topics.serde.encode_key rejects an empty key)
        return Admission(rejected=AudioError("empty_call_id", "call_id is empty; the scores key would be empty"))
    if len(chunk["call_id"]) > MAX_CALL_ID_CHARS:  # a key of every topic, table and row downstream
        return Admission(rejected=AudioError("call_id_too_long", f"call_id of {len(chunk['call_id'])} characters "
                                             f"(at most {MAX_CALL_ID_CHARS})"), call_id=chunk["call_id"][:64] + "...")
    if chunk["seq"] < 0:  # seq is 0-based: the call context would drop it as an old chunk, without a trace
        return Admission(rejected=AudioError("negative_seq", f"seq {chunk['seq']} is negative (0-based per call and "
                                             "role)"), call_id=chunk["call_id"])
    try:
        decoded = decode_pcm(chunk["audio"], encoding=chunk["encoding"], sample_rate=chunk["sample_rate"],
                             channels=chunk["channels"], max_seconds=max_chunk_s)
    except AudioError as exc:
        return Admission(rejected=exc, call_id=chunk.get("call_id"))
    meta = {k: v for k, v in chunk.items() if k != "audio"}
    token = _Pending(source, meta)
    out = Admission(seconds=decoded.duration_ms / 1000.0)
    for role, signal in split_roles(chunk, decoded.channels, stereo_roles):
        offer = ctx.offer(chunk["call_id"], role, chunk["seq"], signal, now=now, token=token,
                          end_of_call=bool(chunk.get("end_of_call")), partition=partition)
        out.refs += [to_ref(a) for a in offer.released]
        if offer.status in ("duplicate", "old"):
            out.skipped += 1
        else:
            out.outputs += 1
            out.held += offer.status == "held"
    return out


def release_expired(ctx: ContextStore, now: float) -> list[ChunkRef]:
    """Held chunks whose gap became final, as ChunkRefs in seq order per call+role."""
    return [to_ref(a) for a in ctx.flush_expired(now)]


def score_batch(infer: Callable[[list[Any]], list[Any]], activity: FrameActivity | None,
                refs: Sequence[ChunkRef]) -> list[tuple[Any, Activity | None]]:
    """Engine results (Result or ItemError) and voice activity of a batch, one ``(result, activity)`` per ref.

    ``infer`` is the engine's ``infer_batch``; ``activity`` None computes none (records get null fields)."""
    from emowatch.models.engine import Window  # torch: only where a model runs (the gateway imports ROLES)

    results = infer([Window(key=i, audio=r.window, emit_samples=r.emit_samples) for i, r in enumerate(refs)])
    acts = activity.annotate([(r.window, r.emit_samples) for r in refs]) if activity is not None else []
    return list(zip(results, acts or [None] * len(refs)))


def frame_scores_record(ref: ChunkRef, logits: np.ndarray, probs: np.ndarray, embedding: np.ndarray | None,
                        *, labels: list[str], model_name: str, model_version: str, frame_ms: int,
                        activity: Activity | None = None) -> dict:
    """The FrameScores record for one scored chunk (see topics/schemas/FrameScores.v3.avsc).

    ``activity`` fills ``speech``/``energy_db``/``vad`` (null without it); its arrays have one value per
    logit frame."""
    c = ref.chunk
    n_frames = int(logits.shape[0])
    speech = energy = None
    if activity is not None:
        speech, energy = activity.speech, activity.energy_db
        if len(energy) != n_frames or (speech is not None and len(speech) != n_frames):
            raise ValueError(f"voice activity of {len(energy)} frames for {n_frames} logit frames")
    return {
        "call_id": c["call_id"],
        "role": ref.role,
        "seq": c["seq"],
        "start_ms": c["start_ms"],
        "frame_ms": frame_ms,
        "n_frames": n_frames,
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
        "speech": None if speech is None else speech.astype(np.float32).tolist(),
        "energy_db": None if energy is None else energy.astype(np.float32).tolist(),
        "vad": None if speech is None or activity is None else activity.vad,
    }
