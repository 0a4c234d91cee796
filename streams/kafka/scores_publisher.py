"""Write FrameScores dicts to the scores topic (tests, benchmarks, replay tools)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from emowatch.streams.kafka.clients import make_producer, serde_for, topics_for
from emowatch.streams.settings import KafkaSettings
from emowatch.topics.serde import encode_key


def publish_scores(kafka: KafkaSettings, messages: Iterable[dict[str, Any]], *, timeout_s: float = 60.0) -> int:
    """Encode (Avro ``FrameScores``) and produce ``messages`` keyed by call_id, in order; wait for acks.

    Returns the number of messages acknowledged; raises RuntimeError if any was not."""
    topic = topics_for(kafka).scores
    serde, producer = serde_for(kafka, "FrameScores"), make_producer(kafka)
    errors: list[str] = []
    acked = [0]

    def delivered(err, _msg) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            acked[0] += 1

    sent = 0
    for m in messages:
        producer.produce(topic, key=encode_key(m["call_id"]), value=serde.encode(m, topic=topic),
                         on_delivery=delivered)
        producer.poll(0)
        sent += 1
    left = producer.flush(timeout_s)
    if errors or left or acked[0] != sent:
        raise RuntimeError(f"{sent - acked[0]} of {sent} score messages not acknowledged on {topic}: "
                           f"{errors[:3] or f'{left} still queued after {timeout_s:g}s'}")
    return sent
