"""Consumer-group administration for operator commands: state, committed offsets, moving offsets."""
from __future__ import annotations

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from emowatch.streams.kafka.clients import base_config
from emowatch.streams.settings import KafkaSettings


def _admin(kafka: KafkaSettings) -> AdminClient:
    return AdminClient(base_config(kafka))


def group_state(kafka: KafkaSettings, group: str, *, timeout_s: float = 15.0) -> tuple[str, int]:
    """``(state, listed members)`` of ``group``: ``EMPTY``/``DEAD`` when nothing consumes. The local tansu broker
    lists no members of an active group but reports it ``STABLE`` (measured), so callers check both, and it
    never expires a member that stopped without leaving the group (a kill): the group then stays STABLE."""
    admin = _admin(kafka)
    desc = admin.describe_consumer_groups([group], request_timeout=timeout_s)[group].result(timeout=timeout_s)
    state = getattr(desc.state, "name", str(desc.state))
    return state.upper(), len(desc.members or [])


def committed_offsets(kafka: KafkaSettings, group: str, topic: str, partitions: list[int], *,
                      timeout_s: float = 15.0) -> dict[int, int | None]:
    """The group's committed offset per partition of ``topic`` (None where it committed nothing)."""
    admin = _admin(kafka)
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in partitions])
    res = admin.list_consumer_group_offsets([req], request_timeout=timeout_s)[group].result(timeout=timeout_s)
    return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in res.topic_partitions}


def move_offsets(kafka: KafkaSettings, group: str, topic: str, offsets: dict[int, int], *,
                 timeout_s: float = 15.0) -> None:
    """Commit ``offsets`` for the (idle) group. The broker refuses it while the group has members
    (UNKNOWN_MEMBER_ID / non-empty group); any per-partition error is raised as RuntimeError."""
    admin = _admin(kafka)
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p, o) for p, o in sorted(offsets.items())])
    res = admin.alter_consumer_group_offsets([req], request_timeout=timeout_s)[group].result(timeout=timeout_s)
    errors = [f"{tp.topic}[{tp.partition}]: {tp.error}" for tp in res.topic_partitions if tp.error is not None]
    if errors:
        raise RuntimeError(f"moving the offsets of {group} failed: {'; '.join(errors)}")

