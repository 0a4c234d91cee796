"""Offline scoring for a rescore: AudioChunks in topic order -> FrameScores records. Pure (no Kafka).

The same pure steps as the inference agent (``streams/infer/scoring.py``: decode, stereo split,
per call+role context store with seq ordering and left context, ``frame_scores_record``) and the
same batched engine, so a rescore with the production model reproduces production's scores
(float rounding of other batch compositions aside). What differs is only the loop: no consumer
group, no model thread, no delivery bookkeeping, and the context store's clock is *event time*
(the latest chunk start read, in seconds) instead of the wall clock, so a held chunk's gap
becomes final after ``reorder_timeout_s`` of audio rather than of reading time - deterministic,
and what a live agent sees when audio arrives in real time.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from emowatch.models.engine import ItemError, Window
from emowatch.streams.infer.context import ContextStore
from emowatch.streams.infer.scoring import (
    ChunkRef,
    admit_chunk,
    frame_scores_record,
    parse_stereo_roles,
    release_expired,
    score_batch,
)
from emowatch.streams.infer.vad import FrameActivity, make_frame_activity
from emowatch.topics.model_io import SAMPLE_RATE

log = logging.getLogger("emowatch.rescore")


@dataclass(frozen=True)
class Tag:
    """What the context store carries for a chunk: whether its scores are wanted, and where it was read."""

    emit: bool
    partition: int
    offset: int


@dataclass
class ScorerCounts:
    read: int = 0  # chunks offered (scored or context only)
    context_only: int = 0
    rejected: int = 0  # undecodable chunks (the agent dead-letters them with stage DECODE)
    duplicates: int = 0
    failed: int = 0  # windows the engine could not score (the agent dead-letters them with stage INFER)
    scored: int = 0
    audio_s: float = 0.0
    model_s: float = 0.0
    calls: set[str] = field(default_factory=set)


class OfflineScorer:
    """Feeds chunks through a context store and scores the wanted ones in batches of ``max_batch``.

    ``infer(windows)`` is the engine's ``infer_batch``; ``model_meta`` holds the labels, name,
    version and frame_ms written into every record; ``activity`` the voice activity detector (the agent's
    ``EMOWATCH_INFER__VAD*`` settings give the same ``speech``/``energy_db``/``vad``; None leaves them null)."""

    def __init__(self, infer: Callable[[list[Window]], list[Any]], *, labels: list[str], model_name: str,
                 model_version: str, frame_ms: int, context_s: float, reorder_max: int, reorder_timeout_s: float,
                 max_chunk_s: float, stereo_roles: tuple[str, str] | None, max_batch: int = 64,
                 activity: FrameActivity | None = None) -> None:
        self.infer = infer
        self.activity = activity
        self.meta = {"labels": labels, "model_name": model_name, "model_version": model_version,
                     "frame_ms": frame_ms}
        self.ctx = ContextStore(context_s, reorder_max=reorder_max, reorder_timeout_s=reorder_timeout_s)
        self.max_chunk_s, self.stereo_roles = max_chunk_s, stereo_roles
        self.max_batch = max(1, max_batch)
        self.clock = float("-inf")
        self.pending: list[ChunkRef] = []
        self.counts = ScorerCounts()

    @classmethod
    def like_agent(cls, model: Any, settings: Any, *, embeddings: bool | None = None) -> OfflineScorer:
        """A scorer set up as the inference agent with these settings sets itself up: the loaded ``model``'s
        engine with the agent's options, the agent's context, reorder, stereo and voice-activity settings.

        ``model`` is a loaded :class:`~emowatch.models.loader.EmotionModel`, ``settings`` the process's
        :class:`~emowatch.streams.settings.Settings`; ``embeddings`` None: as ``EMOWATCH_MODEL__EMBEDDINGS``."""
        inf = settings.infer
        opts: dict[str, Any] = {}  # only options that differ from the engine's defaults (as the agent)
        if settings.model.embeddings if embeddings is None else embeddings:
            opts["embeddings"] = True
        if inf.max_batch > 64:
            opts["max_batch"] = inf.max_batch
        engine = model.engine(**opts)
        return cls(engine.infer_batch, labels=model.labels, model_name=model.name, model_version=model.version,
                   frame_ms=model.frame_ms, context_s=inf.context_s, reorder_max=inf.reorder_max,
                   reorder_timeout_s=inf.reorder_timeout_s, max_chunk_s=inf.max_chunk_s,
                   stereo_roles=parse_stereo_roles(inf.stereo_roles), max_batch=inf.max_batch,
                   activity=make_frame_activity(inf.vad, context_ms=inf.vad_context_ms, webrtc_mode=inf.vad_webrtc_mode,
                                                max_context_s=inf.context_s))

    def offer(self, chunk: dict, *, emit: bool, partition: int, offset: int) -> list[dict]:
        """Offer one decoded AudioChunk (in topic order); returns the records of any batch that became full."""
        self.counts.read += 1
        self.counts.context_only += not emit
        self.clock = max(self.clock, chunk["event_time"] / 1000.0)
        adm = admit_chunk(chunk, Tag(emit, partition, offset), self.ctx, max_chunk_s=self.max_chunk_s,
                          stereo_roles=self.stereo_roles, now=self.clock, partition=partition)
        if adm.rejected is not None:
            self.counts.rejected += 1
            log.warning("chunk not decodable; not rescored", extra={"call_id": adm.call_id, "partition": partition,
                                                                     "offset": offset, "error": str(adm.rejected)})
            return []
        self.counts.duplicates += adm.skipped
        self._queue(adm.refs + release_expired(self.ctx, self.clock))
        return self._score(force=False)

    def finish(self) -> list[dict]:
        """End of input: release every held chunk (its gap is final) and score what is left."""
        self._queue(release_expired(self.ctx, float("inf")))
        return self._score(force=True)

    def _queue(self, refs: list[ChunkRef]) -> None:
        self.pending += [r for r in refs if r.source.emit]

    def _score(self, *, force: bool) -> list[dict]:
        out: list[dict] = []
        while len(self.pending) >= self.max_batch or (force and self.pending):
            batch, self.pending = self.pending[:self.max_batch], self.pending[self.max_batch:]
            t0 = time.perf_counter()
            results = score_batch(self.infer, self.activity, batch)
            self.counts.model_s += time.perf_counter() - t0
            for ref, (res, act) in zip(batch, results):
                if isinstance(res, ItemError):
                    self.counts.failed += 1
                    log.warning("window not scored", extra={"call_id": ref.call_id, "seq": ref.seq,
                                                            "error": f"{res.code}: {res.reason}"})
                    continue
                out.append(frame_scores_record(ref, res.logits, res.probs, res.embedding, **self.meta, activity=act))
                self.counts.scored += 1
                self.counts.audio_s += ref.emit_samples / SAMPLE_RATE
                self.counts.calls.add(ref.call_id)
        return out
