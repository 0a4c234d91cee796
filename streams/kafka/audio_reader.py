"""A throw-away reader of the audio topic for ``emowatch rescore``: assigned partitions, no consumer group.

Partitions are assigned (never subscribed), so the reader joins no group and disturbs no production
group; offsets are never committed. It reads from a start offset per partition to the end offsets
captured when it starts (records produced later are left for another run), decoding AudioChunks.

Start offsets: the earliest offset of each partition; the caller skips chunks before its window
by event time (always correct; the local broker answers ListOffsets by timestamp wrongly, see
docs/ARCHITECTURE.md). ``started_from_earliest`` says so for the summary.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, TopicPartition

from emowatch.streams.kafka.admin import end_offsets
from emowatch.streams.kafka.clients import base_config, serde_for
from emowatch.streams.settings import KafkaSettings
from emowatch.topics.serde import SerdeError


@dataclass
class AudioRecord:
    """One record read: the decoded chunk, or the decode error."""

    partition: int
    offset: int
    chunk: dict | None
    error: str | None = None


class AudioReader:
    """Reads ``topic`` from the start offsets to the end offsets captured at construction."""

    def __init__(self, kafka: KafkaSettings, topic: str, *, timeout_s: float = 15.0) -> None:
        self.topic = topic
        self.serde = serde_for(kafka, "AudioChunk")
        extra = {k: v for k, v in base_config(kafka).items() if k != "bootstrap.servers"}
        self.ends = {p: end for (_t, p), end in end_offsets(kafka.bootstrap_servers, [topic], extra=extra,
                                                             timeout_s=timeout_s).items()}
        self.consumer = Consumer({**base_config(kafka), "group.id": f"emowatch-rescore-{uuid.uuid4().hex[:8]}",
                                  "enable.auto.commit": False, "enable.auto.offset.store": False,
                                  "enable.partition.eof": False, "fetch.wait.max.ms": kafka.fetch_wait_max_ms})
        self.starts = {p: self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)[0]
                       for p in self.ends}
        self.started_from_earliest = True
        self.next = dict(self.starts)
        self.open = {p for p in self.ends if self.starts[p] < self.ends[p]}
        self.consumer.incremental_assign([TopicPartition(topic, p, self.starts[p]) for p in sorted(self.open)])

    @property
    def total(self) -> int:
        """Records between the start and end offsets."""
        return sum(max(0, self.ends[p] - self.starts[p]) for p in self.ends)

    @property
    def consumed(self) -> int:
        return sum(max(0, min(self.next[p], self.ends[p]) - self.starts[p]) for p in self.ends)

    @property
    def done(self) -> bool:
        return not self.open

    def finish(self, partition: int) -> None:
        """Stop reading ``partition`` (its end offset was reached, or the caller's window is past)."""
        if partition in self.open:
            self.open.discard(partition)
            self.next[partition] = max(self.next[partition], self.ends[partition])
            self.consumer.incremental_unassign([TopicPartition(self.topic, partition)])

    def poll(self, timeout: float = 0.2, max_records: int = 500) -> Iterator[AudioRecord]:
        """The next records of the open partitions, in offset order per partition."""
        for msg in self.consumer.consume(num_messages=max_records, timeout=timeout):
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(f"reading {self.topic}: {err}")
                continue
            p, off = msg.partition(), msg.offset()
            if p not in self.open or off >= self.ends[p]:
                self.finish(p)
                continue
            self.next[p] = off + 1
            try:
                yield AudioRecord(p, off, self.serde.decode(msg.value(), topic=self.topic, partition=p, offset=off))
            except SerdeError as exc:
                yield AudioRecord(p, off, None, str(exc))
            if off + 1 >= self.ends[p]:
                self.finish(p)

    def close(self) -> None:
        self.consumer.close()
