"""Publish a validated rule set to the compacted rules topic (``emowatch rules publish``)."""
from __future__ import annotations

import time
from dataclasses import dataclass

from emowatch.rules.model import RuleSet
from emowatch.streams.kafka.clients import produce_acked, serde_for, topics_for
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
    partition, offset = produce_acked(kafka, topic, encode_key(ruleset.rule_set), value,
                                      what=f"rule set {ruleset.rule_set!r}", timeout_s=timeout_s, error=PublishError)
    return Published(topic, partition, offset, ruleset.rule_set, ruleset.version, ruleset.business_line)
