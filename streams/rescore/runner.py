"""``emowatch rescore``: the audio topic -> another model -> a separate scores topic (and optionally ClickHouse).

Never touches production: the audio topic is read by a throw-away reader (assigned partitions, no
consumer group, no commits), the output goes to a topic that must differ from every topic of the
deployment (created with the scores topic's spec when missing), and ClickHouse rows go to
``scores_rescored``, never to ``scores`` (see ``streams/sink/rescored.py``). Scoring reuses the
inference agent's pure steps and the batched engine (``scorer.py``), so the output equals what the
production agent would publish with that model.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from emowatch.streams.kafka.admin import ensure_topic
from emowatch.streams.kafka.audio_reader import AudioReader
from emowatch.streams.kafka.clients import base_config, topics_for
from emowatch.streams.kafka.scores_writer import ScoresWriter
from emowatch.streams.rescore.errors import RescoreError
from emowatch.streams.rescore.scorer import OfflineScorer
from emowatch.streams.rescore.selection import Selection
from emowatch.streams.settings import KafkaSettings, Settings
from emowatch.topics.registry import extra_topic_spec

log = logging.getLogger("emowatch.rescore")

STORE_BATCH = 1000
"""Rows per ClickHouse insert of ``--store``."""
IDLE_TIMEOUT_S = 60.0
"""Give up when no record arrives for this long while partitions are still short of their end offsets."""

Progress = Callable[[int, int, int, int], None]
"""``progress(records read, records to read, chunks scored, calls)``."""


@dataclass
class RescoreSummary:
    target: str
    model_name: str
    model_version: str
    chunks: int  # chunks scored and published
    calls: int
    records_read: int
    context_chunks: int  # chunks read before --from for left context only
    rejected: int  # undecodable chunks
    failed: int  # windows the engine could not score
    duplicates: int
    audio_s: float
    model_s: float
    seconds: float
    started_from_earliest: bool
    stored_rows: int

    @property
    def rtf(self) -> float:
        """Real-time factor: wall seconds per second of audio scored (lower is faster)."""
        return self.seconds / self.audio_s if self.audio_s else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rtf": round(self.rtf, 4)}


def check_target(kafka: KafkaSettings, name: str) -> str:
    """``name`` if it may receive a rescore; RescoreError when it is a topic of the deployment."""
    try:
        extra_topic_spec(topics_for(kafka), name)
    except ValueError as exc:
        raise RescoreError(f"--scores-topic: {exc}") from None
    return name


def ensure_target(kafka: KafkaSettings, name: str) -> bool:
    """Create the target topic with the scores topic's spec unless it exists; True when created.
    RescoreError when it exists with another partition count (its calls would not be co-partitioned)."""
    spec = extra_topic_spec(topics_for(kafka), check_target(kafka, name))
    extra = {k: v for k, v in base_config(kafka).items() if k != "bootstrap.servers"}
    created, parts = ensure_topic(kafka.bootstrap_servers, spec, kafka.partitions, kafka.replication_factor,
                                  extra=extra)
    if parts != kafka.partitions:
        raise RescoreError(f"topic {name} has {parts} partitions, expected {kafka.partitions} like the scores "
                           "topic (a call's rescored scores must sit on its audio's partition index)")
    return created


class Rescore:
    """One rescore run. ``model`` is a loaded :class:`~emowatch.models.loader.EmotionModel`; ``store`` an
    optional :class:`~emowatch.streams.sink.rescored.RescoredStore`."""

    def __init__(self, settings: Settings, selection: Selection, *, model: Any, target: str, store: Any = None,
                 progress: Progress | None = None, idle_timeout_s: float = IDLE_TIMEOUT_S) -> None:
        self.s, self.selection, self.model, self.target = settings, selection, model, target
        self.store, self.progress, self.idle_timeout_s = store, progress, idle_timeout_s
        check_target(settings.kafka, target)
        self.scorer = OfflineScorer.like_agent(model, settings)  # the inference agent's engine and steps
        self._to_store: list[tuple[dict, int, int]] = []

    def run(self) -> RescoreSummary:
        t0 = time.perf_counter()
        ensure_target(self.s.kafka, self.target)
        reader = AudioReader(self.s.kafka, topics_for(self.s.kafka).audio)
        writer = ScoresWriter(self.s.kafka, self.target, on_delivered=self._delivered if self.store else None)
        log.info("rescore started", extra={"target": self.target, "model": self.model.name,
                                           "model_version": self.model.version, "records": reader.total})
        try:
            self._read(reader, writer)
            for rec in self.scorer.finish():
                writer.send(rec)
            writer.flush()
            self._store(force=True)
            self._report(reader)
        finally:
            reader.close()
        c = self.scorer.counts
        summary = RescoreSummary(
            target=self.target, model_name=self.model.name, model_version=self.model.version, chunks=c.scored,
            calls=len(c.calls), records_read=reader.consumed, context_chunks=c.context_only, rejected=c.rejected,
            failed=c.failed, duplicates=c.duplicates, audio_s=round(c.audio_s, 3), model_s=round(c.model_s, 3),
            seconds=round(time.perf_counter() - t0, 3), started_from_earliest=reader.started_from_earliest,
            stored_rows=self.store.rows if self.store else 0)
        log.info("rescore finished", extra=summary.as_dict())
        return summary

    def _read(self, reader: AudioReader, writer: ScoresWriter) -> None:
        sel, last = self.selection, time.monotonic()
        while not reader.done:
            got = False
            for rec in reader.poll():
                got = True
                if rec.chunk is None:
                    self.scorer.counts.rejected += 1
                    log.warning("audio record not decodable; skipped", extra={"partition": rec.partition,
                                                                              "offset": rec.offset, "error": rec.error})
                    continue
                chunk = rec.chunk
                if sel.past_end(chunk["event_time"]):
                    reader.finish(rec.partition)
                    continue
                emit = sel.scores(chunk)
                if emit or sel.context_only(chunk):
                    for out in self.scorer.offer(chunk, emit=emit, partition=rec.partition, offset=rec.offset):
                        writer.send(out)
            now = time.monotonic()
            if got:
                last = now
                self._store(force=False)
                self._report(reader)
            elif now - last > self.idle_timeout_s:
                left = reader.total - reader.consumed
                raise RescoreError(f"no audio records for {self.idle_timeout_s:g}s with {left} left before the end "
                                   f"offsets of {reader.topic} (records deleted meanwhile?)")

    def _delivered(self, record: dict, partition: int, offset: int) -> None:
        self._to_store.append((record, partition, offset))

    def _store(self, *, force: bool) -> None:
        while self.store is not None and (len(self._to_store) >= STORE_BATCH or (force and self._to_store)):
            batch, self._to_store = self._to_store[:STORE_BATCH], self._to_store[STORE_BATCH:]
            self.store.insert(batch)

    def _report(self, reader: AudioReader) -> None:
        if self.progress is not None:
            c = self.scorer.counts
            self.progress(reader.consumed, reader.total, c.scored, len(c.calls))
