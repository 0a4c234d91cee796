"""confluent-kafka client factories and the record serde for the registry's topics."""
from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import Consumer, Producer

from emowatch.streams.settings import KafkaSettings
from emowatch.topics.registry import PRODUCER_PARTITIONER, Topics
from emowatch.topics.serde import AvroSerde

log = logging.getLogger(__name__)


def topics_for(kafka: KafkaSettings) -> Topics:
    return Topics(prefix=kafka.topic_prefix, partitions=kafka.partitions, replication=kafka.replication_factor)


def group_name(kafka: KafkaSettings, group_id: str) -> str:
    """Consumer groups are namespaced by the topic prefix too (isolated tenants / tests)."""
    return f"{kafka.topic_prefix}{group_id}"


def base_config(kafka: KafkaSettings) -> dict[str, Any]:
    return {"bootstrap.servers": kafka.bootstrap_servers, **kafka.security()}


def make_producer(kafka: KafkaSettings, **overrides: Any) -> Producer:
    """Idempotent, acks=all producer: retries never duplicate or reorder within a partition.

    murmur2 partitioning matches the Java client and aiokafka (Faust), so a call_id maps to the
    same partition index whichever client wrote it (co-partitioning)."""
    conf = {**base_config(kafka), "enable.idempotence": True, "acks": "all", "linger.ms": 5,
            "partitioner": PRODUCER_PARTITIONER,
            "compression.type": "lz4", **overrides}
    return Producer(conf)


def make_consumer(kafka: KafkaSettings, group_id: str, **overrides: Any) -> Consumer:
    """Manual-commit consumer: offsets are committed only after outputs are delivered."""
    conf = {**base_config(kafka), "group.id": group_name(kafka, group_id), "enable.auto.commit": False,
            "enable.auto.offset.store": False, "auto.offset.reset": "earliest",
            "session.timeout.ms": kafka.session_timeout_ms, "fetch.wait.max.ms": kafka.fetch_wait_max_ms,
            "heartbeat.interval.ms": max(250, kafka.session_timeout_ms // 4),
            "partition.assignment.strategy": "cooperative-sticky", **overrides}
    return Consumer(conf)


def registry_config(kafka: KafkaSettings) -> dict[str, str] | None:
    """Schema Registry client settings beyond the URL (basic auth; secrets included: never log)."""
    if kafka.schema_registry_user_info is None:
        return None
    return {"basic.auth.user.info": kafka.schema_registry_user_info.get_secret_value()}


def serde_for(kafka: KafkaSettings, schema_name: str, *, float_arrays: str = "list") -> AvroSerde:
    """The value serde of ``schema_name`` for this cluster (registry framing when one is configured).

    ``float_arrays="numpy"`` decodes float arrays (FrameScores logits) straight into numpy."""
    return AvroSerde(schema_name, registry_url=kafka.schema_registry_url, registry_config=registry_config(kafka),
                     float_arrays=float_arrays)


def produce_acked(kafka: KafkaSettings, topic: str, key: bytes, value: bytes, *, what: str, timeout_s: float,
                  error: type[Exception]) -> tuple[int, int]:
    """Produce one record and wait for the broker's acknowledgement (operator commands: rules publish,
    silences, acks); ``(partition, offset)``, or ``error`` naming ``what`` when it is not acknowledged."""
    producer = make_producer(kafka, **{"linger.ms": 0})
    result: dict[str, Any] = {}

    def delivered(err: Any, msg: Any) -> None:
        result["err"], result["msg"] = err, msg

    producer.produce(topic, key=key, value=value, on_delivery=delivered)
    left = producer.flush(timeout_s)
    if left or "msg" not in result:
        raise error(f"{what} not acknowledged by {kafka.bootstrap_servers} within {timeout_s:g}s "
                    f"(is the broker up and does topic {topic} exist?)")
    if result["err"] is not None:
        raise error(f"publishing {what} to {topic} failed: {result['err']}")
    return result["msg"].partition(), result["msg"].offset()
