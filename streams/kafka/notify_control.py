"""The notifier's control topics on Kafka: publish Silence / Ack records and read them back.

``emowatch silence add|expire`` and ``emowatch alert ack`` publish here (each call waits for the
broker's ack and raises :class:`ControlPublishError` otherwise); ``emowatch silence list`` and the
notifier service read every current record of the silences or acks topic with
:func:`read_current` (a group-less read from the beginning up to the end reported by Fetch
responses, i.e. partition-EOF events: exact on tansu and Apache Kafka, unlike ListOffsets).

The topics are compacted and keyed by silence id / alert_id; the latest record of a key wins.
An expired silence is re-published with ``expired_at`` set, never tombstoned: the topic is the
store and keeps the history (``silence list --expired``).
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from emowatch.streams.kafka.clients import base_config, produce_acked, serde_for, topics_for
from emowatch.streams.settings import KafkaSettings
from emowatch.topics.errors import EmowatchError
from emowatch.topics.serde import SerdeError, decode_key, encode_key

__all__ = ["ControlPublishError", "ControlReadError", "Published", "publish_ack", "publish_silence",
           "read_acks", "read_current", "read_silences"]

_SCHEMAS = {"silences": ("Silence", "id"), "acks": ("Ack", "alert_id")}


class ControlPublishError(EmowatchError, RuntimeError):
    """The broker did not acknowledge a silence or ack record."""


class ControlReadError(EmowatchError, RuntimeError):
    """A control topic could not be read to its end (missing topic, broker gone, timeout)."""


@dataclass(frozen=True)
class Published:
    topic: str
    partition: int
    offset: int
    key: str


def publish_silence(kafka: KafkaSettings, record: Mapping[str, Any], *, timeout_s: float = 15.0) -> Published:
    """Write a Silence record (new or expired) keyed by its id; wait for the broker's ack."""
    return _publish(kafka, "silences", record, timeout_s)


def publish_ack(kafka: KafkaSettings, record: Mapping[str, Any], *, timeout_s: float = 15.0) -> Published:
    """Write an Ack record keyed by its alert_id; wait for the broker's ack."""
    return _publish(kafka, "acks", record, timeout_s)


def _publish(kafka: KafkaSettings, logical: str, record: Mapping[str, Any], timeout_s: float) -> Published:
    schema, key_field = _SCHEMAS[logical]
    topic = topics_for(kafka).name(logical)
    key = str(record[key_field])
    value = serde_for(kafka, schema).encode(dict(record), topic=topic)
    partition, offset = produce_acked(kafka, topic, encode_key(key), value, what=f"{schema} {key!r}",
                                      timeout_s=timeout_s, error=ControlPublishError)
    return Published(topic, partition, offset, key)


def read_silences(kafka: KafkaSettings, *, timeout_s: float = 15.0) -> dict[str, dict[str, Any]]:
    """Every current Silence record by id (the latest of each key), expired ones included."""
    return read_current(kafka, "silences", timeout_s=timeout_s)


def read_acks(kafka: KafkaSettings, *, timeout_s: float = 15.0) -> dict[str, dict[str, Any]]:
    """Every current Ack record by alert_id (the latest of each key)."""
    return read_current(kafka, "acks", timeout_s=timeout_s)


def read_current(kafka: KafkaSettings, logical: str, *, timeout_s: float = 15.0) -> dict[str, dict[str, Any]]:
    """Read ``silences`` or ``acks`` from the beginning to its end; key -> latest decoded record."""
    schema, _key_field = _SCHEMAS[logical]
    return read_compacted(kafka, topics_for(kafka).name(logical), schema, timeout_s=timeout_s)


def groupless_consumer(kafka: KafkaSettings, **overrides: Any) -> Consumer:
    """A consumer for ``assign()``: librdkafka wants a group id, but no group is joined, nothing committed."""
    return Consumer({**base_config(kafka), "group.id": f"emowatch-ro-{uuid.uuid4().hex[:8]}",
                     "enable.auto.commit": False, "enable.partition.eof": True,
                     "fetch.wait.max.ms": kafka.fetch_wait_max_ms, **overrides})


def partitions_from_start(kafka: KafkaSettings, topics: list[str]) -> list[TopicPartition]:
    """Every partition of ``topics`` at its beginning; :class:`ControlReadError` for a missing topic."""
    md = AdminClient(base_config(kafka)).list_topics(timeout=10)
    out = []
    for topic in topics:
        if topic not in md.topics or md.topics[topic].error is not None:
            raise ControlReadError(f"topic {topic} does not exist (create it: `emowatch topics create`)")
        out += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.topics[topic].partitions]
    return out


def read_compacted(kafka: KafkaSettings, topic: str, schema: str, *,
                   timeout_s: float = 15.0) -> dict[str, dict[str, Any]]:
    """Read a compacted topic from the beginning to its end (partition-EOF events: exact on tansu and
    Apache Kafka); key -> latest decoded record. Records that do not decode are skipped (a newer
    writer's garbage must not hide the rest); a tombstone (null value) removes its key. Raises
    :class:`ControlReadError` when the topic does not exist or its end is not reached in ``timeout_s``."""
    serde = serde_for(kafka, schema)
    parts = partitions_from_start(kafka, [topic])
    consumer = groupless_consumer(kafka)
    out: dict[str, dict[str, Any]] = {}
    try:
        consumer.assign(parts)
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(at_end) < len(parts):
            if time.monotonic() > deadline:
                raise ControlReadError(f"did not reach the end of {topic} within {timeout_s:g}s")
            for msg in consumer.consume(num_messages=1000, timeout=0.2):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        at_end.add(msg.partition())
                        continue
                    raise ControlReadError(f"reading {topic} failed: {err}")
                at_end.discard(msg.partition())
                try:
                    key = decode_key(msg.key(), topic=topic, partition=msg.partition(), offset=msg.offset())
                    if msg.value() is None:
                        out.pop(key, None)
                        continue
                    out[key] = serde.decode(msg.value(), topic=topic, partition=msg.partition(), offset=msg.offset())
                except SerdeError:
                    continue
    finally:
        consumer.close()
    return out
