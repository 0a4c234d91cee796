"""The one dead-letter path: a :class:`~emowatch.topics.errors.DeadLetterError` for a message
becomes a DeadLetter record on the DLQ topic, with the original key, value and headers.

Every service uses :class:`DeadLetters`: the inference agent and the sink produce with their
confluent-kafka producer (:meth:`DeadLetters.send`); the rules worker encodes here
(:meth:`DeadLetters.encode`) and sends with its Faust producer, so its dead letters are
flushed with the batch they belong to. Either way the record is built by
``emowatch.topics.dlq.dead_letter_for``, logged with the call id, and counted in the
component's ``errors{stage}`` and ``dlq`` metrics.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Message, Producer

from emowatch.streams.kafka.clients import serde_for
from emowatch.streams.observability import StageMetrics
from emowatch.streams.settings import KafkaSettings
from emowatch.topics.dlq import Source, dead_letter_for
from emowatch.topics.errors import DeadLetterError

log = logging.getLogger(__name__)


def source_of(msg: Message) -> Source:
    """The :class:`Source` of a confluent-kafka message."""
    return Source(topic=msg.topic(), partition=msg.partition(), offset=msg.offset(), key=msg.key(),
                  value=msg.value(), headers=msg.headers())


class DeadLetters:
    """Writes dead letters of one service (``service`` is recorded in each record)."""

    def __init__(self, kafka: KafkaSettings, topic: str, service: str, *, metrics: StageMetrics | None = None,
                 producer: Producer | None = None) -> None:
        self.topic = topic
        self.service = service
        self.metrics = metrics
        self.producer = producer
        self.serde = serde_for(kafka, "DeadLetter")
        self.count = 0

    def encode(self, source: Source, error: DeadLetterError, *,
               call_id: str | None = None) -> tuple[bytes | None, bytes]:
        """``(key, value)`` of the dead letter for ``source``; logs and counts it."""
        record = dead_letter_for(source, error, call_id=call_id, service=self.service, now_ms=int(time.time() * 1000))
        self.count += 1
        if self.metrics is not None:
            self.metrics.errors.labels(error.stage.lower()).inc()
            self.metrics.dlq.inc()
        where = f"{source.topic}[{source.partition}]@{source.offset}"
        log.warning("dead-lettered message",
                    extra={"stage": error.stage, "reason": record["reason"], "call_id": call_id, "source": where})
        return source.key, self.serde.encode(record, topic=self.topic)

    def send(self, msg: Message, error: DeadLetterError, *, call_id: str | None = None,
             on_delivered: Callable[[Any, Any], None] | None = None) -> None:
        """Produce the dead letter of a confluent-kafka message; ``on_delivered(err, msg)`` runs
        when the broker acknowledges it. A full local queue is served (poll) and retried."""
        assert self.producer is not None, "DeadLetters.send needs the service's producer"
        key, value = self.encode(source_of(msg), error, call_id=call_id)
        while True:
            try:
                self.producer.produce(self.topic, key=key, value=value, on_delivery=on_delivered)
                return
            except BufferError:  # local producer queue full: serve delivery reports, then retry
                self.producer.poll(0.1)
