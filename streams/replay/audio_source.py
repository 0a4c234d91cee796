"""Score records for call recordings: what production would have published for a WAV file. No Kafka.

A recording goes the way of an upload: the gateway's own chunker (:class:`StreamChunker`) cuts it into
``EMOWATCH_GATEWAY__CHUNK_MS`` AudioChunks (a stereo file into one mono stream per channel with the roles of
``EMOWATCH_GATEWAY__STEREO_ROLES``, ``CUSTOMER,AGENT`` by default; a mono file with the given role, ``MIXED`` by
default; the last chunk flagged ``end_of_call``; the file's rate and encoding kept), and the chunks are scored
by the inference agent's pure steps and engine (:meth:`OfflineScorer.like_agent`: left context of
``EMOWATCH_INFER__CONTEXT_S``, voice activity per frame, the agent's settings). A call's event times start at
``capture_start_ms`` (default 0: only call offsets matter to the rules; see the caller for silences).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from emowatch.streams.gateway.ingest import IngestError, StreamChunker
from emowatch.streams.infer.scoring import parse_stereo_roles
from emowatch.streams.rescore.scorer import OfflineScorer
from emowatch.topics.errors import EmowatchError

__all__ = ["AudioCallError", "AudioCalls"]


class AudioCallError(EmowatchError, ValueError):
    """A recording that cannot be scored (unreadable, a format the gateway refuses); the message names the file."""


class AudioCalls:
    """``score(path, call_id=...) -> [FrameScores dict]`` for one recording at a time, in the order a rules
    worker reads them (seq order per role; a stereo call's roles interleaved chunk by chunk, as published).

    ``model`` is a loaded :class:`~emowatch.models.loader.EmotionModel`, ``settings`` the process's
    :class:`~emowatch.streams.settings.Settings` (gateway and inference sections)."""

    def __init__(self, model: Any, settings: Any, *, capture_start_ms: int = 0) -> None:
        self.scorer = OfflineScorer.like_agent(model, settings, embeddings=False)  # rules never read embeddings
        self.model_name, self.model_version = model.name, model.version
        g = settings.gateway
        self.chunk_ms, self.max_call_s = g.chunk_ms, g.max_call_s
        self.stereo_roles = parse_stereo_roles(g.stereo_roles)
        self.capture_start_ms = capture_start_ms
        self._offset = 0

    def chunks(self, path: str | Path, *, call_id: str, business_line: str = "default", role: str = "MIXED",
               attributes: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """The AudioChunk records the gateway would publish for an upload of ``path``."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise AudioCallError(f"{path}: cannot read the recording: {exc.strerror or exc}") from None
        try:
            chunker = StreamChunker(call_id, capture_start_ms=self.capture_start_ms, encoding="wav", role=role,
                                    stereo_roles=self.stereo_roles, business_line=business_line,
                                    attributes=attributes, chunk_ms=self.chunk_ms, max_call_s=self.max_call_s,
                                    expected_bytes=len(data))
            return chunker.feed(data) + chunker.finish(end_of_call=True)
        except IngestError as exc:
            raise AudioCallError(f"{path}: the gateway would refuse it: {exc}") from None

    def score(self, path: str | Path, *, call_id: str, business_line: str = "default", role: str = "MIXED",
              attributes: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """The call's FrameScores records. Chunks the agent could not decode or score are left out, as the agent
        dead-letters them (counted in ``scorer.counts.rejected`` / ``failed``); the rules then see a gap."""
        out: list[dict[str, Any]] = []
        for chunk in self.chunks(path, call_id=call_id, business_line=business_line, role=role,
                                 attributes=attributes):
            out += self.scorer.offer(chunk, emit=True, partition=0, offset=self._offset)
            self._offset += 1
        return out + self.scorer.finish()
