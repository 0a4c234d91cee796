"""Kafka admin adapter: readiness, idempotent topic creation (registry and extra topics), topic checks, lag."""
from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from emowatch.topics.registry import Topics, TopicSpec, check_topics, topic_config


def _admin(bootstrap: str, extra: dict | None = None) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, **(extra or {})})


def wait_for_metadata(bootstrap: str, *, timeout_s: float = 10.0, extra: dict | None = None) -> None:
    """Poll cluster metadata until a broker answers or the deadline passes."""
    admin = _admin(bootstrap, extra)
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            md = admin.list_topics(timeout=min(2.0, max(0.1, deadline - time.monotonic())))
            if md.brokers:
                return
        except KafkaException as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"no metadata from {bootstrap} within {timeout_s}s: {last}")


def topic_partitions(bootstrap: str, extra: dict | None = None) -> dict[str, int]:
    """Partition count of every topic on the cluster."""
    md = _admin(bootstrap, extra).list_topics(timeout=10)
    return {name: len(t.partitions) for name, t in md.topics.items() if not t.error}


@dataclass
class CreateReport:
    created: list[str]
    existing: list[str]
    problems: list[str]


def ensure_topics(bootstrap: str, topics: Topics, *, extra: dict | None = None,
                  timeout_s: float = 30.0) -> CreateReport:
    """Create the registry's missing topics (idempotent) and report mismatches."""
    admin = _admin(bootstrap, extra)
    present = topic_partitions(bootstrap, extra)
    new = [NewTopic(name, spec_partitions, topics.replication, config=topic_config(spec))
           for name, spec, spec_partitions in _wanted(topics) if name not in present]
    created, existing = [], [n for n, _, _ in _wanted(topics) if n in present]
    if new:
        for name, fut in admin.create_topics(new, request_timeout=timeout_s).items():
            try:
                fut.result(timeout=timeout_s)
                created.append(name)
            except KafkaException as exc:
                if exc.args and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    existing.append(name)
                else:
                    raise
    deadline = time.monotonic() + timeout_s
    while True:  # metadata propagates asynchronously; wait until every topic is visible
        present = topic_partitions(bootstrap, extra)
        if all(n in present for n, _, _ in _wanted(topics)) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return CreateReport(created, existing, check_topics(topics, present))


def _wanted(topics: Topics):
    for name, spec in topics.specs():
        yield name, spec, topics.partitions_for(spec)


def end_offsets(bootstrap: str, topic_names: list[str], *, extra: dict | None = None,
                timeout_s: float = 15.0) -> dict[tuple[str, int], int]:
    """True end offset (high watermark) of every partition of ``topic_names``.

    Read from Fetch responses (partition-EOF events), not ListOffsets: the local
    tansu broker answers ListOffsets(latest) with the base offset of the last
    record batch + 1, which undercounts when the last batch holds several records
    (documented gap). Fetch-reported high watermarks are exact on tansu and on
    Apache Kafka alike, so this one code path serves both.
    """
    md = _admin(bootstrap, extra).list_topics(timeout=10)
    parts = [TopicPartition(t, p) for t in topic_names if t in md.topics for p in md.topics[t].partitions]
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "emowatch-end-offsets",
                         "enable.auto.commit": False,
                         "enable.partition.eof": True, "fetch.wait.max.ms": 50, **(extra or {})})
    try:
        starts = []
        for tp in parts:  # start inside the last batch: a Fetch from there reports the exact high watermark
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            starts.append(TopicPartition(tp.topic, tp.partition, max(low, high - 1)))
        consumer.assign(starts)
        ends: dict[tuple[str, int], int] = {}
        deadline = time.monotonic() + timeout_s
        while len(ends) < len(parts):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no end-of-partition from the broker within {timeout_s}s for "
                                   f"{sorted(set((tp.topic, tp.partition) for tp in parts) - set(ends))}")
            for msg in consumer.consume(num_messages=1000, timeout=0.2):
                err = msg.error()
                if err is not None and err.code() == KafkaError._PARTITION_EOF:
                    ends[(msg.topic(), msg.partition())] = msg.offset()
        return ends
    finally:
        consumer.close()


def group_lag(bootstrap: str, group_id: str, topic_names: list[str], *, extra: dict | None = None) -> dict[str, int]:
    """Messages not yet committed by ``group_id``, per topic (true end offset - committed offset)."""
    ends = end_offsets(bootstrap, topic_names, extra=extra)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group_id, "enable.auto.commit": False,
                         **(extra or {})})
    try:
        committed = consumer.committed([TopicPartition(t, p) for (t, p) in ends], timeout=10)
        lag: dict[str, int] = {t: 0 for t in topic_names}
        for tp in committed:
            done = tp.offset if tp.offset >= 0 else 0
            lag[tp.topic] += max(0, ends[(tp.topic, tp.partition)] - done)
        return lag
    finally:
        consumer.close()


def ensure_topic(bootstrap: str, spec: TopicSpec, partitions: int, replication: int, *, extra: dict | None = None,
                 timeout_s: float = 30.0) -> tuple[bool, int]:
    """Create one topic from ``spec`` (name = ``spec.base_name``: an extra topic such as a rescore's scores
    topic, see ``topics.registry.extra_topic_spec``) unless it exists; ``(created, partition count)``."""
    name = spec.base_name
    present = topic_partitions(bootstrap, extra)
    if name in present:
        return False, present[name]
    created = True
    admin = _admin(bootstrap, extra)  # kept alive until the future resolves
    fut = admin.create_topics([NewTopic(name, partitions, replication, config=topic_config(spec))],
                              request_timeout=timeout_s)[name]
    try:
        fut.result(timeout=timeout_s)
    except KafkaException as exc:
        if not (exc.args and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS):
            raise
        created = False
    deadline = time.monotonic() + timeout_s
    while name not in (present := topic_partitions(bootstrap, extra)):  # metadata propagates asynchronously
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {name} not visible within {timeout_s}s after creating it")
        time.sleep(0.1)
    return created, present[name]
