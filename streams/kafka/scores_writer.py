"""Writes FrameScores records to a separate scores topic (``emowatch rescore``), with broker acknowledgements."""
from __future__ import annotations

from collections.abc import Callable

from emowatch.streams.kafka.clients import make_producer, serde_for
from emowatch.streams.rescore.errors import RescoreError
from emowatch.streams.settings import KafkaSettings
from emowatch.topics.serde import encode_key


class ScoresWriter:
    """Idempotent producer of FrameScores keyed by call_id (murmur2: same partition index as the audio).

    ``on_delivered(record, partition, offset)`` is called (from :meth:`flush` / :meth:`send`) for every
    acknowledged record; failed deliveries are collected and raised by :meth:`flush`."""

    def __init__(self, kafka: KafkaSettings, topic: str,
                 on_delivered: Callable[[dict, int, int], None] | None = None) -> None:
        self.topic = topic
        self.serde = serde_for(kafka, "FrameScores")
        self.producer = make_producer(kafka)
        self.on_delivered = on_delivered
        self.errors: list[str] = []
        self.sent = self.acked = 0

    def send(self, record: dict) -> None:
        value = self.serde.encode(record, topic=self.topic)

        def delivered(err, msg) -> None:
            if err is not None:
                self.errors.append(f"{record['call_id']}/{record['role']}/{record['seq']}: {err}")
                return
            self.acked += 1
            if self.on_delivered is not None:
                self.on_delivered(record, msg.partition(), msg.offset() if msg.offset() is not None else -1)

        while True:
            try:
                self.producer.produce(self.topic, key=encode_key(record["call_id"]), value=value,
                                      on_delivery=delivered)
                break
            except BufferError:  # local queue full: serve delivery reports, then retry
                self.producer.poll(0.1)
        self.sent += 1
        self.producer.poll(0)

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until every record sent is acknowledged; RescoreError when one was not."""
        left = self.producer.flush(timeout_s)
        if self.errors or left:
            raise RescoreError(f"{len(self.errors) + left} of {self.sent} score records not acknowledged on "
                               f"{self.topic}: {self.errors[:3] or f'{left} still queued after {timeout_s:g}s'}")
