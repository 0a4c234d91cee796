"""The notifier service's Kafka reads besides its alerts consumer group: the notification log read
whole at start (:func:`read_log`) and the silences + acks topics followed from the beginning by one
group-less consumer kept open (:class:`ControlFollower`). Both read to the end reported by
partition-EOF events (exact on tansu and Apache Kafka), like ``notify_control.read_current``.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from emowatch.streams.kafka.clients import serde_for, topics_for
from emowatch.streams.kafka.notify_control import (
    ControlReadError,
    groupless_consumer,
    partitions_from_start,
    read_compacted,
)
from emowatch.streams.notify.model import NotificationLogEntry
from emowatch.streams.settings import KafkaSettings
from emowatch.topics.serde import SerdeError, decode_key

__all__ = ["ControlFollower", "read_log", "rewind_to_committed"]

log = logging.getLogger("emowatch.notify")


def read_log(kafka: KafkaSettings, *, timeout_s: float = 60.0) -> list[NotificationLogEntry]:
    """Every current entry of the notification log (the latest per key); undecodable records skipped."""
    out = []
    for record in read_compacted(kafka, topics_for(kafka).notifications, "NotificationLog",
                                 timeout_s=timeout_s).values():
        try:
            out.append(NotificationLogEntry.from_record(record))
        except (KeyError, TypeError, ValueError):
            continue
    return out


class ControlFollower:
    """Follows the silences and acks topics from their beginning; :meth:`poll` returns
    ``(logical, key, record or None, message)`` for each new record (None: a tombstone). A record whose key
    or value does not decode is not returned: ``on_rejected(message, SerdeError)`` gets it, for the service
    to dead-letter (a newer writer's record is never read as a removal)."""

    def __init__(self, kafka: KafkaSettings, *,
                 on_rejected: Callable[[Message, SerdeError], None] = lambda _msg, _err: None) -> None:
        t = topics_for(kafka)
        self._logical = {t.silences: "silences", t.acks: "acks"}
        self._serde = {t.silences: serde_for(kafka, "Silence"), t.acks: serde_for(kafka, "Ack")}
        self._parts = partitions_from_start(kafka, list(self._logical))
        self._at_end: set[tuple[str, int]] = set()
        self.consumer = groupless_consumer(kafka)
        self.consumer.assign(self._parts)
        self.on_rejected = on_rejected

    @property
    def caught_up(self) -> bool:
        """Whether every partition reached its end once (the state at start is complete)."""
        return len(self._at_end) >= len(self._parts)

    def poll(self, timeout_s: float = 0.0) -> list[tuple[str, str, dict[str, Any] | None, Message]]:
        out: list[tuple[str, str, dict[str, Any] | None, Message]] = []
        for msg in self.consumer.consume(num_messages=500, timeout=timeout_s):
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    self._at_end.add((msg.topic(), msg.partition()))
                continue
            topic = msg.topic()
            try:
                key = decode_key(msg.key(), topic=topic, partition=msg.partition(), offset=msg.offset())
                record = None
                if msg.value() is not None:
                    record = self._serde[topic].decode(msg.value(), topic=topic, partition=msg.partition(),
                                                       offset=msg.offset())
            except SerdeError as exc:
                self.on_rejected(msg, exc)
                continue
            out.append((self._logical[topic], key, record, msg))
        return out

    def read_to_end(self, timeout_s: float = 30.0) -> list[tuple[str, str, dict[str, Any] | None, Message]]:
        out = []
        deadline = time.monotonic() + timeout_s
        while not self.caught_up:
            if time.monotonic() > deadline:
                raise ControlReadError(f"did not reach the end of the silences/acks topics within {timeout_s:g}s")
            out += self.poll(0.2)
        return out

    def close(self) -> None:
        self.consumer.close()


def rewind_to_committed(consumer: Consumer, timeout_s: float = 10.0) -> int:
    """Seek each partition assigned to ``consumer`` to its committed offset (the beginning when none
    is committed: ``auto.offset.reset=earliest``, as at a restart), so records read but not committed
    are read again (the notifier's config reload). Returns how many partitions were rewound."""
    assigned = consumer.assignment()
    if not assigned:
        return 0
    n = 0
    for tp in consumer.committed(assigned, timeout=timeout_s):
        offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
        try:
            consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
            n += 1
        except KafkaException as exc:  # not fetching yet: it starts from the committed offset anyway
            log.debug("seek skipped", extra={"topic": tp.topic, "partition": tp.partition, "error": str(exc)})
    return n
