"""Read a window of a topic for a replay: group-less, from the first offset at or after ``--from``.

A throw-away consumer (``assign()``, a random group id that never joins or commits, auto-commit off):
a replay never appears in, or moves, any consumer group. Each partition starts at
:func:`~emowatch.streams.kafka.time_offsets.offsets_at` (``from``), checked against the broker's
answer; where the broker answers wrongly (the local tansu broker does) it starts at the earliest offset
and messages are skipped by time - ``fallback`` says so. It stops at the end offsets captured at the
start (messages produced later are not read) or, per partition, at the first message whose timestamp is
``late_ms`` past ``--to``. Messages come in batches (``consume(num_messages=...)``) and are decoded with
the compiled reader (``float_arrays="numpy"``); with ``calls`` only those calls' partitions are read and
other keys are dropped before decoding.

Message timestamps are the producer's (CreateTime), at or after the event time of what they carry (a
score is produced after its audio was captured): a message older than ``from`` (less ``SKEW_MS`` for
clock differences) is skipped without decoding. The event-time window itself is applied by the caller.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from confluent_kafka import KafkaError, TopicPartition

from emowatch.streams.kafka.admin import end_offsets
from emowatch.streams.kafka.clients import base_config, serde_for
from emowatch.streams.kafka.notify_control import groupless_consumer
from emowatch.streams.kafka.time_offsets import offsets_at, partitions_of
from emowatch.streams.settings import KafkaSettings
from emowatch.topics.errors import EmowatchError
from emowatch.topics.registry import partition_of
from emowatch.topics.serde import SerdeError, encode_key

__all__ = ["KafkaWindowReader", "ReplaySourceError"]

log = logging.getLogger("emowatch.replay")

BATCH = 2_000
LATE_MS = 300_000
"""A partition is done at the first message produced this long after ``--to``."""
SKEW_MS = 60_000
"""Messages older than ``--from`` by more than this are skipped before decoding."""


class ReplaySourceError(EmowatchError, RuntimeError):
    """The topic is missing or cannot be read."""


class KafkaWindowReader:
    """Iterate decoded records of ``topic`` (``schema``) in per-partition offset order, in batches."""

    def __init__(self, kafka: KafkaSettings, topic: str, schema: str, *, from_ms: int, to_ms: int | None = None,
                 calls: frozenset[str] = frozenset(), batch: int = BATCH, late_ms: int = LATE_MS,
                 float_arrays: str = "numpy") -> None:
        self.topic, self.from_ms, self.to_ms = topic, from_ms, to_ms
        self.batch, self.late_ms = batch, late_ms
        self.serde = serde_for(kafka, schema, float_arrays=float_arrays)
        self.consumer = groupless_consumer(kafka, **{"queued.min.messages": 20_000})
        self.keys = {encode_key(c) for c in calls}
        self.read = self.undecodable = self.skipped_early = 0
        try:
            parts = partitions_of(self.consumer, topic)
            if not parts:
                raise ReplaySourceError(f"topic {topic} does not exist")
            if calls:
                parts = sorted({partition_of(k, len(parts)) for k in self.keys} & set(parts))
            extra = {k: v for k, v in base_config(kafka).items() if k != "bootstrap.servers"}
            ends = end_offsets(kafka.bootstrap_servers, [topic], extra=extra)
            self.ends = {p: ends[(topic, p)] for p in parts}
            self.starts, self.fallback = offsets_at(self.consumer, topic, parts, from_ms)
        except BaseException:
            self.consumer.close()
            raise
        if self.fallback:
            log.warning("scanning %s from its earliest offsets (the broker's offsets for --from are wrong)", topic,
                        extra={"topic": topic})
        self.total = sum(max(0, self.ends[p] - self.starts[p]) for p in parts)

    def batches(self) -> Iterator[list[dict[str, Any]]]:
        """Lists of decoded records until every partition is done; the consumer is closed at the end."""
        c, topic, keys = self.consumer, self.topic, self.keys
        pending = {p for p in self.ends if self.starts[p] < self.ends[p]}
        left = {p: self.ends[p] - self.starts[p] for p in pending}  # asking for no more than is left: consume()
        # returns as soon as that many arrived instead of waiting out its timeout for a full batch
        early = self.from_ms - SKEW_MS
        late = None if self.to_ms is None else self.to_ms + self.late_ms
        decode = self.serde.decode
        try:
            if pending:
                c.assign([TopicPartition(topic, p, self.starts[p]) for p in sorted(pending)])
            while pending:
                out: list[dict[str, Any]] = []
                want = max(1, min(self.batch, sum(left[p] for p in pending)))
                for msg in c.consume(num_messages=want, timeout=0.5):
                    p = msg.partition()
                    if p not in pending:
                        continue
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            if msg.offset() >= self.ends[p]:
                                pending.discard(p)
                            continue
                        raise ReplaySourceError(f"reading {topic}[{p}] failed: {err}")
                    offset = msg.offset()
                    left[p] = self.ends[p] - offset - 1
                    if offset >= self.ends[p]:
                        self._done(p, pending)
                        continue
                    if offset + 1 >= self.ends[p]:
                        pending.discard(p)
                    self.read += 1
                    ts = msg.timestamp()[1]
                    if ts >= 0 and ts < early:
                        self.skipped_early += 1
                        continue
                    if late is not None and ts >= late:
                        self._done(p, pending)
                        continue
                    if keys and msg.key() not in keys:
                        continue
                    try:
                        out.append(decode(msg.value(), topic=topic, partition=p, offset=offset))
                    except SerdeError:
                        self.undecodable += 1  # production dead-letters it
                if out:
                    yield out
        finally:
            self.close()

    def _done(self, p: int, pending: set[int]) -> None:
        pending.discard(p)
        self.consumer.pause([TopicPartition(self.topic, p)])

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None  # type: ignore[assignment]

    def stats(self) -> dict[str, Any]:
        return {"read": self.read, "undecodable": self.undecodable, "skipped_before_from": self.skipped_early,
                "offsets_fallback": self.fallback, "start_offsets": dict(sorted(self.starts.items())),
                "end_offsets": dict(sorted(self.ends.items()))}


def topic_holds(kafka: KafkaSettings, topic: str, from_ms: int) -> bool:
    """Whether ``topic`` still holds everything from ``from_ms``: on every partition nothing was deleted yet
    (earliest offset 0) or the earliest message is at or before ``from_ms``. False for a missing topic."""
    consumer = groupless_consumer(kafka)
    try:
        parts = partitions_of(consumer, topic)
        if not parts:
            return False
        lows = {}
        for p in parts:
            low, _high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            lows[p] = low
        cut = {p: low for p, low in lows.items() if low > 0}
        if not cut:
            return True
        consumer.assign([TopicPartition(topic, p, low) for p, low in cut.items()])
        first: dict[int, int] = {}
        deadline = time.monotonic() + 10
        while len(first) < len(cut) and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=100, timeout=0.2):
                if msg.error() is None and msg.partition() not in first:
                    first[msg.partition()] = msg.timestamp()[1]
        return len(first) == len(cut) and all(0 <= ts <= from_ms for ts in first.values())
    finally:
        consumer.close()
