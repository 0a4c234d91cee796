"""ClickHouse sink: scores + alerts topics -> ClickHouse tables.

Batches per partition (:mod:`emowatch.streams.sink.batches`: reproducible cuts, the cut recorded in
ClickHouse before the insert); each insert carries ``insert_deduplication_token =
topic-partition-firstoffset-lastoffset`` and the partition's offset is committed only after the insert
succeeded, so a batch re-read after a crash is cut at the same offsets and its repeat is dropped (the
design of ClickHouse's Kafka Connect sink, whose state lives in KeeperMap). Tables are ReplacingMergeTree
on the natural key, so a message re-produced upstream at a new offset also collapses into one row.

A ClickHouse outage (:mod:`emowatch.streams.sink.outage`) pauses every assigned partition, keeps polling
(the group membership survives), retries the same pinned batch with a bounded exponential back-off and
resumes when it lands; only non-retryable errors (schema mismatch, rejected login) stop the sink. At
start-up the sink waits the same way for a ClickHouse it cannot reach (``/health`` says ``waiting``) and
joins its consumer group only once connected and migrated, so nothing is read or committed meanwhile.

Fault points (:mod:`emowatch.streams.faults`, off unless ``EMOWATCH_FAULT_POINTS`` arms them):
``sink.connect``, ``sink.after_record``, ``sink.after_insert``, ``sink.after_recut_insert``, ``sink.after_commit``.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from urllib.parse import urlsplit

from confluent_kafka import KafkaError, Message, TopicPartition

from emowatch.streams.faults import arm as arm_faults
from emowatch.streams.faults import fault_point
from emowatch.streams.kafka.clients import make_consumer, make_producer, serde_for, topics_for
from emowatch.streams.kafka.dead_letters import DeadLetters
from emowatch.streams.kafka.lag import LagMeter
from emowatch.streams.observability import HealthServer, StageMetrics
from emowatch.streams.settings import Settings
from emowatch.streams.sink.batches import TP, Batch, Batcher
from emowatch.streams.sink.clickhouse import apply_schema, cluster_of, connect
from emowatch.streams.sink.history import HistoryReader
from emowatch.streams.sink.outage import Backoff, retryable
from emowatch.streams.sink.read_api import PREFIX, history_routes
from emowatch.streams.sink.rows import ALERTS_NATIVE, SCORES_NATIVE, alerts_row, scores_row
from emowatch.streams.sink.writer import SinkWriter
from emowatch.topics.errors import DeadLetterError
from emowatch.topics.security import MASK, redact_url
from emowatch.topics.serde import SerdeError

log = logging.getLogger("emowatch.sink")


def scrub(text: str, clickhouse_url: str | None) -> str:
    """``text`` (a driver's error message) safe to log: the password of any ``scheme://user:pw@``
    URL masked, and the configured server's password too wherever it appears on its own."""
    text = redact_url(text)
    password = urlsplit(clickhouse_url).password if clickhouse_url else None
    return text.replace(password, MASK) if password else text


class ClickHouseSink:
    def __init__(self, settings: Settings, stop: threading.Event | None = None,
                 backoff: Backoff | None = None) -> None:
        self.s = settings
        arm_faults(settings.fault_points)
        self.stop_event = stop or threading.Event()
        self.topics = topics_for(settings.kafka)
        self.targets = {  # float arrays decoded straight into numpy (rows.py, native.py)
            self.topics.scores: ("scores", SCORES_NATIVE, scores_row,
                                 serde_for(settings.kafka, "FrameScores", float_arrays="numpy")),
            self.topics.alerts: ("alerts", ALERTS_NATIVE, alerts_row, serde_for(settings.kafka, "Alert")),
        }
        self.cluster = cluster_of(settings.sink)  # EMOWATCH_SINK__CLUSTER: the schema on a ClickHouse cluster
        self.client = None  # connected and migrated by run(), which waits for ClickHouse if need be
        self.writer = SinkWriter(None, settings.sink.database, settings.sink.group_id,
                                 sync_replica=self.cluster is not None)
        self.consumer = make_consumer(settings.kafka, settings.sink.group_id)
        self.producer = make_producer(settings.kafka)
        self.batcher = Batcher(settings.sink.batch_rows, settings.sink.batch_ms)
        self.backoff = backoff or Backoff()
        self.outage: str | None = None  # the last retryable error while ClickHouse fails
        self.fatal: str | None = None
        self.metrics = StageMetrics("sink")
        self.dlq = DeadLetters(settings.kafka, self.topics.dlq, settings.sink.group_id, metrics=self.metrics,
                               producer=self.producer)
        self.m_rows = self.metrics.counter("sink_rows_written", "Rows inserted into ClickHouse")
        self.m_insert = self.metrics.histogram("sink_insert_seconds", "Insert latency", (.005, .01, .05, .1, .5, 1, 5))
        self.m_failures = self.metrics.counter("sink_insert_failures", "Failed ClickHouse writes (retried)")
        self.m_recut = self.metrics.counter("sink_batches_recut",
                                            "Batches re-cut at the offsets recorded before a restart")
        self.lag = LagMeter()
        self.http: HealthServer | None = None
        self.history: HistoryReader | None = None
        self._history_routes = None
        where = settings.sink.clickhouse_url
        self.where = redact_url(where) if where else f"chdb:{settings.sink.data_dir}"

    def health(self) -> dict:
        waiting = self.outage or (None if self.client is not None else "connecting to clickhouse")
        status = "failing" if self.fatal else "waiting" if waiting else "ok"
        return {"status": status, "error": self.fatal or waiting, "paused": self.backoff.active,
                "buffered_rows": self.batcher.buffered(), "consumer_lag": self.lag.value}

    def run(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: self.stop_event.set())
            signal.signal(signal.SIGINT, lambda *_: self.stop_event.set())
        ss = self.s.sink
        self.http = HealthServer(ss.http_port, self.metrics.registry, self.health, host=ss.http_bind,
                                 routes={PREFIX: self._history}).start()
        log.info("sink started", extra={"topics": list(self.targets), "clickhouse": self.where,
                                        "http_port": self.http.port})
        try:
            if not self._connect():
                return self._stopped()
            self.consumer.subscribe(list(self.targets), on_revoke=self._on_revoke, on_lost=self._on_lost)
            while not self.stop_event.is_set() and not self.fatal:
                for msg in self.consumer.consume(num_messages=1000, timeout=0.1):
                    self._handle(msg)
                if self.backoff.active:  # partitions assigned during the outage are paused too
                    self.consumer.pause(self.consumer.assignment())
                self._flush()
                self.producer.poll(0)
                self._measure_lag()
        finally:
            try:
                if self.client is not None and not self.fatal and not self.backoff.active:
                    self._flush(final=True)
            finally:
                self.consumer.close()
                if self.http:
                    self.http.stop()
                if self.history:
                    self.history.client.close()
                if self.client is not None:
                    self.client.close()
        self._stopped()

    def _stopped(self) -> None:
        if self.fatal:
            raise RuntimeError(self.fatal)

    def _connect(self) -> bool:
        """Connect to ClickHouse and apply the migrations, waiting out retryable failures with the back-off;
        False if stopped meanwhile or the failure is not retryable (``fatal``)."""
        ss = self.s.sink
        while not self.stop_event.is_set():
            client = None
            try:
                fault_point("sink.connect")
                client = connect(ss.clickhouse_url, ss.data_dir, ss.database, self.cluster)
                apply_schema(client, ss.database, self.cluster)
                # History reads get a client of their own (docs/gateway.md "Reading history while the sink writes").
                history = HistoryReader(connect(ss.clickhouse_url, ss.data_dir, ss.database, self.cluster),
                                        ss.database)
            except Exception as exc:  # noqa: BLE001 - classified: waited out, or fatal
                if client is not None:
                    client.close()
                error = f"{type(exc).__name__}: {scrub(str(exc), ss.clickhouse_url)}"
                if not retryable(exc):
                    self.fatal = f"clickhouse at {self.where} unusable (not retryable): {error}"
                    log.error("clickhouse unusable at start-up: stopping", extra={"clickhouse": self.where,
                                                                                  "error": error})
                    return False
                self.m_failures.inc()
                self.outage = error
                delay = self.backoff.failed(time.monotonic())
                log.warning("clickhouse unreachable at start-up: waiting",
                            extra={"clickhouse": self.where, "error": error, "retry_in_s": delay,
                                   "failures": self.backoff.failures})
                self.stop_event.wait(delay)
                continue
            if self.backoff.active:
                log.info("clickhouse reachable: starting", extra={"clickhouse": self.where,
                                                                  "failures": self.backoff.failures})
            self.backoff.succeeded()
            self.outage = None
            self.history, self._history_routes = history, history_routes(history)[PREFIX]
            self.client = self.writer.client = client
            return True
        return False

    def _history(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict]:
        if self._history_routes is None:
            return 503, {"error": {"code": "unavailable", "message": "the sink is not connected to ClickHouse yet"}}
        return self._history_routes(path, query)

    def _handle(self, msg: Message) -> None:
        if msg.error():
            if msg.error().code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error", extra={"error": str(msg.error())})
            return
        self.metrics.received.inc()
        table, _cols, to_row, serde = self.targets[msg.topic()]
        try:
            record = serde.decode(msg.value(), topic=msg.topic(), partition=msg.partition(), offset=msg.offset())
            row = to_row(record, msg.partition(), msg.offset())
        except (SerdeError, KeyError, TypeError, ValueError) as exc:
            self.dlq.send(msg, DeadLetterError("SINK", f"cannot write to {table}: {exc}", cause=exc))
            row = None
        self.batcher.add((msg.topic(), msg.partition()), msg.offset(), row, time.monotonic())

    def _flush(self, final: bool = False, only: set[TP] | None = None) -> bool:
        """Write every due batch (all held, if ``final``); False if ClickHouse failed (retried later)."""
        now = time.monotonic()
        if self.backoff.active and not self.backoff.due(now):
            return False
        try:
            for tp in self.batcher.unloaded():
                if only is None or tp in only:
                    self.batcher.load(tp, self.writer.recorded(*tp))
            for batch in self.batcher.ready(now, final, only):
                self._write(batch)
        except Exception as exc:  # noqa: BLE001 - classified: retried after a back-off, or fatal
            self._failed(exc)
            return False
        if self.backoff.active:
            log.info("clickhouse writes work again: resuming", extra={"failures": self.backoff.failures})
            self.backoff.succeeded()
            self.outage = None
            self.consumer.resume(self.consumer.assignment())
        return True

    def _write(self, batch: Batch) -> None:
        table, cols, _to_row, _serde = self.targets[batch.topic]
        t0 = time.perf_counter()
        self.writer.record(batch)
        fault_point("sink.after_record")
        self.writer.insert(table, cols, batch)
        fault_point("sink.after_insert")
        if batch.recut:
            fault_point("sink.after_recut_insert")
        self.m_insert.observe(time.perf_counter() - t0)
        self.producer.flush(30)  # dead letters of this batch are acked before its offsets are committed
        self.consumer.commit(offsets=[TopicPartition(batch.topic, batch.partition, batch.last + 1)],
                             asynchronous=False)
        fault_point("sink.after_commit")
        self.batcher.done(batch, time.monotonic())
        self.m_rows.inc(len(batch.rows))
        self.metrics.sent.inc(len(batch.rows))
        if batch.recut:
            self.m_recut.inc()
            log.info("batch re-cut at its recorded offsets", extra={
                "topic": batch.topic, "partition": batch.partition, "first_offset": batch.first,
                "last_offset": batch.last, "rows": len(batch.rows)})

    def _failed(self, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {scrub(str(exc), self.s.sink.clickhouse_url)}"
        if not retryable(exc):
            self.fatal = f"clickhouse write failed (not retryable): {error}"
            log.error("clickhouse write failed: stopping", extra={"error": error})
            return
        self.m_failures.inc()
        self.outage = error
        delay = self.backoff.failed(time.monotonic())
        self.consumer.pause(self.consumer.assignment())
        log.warning("clickhouse write failed: partitions paused", extra={"error": error, "retry_in_s": delay,
                                                                         "failures": self.backoff.failures})

    def _measure_lag(self) -> None:
        """Every few seconds: messages on the assigned partitions not written yet (held rows count); while
        ClickHouse fails the partitions are paused, and their growing backlog is asked from the broker."""
        if not self.lag.due():  # called every loop: the assignment is read only when a measurement is due
            return
        assigned = {(p.topic, p.partition) for p in self.consumer.assignment()}
        if self.lag.maybe_measure(self.consumer, assigned, self.batcher.oldest_held,
                                  stale=assigned if self.backoff.active else ()) is not None:
            self.metrics.lag.set(self.lag.value)

    def _on_revoke(self, consumer, partitions) -> None:
        tps = {(p.topic, p.partition) for p in partitions}
        if not self.fatal and not self.backoff.active:  # else leave them uncommitted: the cut is recorded
            self._flush(final=True, only=tps)
        self.batcher.drop(tps)

    def _on_lost(self, consumer, partitions) -> None:
        self.batcher.drop((p.topic, p.partition) for p in partitions)
