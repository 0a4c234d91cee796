"""The inference agent: audio topic -> model (dynamic batches across calls) -> scores topic.

At-least-once: an input offset is committed only when every output it produced
(scores per role, or its dead letter) has been acknowledged by the broker.
Backpressure: when the batcher is full the assigned partitions are paused.
Rebalance: revoked partitions are drained and committed, their call contexts
dropped; the new owner rebuilds context from the next chunks (gap_before=True).
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

from confluent_kafka import KafkaError, Message, TopicPartition

from emowatch.models.engine import ItemError, Window
from emowatch.streams.batcher import Batcher
from emowatch.streams.context import ContextStore
from emowatch.streams.io.kafka import DeadLetters, make_consumer, make_producer, serde_for, topics_for
from emowatch.streams.observability import HealthServer, StageMetrics
from emowatch.streams.offsets import OffsetTracker
from emowatch.streams.scoring import ChunkRef, admit_chunk, frame_scores_record
from emowatch.streams.settings import Settings
from emowatch.topics.serde import SerdeError

log = logging.getLogger("emowatch.infer")


class InferenceService:
    def __init__(self, settings: Settings, model: Any = None, stop: threading.Event | None = None) -> None:
        self.s = settings
        self.stop_event = stop or threading.Event()
        if model is None:
            from emowatch.models.loader import load_model

            model = load_model(settings.model.model, device=settings.model.device, precision=settings.model.precision)
        self.model = model
        self.engine = model.engine()
        self.topics = topics_for(settings.kafka)
        self.audio_serde = serde_for(settings.kafka, "AudioChunk")
        self.scores_serde = serde_for(settings.kafka, "FrameScores")
        self.consumer = make_consumer(settings.kafka, settings.infer.group_id)
        self.producer = make_producer(settings.kafka)
        self.dlq = DeadLetters(self.producer, self.topics.dlq, settings.kafka, service=settings.infer.group_id)
        self.ctx = ContextStore(context_s=settings.infer.context_s)
        self.tracker = OffsetTracker()
        cap = settings.infer.queue_size
        self.batcher: Batcher[ChunkRef] = Batcher(max_batch=min(settings.infer.max_batch, cap),
                                                  max_wait_ms=settings.infer.max_wait_ms, capacity=cap,
                                                  bucket_of=lambda r: len(r.window))
        self.stereo_roles = tuple(r.strip().upper() for r in settings.infer.stereo_roles.split(","))[:2]
        self.call_partition: dict[str, int] = {}
        self.paused = False
        self.fatal: str | None = None
        self._last_commit = 0.0
        self._last_evict = time.monotonic()
        m = self.metrics = StageMetrics("infer")
        self.m_batch = m.histogram("infer_batch_size", "Windows per model batch", (1, 2, 4, 8, 16, 32, 64, 128, 256))
        self.m_qdelay = m.histogram("infer_queue_delay_seconds", "Time a window waited for its batch",
                                    (.001, .005, .01, .02, .05, .1, .2, .5, 1, 2))
        self.m_model = m.histogram("infer_model_seconds", "Model time per batch", (.001, .005, .01, .05, .1, .5, 1, 5))
        self.m_rtf = m.gauge("infer_real_time_factor", "Model seconds per audio second (last batch)")
        self.m_active = m.gauge("infer_active_calls", "Call+role contexts held")
        self.m_bytes = m.gauge("infer_bytes_per_call", "Context bytes per active call+role")
        self.m_scored = m.counter("infer_scored", "Chunks scored")
        self.http: HealthServer | None = None

    # ---- lifecycle -------------------------------------------------------------------------
    def run(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: self.stop_event.set())
            signal.signal(signal.SIGINT, lambda *_: self.stop_event.set())
        self.http = HealthServer(self.s.infer.http_port, self.metrics.registry, self.health).start()
        log.info("inference agent started", extra={"topic": self.topics.audio, "group": self.s.infer.group_id,
                                                   "model": self.model.name, "http_port": self.http.port})
        self.consumer.subscribe([self.topics.audio], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_lost)
        try:
            while not self.stop_event.is_set() and not self.fatal:
                self._iterate()
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        log.info("draining inference agent")
        try:
            self._drain()
            self._commit(sync=True)
        finally:
            self.consumer.close()
            if self.http:
                self.http.stop()
        if self.fatal:
            raise RuntimeError(self.fatal)

    def health(self) -> dict:
        return {"status": "ok" if not self.fatal else "failing", "error": self.fatal, "paused": self.paused,
                "queued": len(self.batcher), "in_flight": self.tracker.in_flight(),
                "active_calls": len(self.ctx.contexts), "bytes_per_call": round(self.ctx.bytes_per_call(), 1)}

    # ---- main loop -------------------------------------------------------------------------
    def _iterate(self) -> None:
        budget = (self.batcher.capacity - len(self.batcher)) // 2
        if budget <= 0 and not self.paused:
            self._set_paused(True)
        elif self.paused and len(self.batcher) <= self.batcher.capacity // 2:
            self._set_paused(False)
        deadline = self.batcher.next_deadline()
        timeout = 0.1 if deadline is None else min(0.1, max(0.0, deadline - time.monotonic()))
        msgs = self.consumer.consume(num_messages=max(1, min(budget, 500)), timeout=timeout)
        now = time.monotonic()
        for msg in msgs:
            self._handle(msg, now)
        while True:
            batch, delays = self.batcher.pop_batch()
            if not batch:
                break
            self._run_batch(batch, delays)
        self.producer.poll(0)
        self._commit()
        if now - self._last_evict > 5.0:
            self._last_evict = now
            self.ctx.evict_idle(now, self.s.infer.idle_evict_s)
            self.m_active.set(len(self.ctx.contexts))
            self.m_bytes.set(self.ctx.bytes_per_call())

    def _handle(self, msg: Message, now: float) -> None:
        if msg.error():
            if msg.error().code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error", extra={"error": str(msg.error())})
            return
        self.metrics.received.inc()
        topic, part, off = msg.topic(), msg.partition(), msg.offset()
        try:
            chunk = self.audio_serde.decode(msg.value(), topic=topic, partition=part, offset=off)
        except SerdeError as exc:
            self._dead_letter(msg, "DECODE", str(exc), exc)
            return
        refs, rejected, skipped = admit_chunk(chunk, msg, self.ctx, max_chunk_s=self.s.infer.max_chunk_s,
                                              stereo_roles=self.stereo_roles, now=now)
        if skipped:
            self.metrics.discarded.labels("duplicate_seq").inc(skipped)
        if rejected is not None:
            self._dead_letter(msg, "DECODE", f"{rejected.code}: {rejected.reason}", None, rejected.call_id)
            return
        self.call_partition[chunk["call_id"]] = part
        self.tracker.add(topic, part, off, len(refs))
        for ref in refs:
            self.batcher.put(ref)

    def _dead_letter(self, msg: Message, stage: str, reason: str, exc: BaseException | None,
                     call_id: str | None = None, pending: bool = False) -> None:
        """DLQ a message; the input offset is done once the DLQ write is acked."""
        self.metrics.errors.labels(stage.lower()).inc()
        self.metrics.dlq.inc()
        if not pending:
            self.tracker.add(msg.topic(), msg.partition(), msg.offset(), 1)
        src = (msg.topic(), msg.partition(), msg.offset())
        self.dlq.send(msg, stage=stage, reason=reason, error=exc, call_id=call_id,
                      on_delivered=lambda err, _m: self._delivered(err, src))

    def _run_batch(self, batch: list[ChunkRef], delays: list[float]) -> None:
        windows = [Window(key=i, audio=r.window, emit_samples=r.emit_samples) for i, r in enumerate(batch)]
        t0 = time.perf_counter()
        results = self.engine.infer_batch(windows)
        dt = time.perf_counter() - t0
        audio_s = sum(r.emit_samples for r in batch) / 16000.0
        self.m_batch.observe(len(batch))
        self.m_model.observe(dt)
        self.m_rtf.set(dt / audio_s if audio_s else 0.0)
        for d in delays:
            self.m_qdelay.observe(d)
        for ref, res in zip(batch, results):
            msg: Message = ref.source
            if isinstance(res, ItemError):
                self._dead_letter(msg, "INFER", f"{res.code}: {res.reason}", None, ref.call_id, pending=True)
                continue
            record = frame_scores_record(ref, res.logits, res.probs, res.embedding, labels=self.model.labels,
                                         model_name=self.model.name, model_version=self.model.version,
                                         frame_ms=self.model.frame_ms)
            src = (msg.topic(), msg.partition(), msg.offset())
            value = self.scores_serde.encode(record, topic=self.topics.scores)
            self._produce(self.topics.scores, ref.call_id.encode(), value, src)
            self.m_scored.inc()

    def _produce(self, topic: str, key: bytes, value: bytes, src: tuple[str, int, int]) -> None:
        while True:
            try:
                self.producer.produce(topic, key=key, value=value, on_delivery=lambda err, _m: self._delivered(err, src))
                return
            except BufferError:  # local producer queue full: serve delivery reports, then retry
                self.producer.poll(0.1)

    def _delivered(self, err, src: tuple[str, int, int]) -> None:
        if err is not None:
            self.fatal = f"delivery failed for input {src}: {err}"
            log.error("delivery failed; stopping without committing", extra={"error": str(err), "source": str(src)})
            return
        self.metrics.sent.inc()
        self.tracker.done(*src)

    def _commit(self, sync: bool = False) -> None:
        now = time.monotonic()
        if not sync and now - self._last_commit < 0.2:
            return
        self._last_commit = now
        positions = self.tracker.committable()
        if positions:
            offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
            try:
                self.consumer.commit(offsets=offsets, asynchronous=not sync)
            except Exception as exc:  # a failed commit only means re-processing (at-least-once)
                log.warning("commit failed", extra={"error": str(exc)})

    def _drain(self) -> None:
        while len(self.batcher):
            batch, delays = self.batcher.pop_batch(force=True)
            self._run_batch(batch, delays)
        self.producer.flush(30)

    def _set_paused(self, paused: bool) -> None:
        parts = self.consumer.assignment()
        if parts:
            (self.consumer.pause if paused else self.consumer.resume)(parts)
        self.paused = paused

    # ---- rebalance -------------------------------------------------------------------------
    def _on_assign(self, consumer, partitions) -> None:
        log.info("partitions assigned", extra={"partitions": [p.partition for p in partitions]})
        if self.paused:
            consumer.pause(partitions)

    def _on_revoke(self, consumer, partitions) -> None:
        log.info("partitions revoked", extra={"partitions": [p.partition for p in partitions]})
        self._drain()
        self._commit(sync=True)
        self._forget(partitions)

    def _on_lost(self, consumer, partitions) -> None:
        log.warning("partitions lost", extra={"partitions": [p.partition for p in partitions]})
        self._forget(partitions)

    def _forget(self, partitions) -> None:
        gone = {p.partition for p in partitions}
        for p in partitions:
            self.tracker.forget(p.topic, p.partition)
        self.ctx.drop_calls(lambda call_id: self.call_partition.get(call_id) not in gone)
        for call_id in [c for c, p in self.call_partition.items() if p in gone]:
            del self.call_partition[call_id]
