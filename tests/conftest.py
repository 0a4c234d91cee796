"""Shared fixtures: the real local broker (session scope, random port), unique names per test,
and a suite-wide check: tests that need the broker or the embedded ClickHouse carry the
``integration`` marker."""
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


# --- integration marker: `make test-unit` (-m "not integration") must need no broker or ClickHouse --------------

BROKER_FIXTURES = {"broker", "kafka_settings", "topics"}
# Real parts a test module may use directly; referenced by name so that collection imports nothing.
REAL_PARTS = {("emowatch.streams.local.broker", "LocalBroker"), ("emowatch.streams.local.stack", "LocalStack"),
              ("emowatch.streams.sink.clickhouse", "connect"), ("emowatch.streams.sink.service", "SinkService")}


def _real_parts(module) -> set[str]:
    return {f"{m}.{n}" for obj in vars(module).values()
            if (m := getattr(obj, "__module__", None), n := getattr(obj, "__qualname__", None)) in REAL_PARTS}


def pytest_collection_modifyitems(config, items):
    missing = []
    for item in items:
        if item.get_closest_marker("integration"):
            continue
        why = sorted(BROKER_FIXTURES & set(getattr(item, "fixturenames", ())))
        module = getattr(item, "module", None)
        why += sorted(_real_parts(module)) if module is not None else []
        if why:
            missing.append(f"{item.nodeid} (uses {', '.join(why)})")
    if missing:
        raise pytest.UsageError("tests that use the broker or the embedded ClickHouse need "
                                "@pytest.mark.integration:\n  " + "\n  ".join(missing))
