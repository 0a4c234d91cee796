"""Publish a validated rule set to the compacted rules topic (``emowatch rules publish``)."""
from __future__ import annotations

import time
from dataclasses import dataclass

from emowatch.rules.model import RuleSet
from emowatch.streams.kafka.clients import make_producer, serde_for, topics_for
from emowatch.streams.rules_worker.reload import ruleset_record
from emowatch.streams.settings import KafkaSettings
from emowatch.topics.errors import EmowatchError
from emowatch.topics.serde import encode_key


class PublishError(EmowatchError, RuntimeError):
    """The broker did not acknowledge the rule set."""


@dataclass(frozen=True)
class Published:
    topic: str
    partition: int
    offset: int
    rule_set: str
    version: str
    business_line: str


def publish_ruleset(kafka: KafkaSettings, ruleset: RuleSet, *, timeout_s: float = 15.0,
                    now_ms: int | None = None) -> Published:
    """Write ``ruleset`` (already validated) keyed by its id; wait for the broker's ack."""
    topic = topics_for(kafka).rules
    record = ruleset_record(ruleset, published_at_ms=int(time.time() * 1000) if now_ms is None else now_ms)
    value = serde_for(kafka, "RuleSet").encode(record, topic=topic)
    producer = make_producer(kafka, **{"linger.ms": 0})
    result: dict = {}

    def delivered(err, msg) -> None:
        result["err"], result["msg"] = err, msg

    producer.produce(topic, key=encode_key(ruleset.rule_set), value=value, on_delivery=delivered)
    left = producer.flush(timeout_s)
    if left or "msg" not in result:
        raise PublishError(f"rule set {ruleset.rule_set!r} not acknowledged by {kafka.bootstrap_servers} "
                           f"within {timeout_s:g}s (is the broker up and does topic {topic} exist?)")
    if result["err"] is not None:
        raise PublishError(f"publishing rule set {ruleset.rule_set!r} to {topic} failed: {result['err']}")
    msg = result["msg"]
    return Published(topic, msg.partition(), msg.offset(), ruleset.rule_set, ruleset.version, ruleset.business_line)
