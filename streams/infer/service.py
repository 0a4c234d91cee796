"""The inference agent: audio topic -> model (dynamic batches across calls) -> scores topic.

One process per device; more processes scale out through the consumer group.

* Poll thread (this module): consume, decode, order by seq (reorder buffer), queue
  windows in the FIFO :class:`Batcher`, publish results, serve delivery reports, commit.
  Every Kafka call happens on this thread.
* Model thread (:class:`ModelRunner`): runs one batch at a time, so polling and
  publishing overlap model compute. One FIFO queue + one runner means results complete
  in admission order, which the context store makes seq order per call+role: scores
  of one call+role are published in seq order.

At-least-once: an input offset is committed only when every output it produced (scores
per role, or its dead letter) has been acknowledged by the broker, so a restart resumes
at the first input whose outputs were not all acknowledged. Chunks held in a reorder
buffer keep their offsets uncommitted, and so do a live call's left-context inputs
(:class:`~emowatch.streams.infer.offsets.ContextHolds`: a restart scores as if uninterrupted).
Backpressure: when the batcher is full the assigned partitions are paused until it is half empty.
Rebalance: revoked partitions are drained, delivered and committed, their call contexts dropped;
the new owner rebuilds context from the next chunks. SIGTERM: drain, deliver, commit, exit.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, Message, TopicPartition

from emowatch.models.engine import ItemError
from emowatch.streams.infer.batcher import Batcher
from emowatch.streams.infer.context import ContextStore
from emowatch.streams.infer.metrics import InferMetrics
from emowatch.streams.infer.model_runner import Completed, ModelRunner
from emowatch.streams.infer.offsets import HeldTracker
from emowatch.streams.infer.scoring import (
    ChunkRef,
    admit_chunk,
    frame_scores_record,
    parse_stereo_roles,
    release_expired,
    score_batch,
)
from emowatch.streams.infer.vad import make_frame_activity
from emowatch.streams.kafka.clients import make_consumer, make_producer, serde_for, topics_for
from emowatch.streams.kafka.dead_letters import DeadLetters
from emowatch.streams.kafka.lag import LagMeter
from emowatch.streams.observability import HealthServer
from emowatch.streams.settings import Settings
from emowatch.topics.errors import DeadLetterError
from emowatch.topics.model_io import SAMPLE_RATE
from emowatch.topics.serde import SerdeError, encode_key

log = logging.getLogger("emowatch.infer")

STALL_S = 60.0  # /health fails when the poll loop has not run for this long
MAX_POLL = 500


class InferenceAgent:
    """The agent. ``run()`` blocks until ``stop`` is set (or SIGTERM/SIGINT), then drains."""

    def __init__(self, settings: Settings, model: Any = None, stop: threading.Event | None = None,
                 *, threaded: bool = True) -> None:
        self.s = settings
        inf = settings.infer
        self.stop_event = stop or threading.Event()
        self.stereo_roles = parse_stereo_roles(inf.stereo_roles)  # fail fast on a bad value
        if model is None:
            from emowatch.models.loader import load_model

            model = load_model(settings.model.model, device=settings.model.device, precision=settings.model.precision,
                               threads=settings.model.threads)
        self.model = model
        opts: dict[str, Any] = {}  # only options that differ from the engine's defaults
        if settings.model.embeddings:
            opts["embeddings"] = True
        if inf.max_batch > 64:
            opts["max_batch"] = inf.max_batch
        self.engine = model.engine(**opts)
        self.activity = make_frame_activity(inf.vad, context_ms=inf.vad_context_ms, webrtc_mode=inf.vad_webrtc_mode,
                                            max_context_s=inf.context_s)  # fails fast when it cannot load
        self.topics = topics_for(settings.kafka)
        self.audio_serde = serde_for(settings.kafka, "AudioChunk")
        self.scores_serde = serde_for(settings.kafka, "FrameScores")
        # fetch.wait.max.ms comes from EMOWATCH_KAFKA__FETCH_WAIT_MAX_MS: tansu answers a fetch only when
        # it expires (~200 ms per hop at librdkafka's 500 ms default, measured); the local stack uses 25.
        self.consumer = make_consumer(settings.kafka, inf.group_id)
        self.producer = make_producer(settings.kafka)
        self.ctx = ContextStore(inf.context_s, reorder_max=inf.reorder_max, reorder_timeout_s=inf.reorder_timeout_s)
        self.tracker = HeldTracker(inf.context_s, inf.context_hold_s)  # live calls' context inputs stay uncommitted
        cap = max(inf.queue_size, 2)
        # FIFO on purpose (no length buckets here): the engine groups a batch by length itself,
        # and FIFO completion keeps each call+role's scores in seq order.
        self.batcher: Batcher[ChunkRef] = Batcher(max_batch=min(inf.max_batch, cap), max_wait_ms=inf.max_wait_ms,
                                                  capacity=cap)
        self.runner: ModelRunner[ChunkRef] = ModelRunner(self._infer, threaded=threaded)
        self.metrics = InferMetrics()
        self.metrics.vad_seconds.set_function(lambda: self.activity.seconds)
        self.metrics.vad_failures.set_function(lambda: self.activity.failures)
        self.dlq = DeadLetters(settings.kafka, self.topics.dlq, inf.group_id, metrics=self.metrics.stage,
                               producer=self.producer)
        self.assigned: set[tuple[str, int]] = set()
        self.paused = False
        self.lag = LagMeter(every_s=0.0)  # measured by each housekeeping (once a second)
        self.fatal: str | None = None
        self.http: HealthServer | None = None
        self._last_commit = self._last_house = 0.0
        self._last_poll = self._last_report = time.monotonic()  # _last_report: a delivery report, or nothing in flight
        self._snapshot: dict = {}
        self.counts = {"received": 0, "scored": 0, "dlq": 0}

    # ---- lifecycle -------------------------------------------------------------------------
    def run(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: self.stop_event.set())
            signal.signal(signal.SIGINT, lambda *_: self.stop_event.set())
        self.http = HealthServer(self.s.infer.http_port, self.metrics.registry, self.health,
                                 host=self.s.infer.http_bind).start()
        log.info("inference agent started", extra={"topic": self.topics.audio, "group": self.s.infer.group_id,
                                                   "model": self._model_info(), "http_port": self.http.port})
        self.consumer.subscribe([self.topics.audio], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_lost)
        try:
            while not self.stop_event.is_set() and not self.fatal:
                self._iterate()
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        log.info("draining inference agent", extra={"queued": len(self.batcher), "held": self.ctx.held_count()})
        try:
            self._drain()
            self.tracker.release_held()  # a graceful stop commits exactly what it scored
            self._commit(sync=True)
        finally:
            self.consumer.close()  # revokes the assignment: the revoke callback commits again (a no-op)
            self.runner.close()
            if self.http:
                self.http.stop()
        log.info("inference agent stopped")
        if self.fatal:
            raise RuntimeError(self.fatal)

    def health(self) -> dict:
        """Content of ``/health`` (HTTP 503 unless status is ok). Called from the HTTP thread."""
        stalled = time.monotonic() - self._last_poll
        waiting = time.monotonic() - self._last_report
        problems = [p for p in (self.fatal,
                                f"poll loop stalled for {stalled:.0f}s" if stalled > STALL_S else None,
                                f"no delivery report for {waiting:.0f}s with outputs in flight"
                                if waiting > self.s.infer.delivery_stall_s else None,
                                None if self.runner.alive else "model thread died") if p]
        return {"status": "failing" if problems else "ok", "problems": problems,
                "model": self._model_info(),
                "group": self.s.infer.group_id, "topic": self.topics.audio, "paused": self.paused,
                "queued": len(self.batcher), "model_busy": self.runner.busy,
                "last_poll_age_s": round(stalled, 2), **self._snapshot}

    def _model_info(self) -> dict:
        m = self.model
        return {"name": m.name, "version": m.version, "device": str(getattr(m, "device", "?")),
                "vad": self.activity.name}

    def _iterate(self) -> None:
        self._collect()
        self._dispatch()
        if self._backpressure():
            budget = self.batcher.free // 2  # a message yields at most two windows (stereo)
            msgs = self.consumer.consume(num_messages=max(1, min(budget, MAX_POLL)), timeout=self._poll_timeout())
            self._last_poll = now = time.monotonic()
            for msg in msgs:
                self._handle(msg, now)
        else:  # paused: wait for the model to make room, without consuming
            if not self.runner.busy:
                self.runner.submit(self.batcher.pop_batch(force=True))
            done = self.runner.wait(timeout=0.1)
            self._last_poll = now = time.monotonic()
            if done is not None:
                self._publish(done)
        self._queue(release_expired(self.ctx, now))
        self._collect()
        self._dispatch()
        self.producer.poll(0)
        self._commit()
        if now - self._last_house >= 1.0:
            self._housekeeping(now)

    def _poll_timeout(self) -> float:
        if self.runner.busy:
            return 0.005  # the model thread cannot wake consume(); check back soon
        now = time.monotonic()
        deadlines = [d for d in (self.batcher.next_deadline(), self.ctx.next_hold_deadline()) if d is not None]
        return min(0.1, max(0.0, min(deadlines) - now)) if deadlines else 0.1

    def _backpressure(self) -> bool:
        """Pause when the batcher cannot take another poll's worth; resume when half empty. True = may consume."""
        if not self.paused and self.batcher.free < 2:
            self._set_paused(True)
        elif self.paused and len(self.batcher) <= self.batcher.capacity // 2:
            self._set_paused(False)
        return not self.paused

    def _handle(self, msg: Message, now: float) -> None:
        if msg.error():
            if msg.error().code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error", extra={"error": str(msg.error())})
            return
        self.metrics.received.inc()
        self.counts["received"] += 1
        topic, part, off = msg.topic(), msg.partition(), msg.offset()
        try:
            chunk = self.audio_serde.decode(msg.value(), topic=topic, partition=part, offset=off)
        except SerdeError as exc:
            self._dead_letter(msg, exc)
            return
        adm = admit_chunk(chunk, msg, self.ctx, max_chunk_s=self.s.infer.max_chunk_s,
                          stereo_roles=self.stereo_roles, now=now, partition=part)
        if adm.rejected is not None:
            self._dead_letter(msg, adm.rejected, adm.call_id)
            return
        if adm.skipped:
            self.metrics.discarded.labels("duplicate_seq").inc(adm.skipped)
        self.tracker.add(topic, part, off, adm.outputs)  # held roles stay pending: their offset is not committed
        if adm.outputs:
            self.tracker.hold_input(topic, part, chunk["call_id"], chunk.get("role") or "", off, adm.seconds, now,
                                    bool(chunk.get("end_of_call")))
        self._queue(adm.refs)

    def _queue(self, refs: list[ChunkRef]) -> None:
        for ref in refs:
            # force: the message is consumed already. Consumption is gated by _backpressure (two windows
            # per message), so the queue exceeds capacity only by chunks released from reorder buffers.
            self.batcher.put(ref, force=True)

    def _dispatch(self) -> None:
        if not self.runner.busy:
            batch = self.batcher.pop_batch()
            if batch:
                self.runner.submit(batch)

    def _infer(self, refs: Sequence[ChunkRef]) -> list[object]:
        """Runs on the model thread: windows -> (engine result (Result or ItemError), voice activity) per item."""
        return score_batch(self.engine.infer_batch, self.activity, refs)  # type: ignore[return-value]

    def _collect(self) -> None:
        for done in self.runner.completed():
            self._publish(done)

    def _publish(self, done: Completed[ChunkRef]) -> None:
        batch, m = done.batch, self.metrics
        audio_s = sum(r.emit_samples for r in batch.items) / SAMPLE_RATE
        m.batch_size.observe(len(batch))
        m.model_seconds.observe(done.model_s)
        m.audio_seconds.inc(audio_s)
        m.rtf.set(done.model_s / audio_s if audio_s else 0.0)
        for d in batch.delays:
            m.queue_delay.observe(d)
        now_ms = time.time() * 1000.0
        for i, (ref, fut) in enumerate(zip(batch.items, batch.futures)):  # every future is complete here
            msg: Message = ref.source
            exc = fut.exception(timeout=0)
            res, act = (ItemError(i, "internal", f"{type(exc).__name__}: {exc}"), None) if exc is not None \
                else fut.result(timeout=0)
            if isinstance(res, ItemError):
                self._dead_letter(msg, DeadLetterError("INFER", f"{res.code}: {res.reason}"), ref.call_id, pending=True)
                continue
            record = frame_scores_record(ref, res.logits, res.probs, res.embedding, labels=self.model.labels,
                                         model_name=self.model.name, model_version=self.model.version,
                                         frame_ms=self.model.frame_ms, activity=act)
            value = self.scores_serde.encode(record, topic=self.topics.scores)
            self._produce(encode_key(ref.call_id), value, (msg.topic(), msg.partition(), msg.offset()))
            m.scored.inc()
            self.counts["scored"] += 1
            if ref.gap_before:
                m.gaps.inc()
            ts_type, ts = msg.timestamp()
            if ts_type and ts > 0:
                m.latency.observe(max(0.0, now_ms - ts) / 1000.0)

    def _produce(self, key: bytes, value: bytes, src: tuple[str, int, int]) -> None:
        while True:
            try:
                self.producer.produce(self.topics.scores, key=key, value=value,
                                      on_delivery=lambda err, _m: self._delivered(err, src))
                return
            except BufferError:  # local producer queue full: serve delivery reports, then retry
                self.producer.poll(0.1)

    def _dead_letter(self, msg: Message, error: DeadLetterError, call_id: str | None = None,
                     pending: bool = False) -> None:
        """DLQ a message; its input offset is done once the DLQ write is acknowledged.

        ``pending``: the offset is already tracked (a role that failed in the model)."""
        self.counts["dlq"] += 1
        if not pending:
            self.tracker.add(msg.topic(), msg.partition(), msg.offset(), 1)
        src = (msg.topic(), msg.partition(), msg.offset())
        self.dlq.send(msg, error, call_id=call_id, on_delivered=lambda err, _m: self._delivered(err, src))

    def _delivered(self, err, src: tuple[str, int, int]) -> None:
        self._last_report = time.monotonic()
        if err is not None:
            self.fatal = f"delivery failed for input {src}: {err}"
            log.error("delivery failed; stopping without committing it", extra={"error": str(err), "source": str(src)})
            return
        self.metrics.sent.inc()
        self.tracker.done(*src)

    # ---- commits, drain, housekeeping ------------------------------------------------------
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
            except Exception as exc:  # noqa: BLE001 - a failed commit only means re-processing (at-least-once)
                log.warning("commit failed", extra={"error": str(exc)})

    def _drain(self) -> None:
        """Score everything queued, publish it and wait for every delivery report. Chunks held in reorder
        buffers stay held (uncommitted): after a restart or on the new owner they are read again."""
        while True:
            self._collect()
            if self.runner.busy:
                done = self.runner.wait(timeout=1.0)
                if done is not None:
                    self._publish(done)
                self.producer.poll(0)
                continue
            batch = self.batcher.pop_batch(force=True)
            if not batch:
                break
            self.runner.submit(batch)
        left = self.producer.flush(30)
        if left:
            log.warning("outputs still undelivered after drain", extra={"undelivered": left})

    def _set_paused(self, paused: bool) -> None:
        parts = self.consumer.assignment()
        if parts:
            (self.consumer.pause if paused else self.consumer.resume)(parts)
        self.paused = paused
        self.metrics.paused.set(int(paused))
        log.info("backpressure: partitions paused" if paused else "backpressure: partitions resumed",
                 extra={"queued": len(self.batcher)})

    def _housekeeping(self, now: float) -> None:
        self._last_house = now
        if not self.tracker.in_flight():
            self._last_report = now  # nothing waits for a delivery report
        self.ctx.evict_idle(now, self.s.infer.idle_evict_s)
        self.tracker.expire_holds(now)
        # paused partitions (backpressure) are not fetched: their backlog is asked from the broker
        lag = self.lag.measure(self.consumer, self.assigned, self.tracker.processed,
                               stale=self.assigned if self.paused else ())
        self.metrics.observe_state(active_calls=len(self.ctx.contexts), bytes_per_call=self.ctx.bytes_per_call(),
                                   held=self.ctx.held_count(), queued=len(self.batcher), holds=self.tracker.holds(),
                                   lag=lag)
        self._snapshot = {  # read by the HTTP thread: built here, replaced atomically
            "partitions": sorted(p for _, p in self.assigned), "consumer_lag": lag,
            "active_calls": len(self.ctx.contexts), "bytes_per_call": round(self.ctx.bytes_per_call(), 1),
            "held_for_reorder": self.ctx.held_count(), "inputs_in_flight": self.tracker.in_flight(),
            "inputs_held_for_context": self.tracker.holds(),
            **self.counts, "skipped": self.ctx.skipped, "gaps": self.ctx.gaps,
        }

    # ---- rebalance -------------------------------------------------------------------------
    def _on_assign(self, consumer, partitions) -> None:
        log.info("partitions assigned", extra={"partitions": [p.partition for p in partitions]})
        self.assigned |= {(p.topic, p.partition) for p in partitions}
        if self.paused:
            consumer.pause(partitions)

    def _on_revoke(self, consumer, partitions) -> None:
        log.info("partitions revoked: draining and committing", extra={"partitions": [p.partition for p in partitions]})
        self._drain()
        self.tracker.release_held({(p.topic, p.partition) for p in partitions})  # exact hand-over
        self._commit(sync=True)
        self._forget(partitions)

    def _on_lost(self, consumer, partitions) -> None:
        log.warning("partitions lost: dropping their state", extra={"partitions": [p.partition for p in partitions]})
        self._forget(partitions)

    def _forget(self, partitions) -> None:
        for p in partitions:
            self.tracker.forget(p.topic, p.partition)
            self.assigned.discard((p.topic, p.partition))
        dropped = self.ctx.drop_partitions({p.partition for p in partitions})
        if dropped:
            log.info("dropped held chunks of revoked partitions (uncommitted, the new owner reads them)",
                     extra={"held": len(dropped)})
