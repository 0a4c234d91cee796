"""Read topics from the beginning without a consumer group (demo output, tests, replay tools)."""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from emowatch.streams.kafka.clients import base_config, serde_for
from emowatch.streams.settings import KafkaSettings
from emowatch.topics.serde import SerdeError


class TopicTail:
    """Assigns every partition of the given topics at the beginning and decodes records.

    ``schemas`` maps topic name -> Avro schema name. Undecodable messages are
    returned as ``(topic, None, raw_bytes)`` so callers can count them.
    """

    def __init__(self, kafka: KafkaSettings, schemas: dict[str, str]) -> None:
        self.serdes = {t: serde_for(kafka, s) for t, s in schemas.items()}
        conf = {**base_config(kafka), "group.id": f"emowatch-tail-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False, "enable.partition.eof": False,
                "fetch.wait.max.ms": kafka.fetch_wait_max_ms}
        self.consumer = Consumer(conf)
        self._bootstrap = kafka.bootstrap_servers
        self._extra = {k: v for k, v in base_config(kafka).items() if k != "bootstrap.servers"}
        self._next: dict[tuple[str, int], int] = {}
        md = AdminClient(base_config(kafka)).list_topics(timeout=10)
        parts = [TopicPartition(t, p, OFFSET_BEGINNING) for t in schemas if t in md.topics
                 for p in md.topics[t].partitions]
        self.consumer.assign(parts)

    def poll(self, timeout: float = 0.2) -> Iterator[tuple[str, dict | None, bytes]]:
        for msg in self.consumer.consume(num_messages=1000, timeout=timeout):
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(str(msg.error()))
                continue
            self._next[(msg.topic(), msg.partition())] = msg.offset() + 1
            try:
                rec = self.serdes[msg.topic()].decode(msg.value(), topic=msg.topic(), partition=msg.partition(),
                                                      offset=msg.offset())
            except SerdeError:
                rec = None
            yield msg.topic(), rec, msg.value()

    def collect(self, until: Callable[[dict[str, list]], bool], timeout_s: float,
                on_record: Callable[[str, dict | None], None] | None = None,
                check: Callable[[], None] | None = None) -> dict[str, list]:
        """Poll until ``until(records_by_topic)`` holds or the deadline passes (then TimeoutError)."""
        out: dict[str, list] = {t: [] for t in self.serdes}
        deadline = time.monotonic() + timeout_s
        while not until(out):
            if time.monotonic() > deadline:
                counts = {t: len(v) for t, v in out.items()}
                raise TimeoutError(f"condition not met within {timeout_s}s; got {counts}")
            if check:
                check()
            for topic, rec, _raw in self.poll():
                out[topic].append(rec)
                if on_record:
                    on_record(topic, rec)
        return out

    def catch_up(self, out: dict[str, list], timeout_s: float,
                 on_record: Callable[[str, dict | None], None] | None = None) -> dict[str, list]:
        """Read until every assigned partition reaches its end offset as of now."""
        from emowatch.streams.kafka.admin import end_offsets

        ends = end_offsets(self._bootstrap, list(self.serdes), extra=self._extra)
        deadline = time.monotonic() + timeout_s
        while True:
            if all(self._next.get(k, 0) >= end for k, end in ends.items()):
                return out
            if time.monotonic() > deadline:
                raise TimeoutError(f"did not reach the end of the topics within {timeout_s}s")
            for topic, rec, _raw in self.poll():
                out[topic].append(rec)
                if on_record:
                    on_record(topic, rec)

    def close(self) -> None:
        self.consumer.close()
