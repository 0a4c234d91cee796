"""The exact first offset at or after a time, per partition: Kafka's ``--to-datetime`` for a reset.

The broker's answer is asked and checked by :func:`emowatch.streams.kafka.time_offsets.offsets_at` (the
one check of ListOffsets-by-timestamp answers). A reset needs the exact offset, not "start early and
skip", so when that check falls back (the local tansu broker answers the earliest offset for every
time) the partitions are scanned from their earliest offset here, comparing record timestamps: exact
on any broker, slower on a large topic. The answer says which method was used.
"""
from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaError, TopicPartition

from emowatch.streams.kafka.admin import end_offsets
from emowatch.streams.kafka.clients import base_config
from emowatch.streams.kafka.time_offsets import offsets_at
from emowatch.streams.settings import KafkaSettings


def _consumer(kafka: KafkaSettings) -> Consumer:
    # enable.partition.eof: offsets_at recognises an answer at a partition's end at once
    return Consumer({**base_config(kafka), "group.id": f"emowatch-time-scan-{uuid.uuid4().hex[:8]}",
                     "enable.auto.commit": False, "enable.partition.eof": True,
                     "fetch.wait.max.ms": kafka.fetch_wait_max_ms})


def offsets_at_or_after(kafka: KafkaSettings, topic: str, time_ms: int, *,
                        timeout_s: float = 60.0) -> tuple[dict[int, int], dict[int, int], str]:
    """``(first offset with a record timestamp >= time_ms per partition, end offsets, method)``; a partition
    whose records are all earlier gets its end offset. ``method`` is ``list-offsets`` or ``scan``."""
    extra = {k: v for k, v in base_config(kafka).items() if k != "bootstrap.servers"}
    ends = {p: e for (_t, p), e in end_offsets(kafka.bootstrap_servers, [topic], extra=extra).items()}
    consumer = _consumer(kafka)
    try:
        found, fell_back = offsets_at(consumer, topic, sorted(ends), time_ms)
        if not fell_back:
            return found, ends, "list-offsets"
        lows = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[0] for p in ends}
        return _scan(consumer, topic, lows, ends, time_ms, timeout_s), ends, "scan"
    finally:
        consumer.close()


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
