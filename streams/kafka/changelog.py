"""A table's changelog topic as an operator sees it: which keys hold a state, and clearing them by tombstones.

The local tansu broker drops the connection on DeleteRecords (measured), and a compacted changelog
keeps only the last record per key anyway, so a state is cleared the way the table itself deletes an
entry: a tombstone (null value) for every key whose last record holds a value, on the key's partition.
A worker recovering the table replays the changelog and ends with those keys deleted.
"""
from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaError, TopicPartition

from emowatch.streams.kafka.admin import end_offsets
from emowatch.streams.kafka.clients import base_config, make_producer
from emowatch.streams.settings import KafkaSettings


def live_keys(kafka: KafkaSettings, topic: str, *, timeout_s: float = 60.0) -> tuple[dict[int, list[bytes]], int]:
    """``(keys whose last record is not a tombstone, per partition; records read)``, read to the end offsets
    of now. An empty dict when the topic does not exist."""
    extra = {k: v for k, v in base_config(kafka).items() if k != "bootstrap.servers"}
    ends = {p: e for (_t, p), e in end_offsets(kafka.bootstrap_servers, [topic], extra=extra).items()}
    if not ends:
        return {}, 0
    consumer = Consumer({**base_config(kafka), "group.id": f"emowatch-changelog-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "fetch.wait.max.ms": kafka.fetch_wait_max_ms})
    last: dict[int, dict[bytes, bool]] = {p: {} for p in ends}
    records = 0
    try:
        lows = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[0] for p in ends}
        todo = {p for p, e in ends.items() if lows[p] < e}
        consumer.assign([TopicPartition(topic, p, lows[p]) for p in todo])
        deadline = time.monotonic() + timeout_s
        while todo:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} to its end did not finish within {timeout_s}s")
            for msg in consumer.consume(num_messages=1000, timeout=0.2):
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        raise RuntimeError(f"reading {topic}: {err}")
                    continue
                p = msg.partition()
                if msg.offset() >= ends[p]:
                    continue
                records += 1
                last[p][msg.key()] = msg.value() is not None
                if msg.offset() + 1 >= ends[p]:
                    todo.discard(p)
    finally:
        consumer.close()
    return {p: [k for k, live in keys.items() if live] for p, keys in last.items()}, records


def tombstone(kafka: KafkaSettings, topic: str, keys: dict[int, list[bytes]], *, timeout_s: float = 60.0) -> int:
    """Produce a tombstone for every key on its partition and wait for the acknowledgements; the count.

    Each partition's last tombstone is sent again alone, after the others are acknowledged: the local tansu
    broker answers ListOffsets(latest) with the base offset of the last record batch + 1, and a worker's
    table recovery reads the changelog up to that answer, so a last batch of several records would leave
    its later tombstones unread (on Apache Kafka the repeat is one more harmless tombstone)."""
    producer = make_producer(kafka)
    errors: list[str] = []

    def delivered(err, _msg) -> None:
        if err is not None:
            errors.append(str(err))

    n = 0
    for p, ks in sorted(keys.items()):
        for k in ks:
            producer.produce(topic, key=k, value=None, partition=p, on_delivery=delivered)
            producer.poll(0)
            n += 1
    left = producer.flush(timeout_s)
    if not (errors or left):
        for p, ks in sorted(keys.items()):
            if ks:  # a batch of one record per partition: the broker's end offset is then exact
                producer.produce(topic, key=ks[-1], value=None, partition=p, on_delivery=delivered)
        left = producer.flush(timeout_s)
    if errors or left:
        raise RuntimeError(f"{len(errors) + left} of {n} tombstones on {topic} not acknowledged: "
                           f"{errors[:3] or f'{left} still queued after {timeout_s:g}s'}")
    return n
