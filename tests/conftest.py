"""Shared fixtures: the real local broker (session scope, random port) and unique names per test."""
from __future__ import annotations

import os
import uuid

import pytest

FULL = os.environ.get("EMOWATCH_FULL") == "1"


@pytest.fixture(scope="session")
def broker():
    """The real local Kafka-compatible broker (tansu) on a random loopback port."""
    from emowatch.streams.local.broker import LocalBroker

    b = LocalBroker()
    b.start()
    yield b
    b.stop()


@pytest.fixture
def unique() -> str:
    """A short unique token for topic prefixes and group ids of one test."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def kafka_settings(broker, unique):
    """KafkaSettings on the session broker with a topic prefix unique to this test."""
    from emowatch.streams.settings import KafkaSettings

    return KafkaSettings(bootstrap_servers=broker.bootstrap_servers, partitions=4, topic_prefix=f"t{unique}.",
                         session_timeout_ms=6000, fetch_wait_max_ms=25)


@pytest.fixture
def topics(kafka_settings):
    """This test's topics, created on the broker."""
    from emowatch.streams.kafka.admin import ensure_topics
    from emowatch.streams.kafka.clients import topics_for

    t = topics_for(kafka_settings)
    report = ensure_topics(kafka_settings.bootstrap_servers, t)
    assert not report.problems, report.problems
    return t
