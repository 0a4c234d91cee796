"""The first offset at or after a time, per partition: Kafka's ``--to-datetime`` for a reset.

``offsets_for_times`` (ListOffsets by timestamp) answers from the broker's time index; each answer is
checked against the records around it (the record at the offset is at or after the time, the one
before it is earlier). The local tansu broker answers some requests wrongly (measured: offset 0 for a
time after every record of a partition, where the answer is its end), so when a check fails the
partitions are scanned from the earliest offset instead, comparing record timestamps - exact on any
broker, slower on a large topic. The answer says which method was used.
"""
from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaError, TopicPartition

from emowatch.streams.kafka.admin import end_offsets
from emowatch.streams.kafka.clients import base_config
from emowatch.streams.settings import KafkaSettings


def _consumer(kafka: KafkaSettings) -> Consumer:
    return Consumer({**base_config(kafka), "group.id": f"emowatch-time-scan-{uuid.uuid4().hex[:8]}",
                     "enable.auto.commit": False, "enable.partition.eof": False,
                     "fetch.wait.max.ms": kafka.fetch_wait_max_ms})


def offsets_at_or_after(kafka: KafkaSettings, topic: str, time_ms: int, *,
                        timeout_s: float = 60.0) -> tuple[dict[int, int], dict[int, int], str]:
    """``(first offset with a record timestamp >= time_ms per partition, end offsets, method)``; a partition
    whose records are all earlier gets its end offset. ``method`` is ``list-offsets`` or ``scan``."""
    extra = {k: v for k, v in base_config(kafka).items() if k != "bootstrap.servers"}
    ends = {p: e for (_t, p), e in end_offsets(kafka.bootstrap_servers, [topic], extra=extra).items()}
    consumer = _consumer(kafka)
    try:
        lows = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[0] for p in ends}
        answer = consumer.offsets_for_times([TopicPartition(topic, p, time_ms) for p in ends], timeout=10)
        found = {tp.partition: (tp.offset if tp.offset >= 0 else ends[tp.partition]) for tp in answer}
        if all(_checks(consumer, topic, p, found.get(p, -1), lows[p], ends[p], time_ms, timeout_s) for p in ends):
            return found, ends, "list-offsets"
        return _scan(consumer, topic, lows, ends, time_ms, timeout_s), ends, "scan"
    finally:
        consumer.close()


def _checks(consumer: Consumer, topic: str, p: int, offset: int, low: int, end: int, time_ms: int,
            timeout_s: float) -> bool:
    if not low <= offset <= end:
        return False
    if offset < end and _timestamp_at(consumer, topic, p, offset, timeout_s) < time_ms:
        return False
    return offset == low or _timestamp_at(consumer, topic, p, offset - 1, timeout_s) < time_ms


def _timestamp_at(consumer: Consumer, topic: str, p: int, offset: int, timeout_s: float) -> int:
    consumer.assign([TopicPartition(topic, p, offset)])
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=1, timeout=0.2):
            if msg.error() is None and msg.partition() == p and msg.offset() >= offset:
                return msg.timestamp()[1]
    raise TimeoutError(f"no record at {topic}[{p}]@{offset} within {timeout_s}s")


def _scan(consumer: Consumer, topic: str, lows: dict[int, int], ends: dict[int, int], time_ms: int,
          timeout_s: float) -> dict[int, int]:
    found = {p: ends[p] for p in ends if lows[p] >= ends[p]}
    consumer.assign([TopicPartition(topic, p, lows[p]) for p in ends if p not in found])
    deadline = time.monotonic() + timeout_s
    while len(found) < len(ends):
        if time.monotonic() > deadline:
            raise TimeoutError(f"scanning {topic} for {time_ms} did not finish within {timeout_s}s")
        for msg in consumer.consume(num_messages=1000, timeout=0.2):
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(f"scanning {topic}: {err}")
                continue
            p, off = msg.partition(), msg.offset()
            if p in found:
                continue
            if msg.timestamp()[1] >= time_ms:
                found[p] = off
            elif off + 1 >= ends[p]:
                found[p] = ends[p]
            if p in found:
                consumer.pause([TopicPartition(topic, p)])
    return found
