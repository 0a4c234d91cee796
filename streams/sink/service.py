"""ClickHouse sink: scores + alerts topics -> ClickHouse tables.

Batches per partition (:mod:`emowatch.streams.sink.batches`: reproducible cuts, the cut recorded in
ClickHouse before the insert); each insert carries ``insert_deduplication_token =
topic-partition-firstoffset-lastoffset`` and the partition's offset is committed only after the insert
succeeded, so a batch re-read after a crash is cut at the same offsets and its repeat is dropped (the
design of ClickHouse's Kafka Connect sink, whose state lives in KeeperMap). Tables are ReplacingMergeTree
on the natural key, so a message re-produced upstream at a new offset also collapses into one row.

A ClickHouse outage (:mod:`emowatch.streams.sink.outage`) pauses every assigned partition, keeps polling
(the group membership survives), retries the same pinned batch with a bounded exponential back-off and
resumes when it lands; only non-retryable errors (schema mismatch, rejected login) stop the sink.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from urllib.parse import urlsplit

from confluent_kafka import KafkaError, Message, TopicPartition

from emowatch.streams.kafka.clients import make_consumer, make_producer, serde_for, topics_for
from emowatch.streams.kafka.dead_letters import DeadLetters
from emowatch.streams.observability import HealthServer, StageMetrics
from emowatch.streams.settings import Settings
from emowatch.streams.sink.batches import TP, Batch, Batcher
from emowatch.streams.sink.clickhouse import apply_schema, cluster_of, connect
from emowatch.streams.sink.history import HistoryReader
from emowatch.streams.sink.outage import Backoff, retryable
from emowatch.streams.sink.read_api import history_routes
from emowatch.streams.sink.rows import ALERTS_COLUMNS, SCORES_COLUMNS, alerts_row, scores_row
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
        self.stop_event = stop or threading.Event()
        self.topics = topics_for(settings.kafka)
        self.targets = {
            self.topics.scores: ("scores", SCORES_COLUMNS, scores_row, serde_for(settings.kafka, "FrameScores")),
            self.topics.alerts: ("alerts", ALERTS_COLUMNS, alerts_row, serde_for(settings.kafka, "Alert")),
        }
        cluster = cluster_of(settings.sink)  # EMOWATCH_SINK__CLUSTER: the schema on a ClickHouse cluster
        self.client = connect(settings.sink.clickhouse_url, settings.sink.data_dir, settings.sink.database, cluster)
        apply_schema(self.client, settings.sink.database, cluster)
        self.writer = SinkWriter(self.client, settings.sink.database, settings.sink.group_id,
                                 sync_replica=cluster is not None)
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
        self.http: HealthServer | None = None
        self.history: HistoryReader | None = None

    def health(self) -> dict:
        status = "failing" if self.fatal else "waiting" if self.outage else "ok"
        return {"status": status, "error": self.fatal or self.outage, "paused": self.backoff.active,
                "buffered_rows": self.batcher.buffered()}

    def run(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: self.stop_event.set())
            signal.signal(signal.SIGINT, lambda *_: self.stop_event.set())
        ss = self.s.sink
        # History reads get a client of their own (docs/gateway.md "Reading history while the sink writes").
        self.history = HistoryReader(connect(ss.clickhouse_url, ss.data_dir, ss.database), ss.database)
        self.http = HealthServer(ss.http_port, self.metrics.registry, self.health, host=ss.http_bind,
                                 routes=history_routes(self.history)).start()
        url = ss.clickhouse_url
        log.info("sink started", extra={"topics": list(self.targets), "clickhouse": redact_url(url) if url else "chdb",
                                        "http_port": self.http.port})
        self.consumer.subscribe(list(self.targets), on_revoke=self._on_revoke, on_lost=self._on_lost)
        try:
            while not self.stop_event.is_set() and not self.fatal:
                for msg in self.consumer.consume(num_messages=1000, timeout=0.1):
                    self._handle(msg)
                if self.backoff.active:  # partitions assigned during the outage are paused too
                    self.consumer.pause(self.consumer.assignment())
                self._flush()
                self.producer.poll(0)
        finally:
            try:
                if not self.fatal and not self.backoff.active:
                    self._flush(final=True)
            finally:
                self.consumer.close()
                if self.http:
                    self.http.stop()
                if self.history:
                    self.history.client.close()
                self.client.close()
        if self.fatal:
            raise RuntimeError(self.fatal)

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
        self.writer.insert(table, cols, batch)
        self.m_insert.observe(time.perf_counter() - t0)
        self.producer.flush(30)  # dead letters of this batch are acked before its offsets are committed
        self.consumer.commit(offsets=[TopicPartition(batch.topic, batch.partition, batch.last + 1)],
                             asynchronous=False)
        self.batcher.done(batch, time.monotonic())
        self.m_rows.inc(len(batch.rows))
        self.metrics.sent.inc(len(batch.rows))

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

    def _on_revoke(self, consumer, partitions) -> None:
        tps = {(p.topic, p.partition) for p in partitions}
        if not self.fatal and not self.backoff.active:  # else leave them uncommitted: the cut is recorded
            self._flush(final=True, only=tps)
        self.batcher.drop(tps)

    def _on_lost(self, consumer, partitions) -> None:
        self.batcher.drop((p.topic, p.partition) for p in partitions)
