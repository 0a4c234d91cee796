"""ClickHouse sink: scores + alerts topics -> ClickHouse tables.

Batches per partition (size or age); each insert carries
``insert_deduplication_token = topic-partition-firstoffset-lastoffset`` and the
partition's offset is committed only after the insert succeeded, so a retried
or re-delivered identical batch is a no-op (the design of ClickHouse's Kafka
Connect sink). Tables are ReplacingMergeTree on the natural key, so a message
re-produced upstream at a new offset also collapses into one row.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from confluent_kafka import KafkaError, Message, TopicPartition

from emowatch.streams.kafka.clients import make_consumer, make_producer, serde_for, topics_for
from emowatch.streams.kafka.dead_letters import DeadLetters
from emowatch.streams.observability import HealthServer, StageMetrics
from emowatch.streams.settings import Settings
from emowatch.streams.sink.clickhouse import apply_schema, connect
from emowatch.streams.sink.history import HistoryReader
from emowatch.streams.sink.read_api import history_routes
from emowatch.streams.sink.rows import ALERTS_COLUMNS, SCORES_COLUMNS, alerts_row, scores_row
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


@dataclass
class _Batch:
    first: int
    last: int
    started: float
    rows: list = field(default_factory=list)


class ClickHouseSink:
    def __init__(self, settings: Settings, stop: threading.Event | None = None, max_insert_attempts: int = 8) -> None:
        self.s = settings
        self.stop_event = stop or threading.Event()
        self.topics = topics_for(settings.kafka)
        self.targets = {
            self.topics.scores: ("scores", SCORES_COLUMNS, scores_row, serde_for(settings.kafka, "FrameScores")),
            self.topics.alerts: ("alerts", ALERTS_COLUMNS, alerts_row, serde_for(settings.kafka, "Alert")),
        }
        self.client = connect(settings.sink.clickhouse_url, settings.sink.data_dir, settings.sink.database)
        apply_schema(self.client, settings.sink.database)
        self.consumer = make_consumer(settings.kafka, settings.sink.group_id)
        self.producer = make_producer(settings.kafka)
        self.batches: dict[tuple[str, int], _Batch] = {}
        self.max_attempts = max_insert_attempts
        self.fatal: str | None = None
        self.metrics = StageMetrics("sink")
        self.dlq = DeadLetters(settings.kafka, self.topics.dlq, settings.sink.group_id, metrics=self.metrics,
                               producer=self.producer)
        self.m_rows = self.metrics.counter("sink_rows_written", "Rows inserted into ClickHouse")
        self.m_insert = self.metrics.histogram("sink_insert_seconds", "Insert latency", (.005, .01, .05, .1, .5, 1, 5))
        self.http: HealthServer | None = None
        self.history: HistoryReader | None = None

    def health(self) -> dict:
        return {"status": "ok" if not self.fatal else "failing", "error": self.fatal,
                "buffered_rows": sum(len(b.rows) for b in self.batches.values())}

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
                self._flush_due()
                self.producer.poll(0)
        finally:
            try:
                if not self.fatal:
                    self._flush_all()
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
        tp = (msg.topic(), msg.partition())
        table, _cols, to_row, serde = self.targets[msg.topic()]
        batch = self.batches.get(tp)
        if batch is None:
            batch = self.batches[tp] = _Batch(msg.offset(), msg.offset(), time.monotonic())
        batch.last = msg.offset()
        try:
            record = serde.decode(msg.value(), topic=msg.topic(), partition=msg.partition(), offset=msg.offset())
            batch.rows.append(to_row(record, msg.partition(), msg.offset()))
        except (SerdeError, KeyError, TypeError, ValueError) as exc:
            self.dlq.send(msg, DeadLetterError("SINK", f"cannot write to {table}: {exc}", cause=exc))

    def _flush_due(self) -> None:
        now = time.monotonic()
        for tp, b in list(self.batches.items()):
            if len(b.rows) >= self.s.sink.batch_rows or (now - b.started) * 1000 >= self.s.sink.batch_ms:
                self._flush(tp)

    def _flush_all(self, only: set[tuple[str, int]] | None = None) -> None:
        for tp in list(self.batches):
            if only is None or tp in only:
                self._flush(tp)

    def _flush(self, tp: tuple[str, int]) -> None:
        b = self.batches.get(tp)
        if b is None:
            return
        topic, part = tp
        table, cols, _to_row, _serde = self.targets[topic]
        token = f"{topic}-{part}-{b.first}-{b.last}"
        if b.rows:
            for attempt in range(1, self.max_attempts + 1):
                try:
                    t0 = time.perf_counter()
                    self.client.insert(table, b.rows, database=self.s.sink.database, column_names=cols,
                                       settings={"insert_deduplication_token": token})
                    self.m_insert.observe(time.perf_counter() - t0)
                    break
                except Exception as exc:  # noqa: BLE001 - retry the identical batch: the token makes a duplicate a no-op
                    error = scrub(str(exc), self.s.sink.clickhouse_url)
                    log.warning("insert failed", extra={"table": table, "token": token, "attempt": attempt,
                                                        "error": error})
                    if attempt == self.max_attempts:
                        self.fatal = f"insert into {table} failed {attempt} times: {type(exc).__name__}: {error}"
                        raise RuntimeError(self.fatal) from None  # not `raise`: the traceback would print str(exc)
                    time.sleep(min(5.0, 0.2 * 2 ** attempt))
        self.producer.flush(30)  # dead letters of this batch are acked before its offsets are committed
        self.consumer.commit(offsets=[TopicPartition(topic, part, b.last + 1)], asynchronous=False)
        self.m_rows.inc(len(b.rows))
        self.metrics.sent.inc(len(b.rows))
        del self.batches[tp]

    def _on_revoke(self, consumer, partitions) -> None:
        if self.fatal:  # stopping after a failed insert (close() revokes): leave the batches uncommitted
            return
        self._flush_all({(p.topic, p.partition) for p in partitions})

    def _on_lost(self, consumer, partitions) -> None:
        for p in partitions:
            self.batches.pop((p.topic, p.partition), None)
