"""``emowatch replay --to-topic``: a replay's alerts to ``emowatch.alerts.replay.v1``, never to production's.

Keyed by call_id like the alerts topic (same partitioning); every record carries its ``replay_id``. The
production alerts topic is refused outright, whatever name is asked for: the notifier reads it.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from emowatch.streams.kafka.clients import make_producer, serde_for, topics_for
from emowatch.streams.settings import KafkaSettings
from emowatch.topics.errors import EmowatchError
from emowatch.topics.serde import encode_key

__all__ = ["ReplayPublishError", "publish_replay_alerts"]


class ReplayPublishError(EmowatchError, RuntimeError):
    """The replay's alerts were not all acknowledged, or the target is the production alerts topic."""


def publish_replay_alerts(kafka: KafkaSettings, events: Sequence[dict[str, Any]], *, topic: str | None = None,
                          timeout_s: float = 60.0) -> tuple[str, int]:
    """Produce ``events`` (each with ``replay_id`` set) in order; wait for the broker's acks. ``(topic, sent)``."""
    topics = topics_for(kafka)
    target = topic or topics.alerts_replay
    if target == topics.alerts:
        raise ReplayPublishError(f"refusing to write a replay to the production alerts topic {target}")
    missing = [ev.get("alert_id") for ev in events if not ev.get("replay_id")]
    if missing:
        raise ReplayPublishError(f"{len(missing)} replay event(s) without a replay_id (first: {missing[0]})")
    serde, producer = serde_for(kafka, "Alert"), make_producer(kafka)
    errors: list[str] = []
    acked = [0]

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            acked[0] += 1

    for ev in events:
        producer.produce(target, key=encode_key(ev["call_id"]), value=serde.encode(ev, topic=target),
                         on_delivery=delivered)
        producer.poll(0)
    left = producer.flush(timeout_s)
    if errors or left or acked[0] != len(events):
        raise ReplayPublishError(f"{len(events) - acked[0]} of {len(events)} replay alerts not acknowledged on "
                                 f"{target}: {errors[:3] or f'{left} still queued after {timeout_s:g}s'}")
    return target, len(events)
