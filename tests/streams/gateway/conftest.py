"""A gateway on the test broker, in a thread of this process (its own event loop), and topic readers."""
from __future__ import annotations

import pytest

from emowatch.streams.kafka.admin import end_offsets
from emowatch.streams.kafka.tail import TopicTail


@pytest.fixture
def start_gateway(kafka_settings, topics):
    """``start_gateway(model=None, **gateway_settings)`` -> a started :class:`Gateway` (stopped after the
    test); ``model`` is a dict of ModelSettings fields."""
    from emowatch.streams.gateway.service import Gateway
    from emowatch.streams.settings import GatewaySettings, Settings

    started = []

    def start(model=None, **gw):
        settings = Settings(kafka=kafka_settings, gateway=GatewaySettings(http_port=0, **gw))
        if model is not None:
            settings = settings.with_overrides(model=model)
        g = Gateway(settings).start_in_thread()
        started.append(g)
        return g

    yield start
    for g in started:
        g.stop()


@pytest.fixture
def gateway(start_gateway):
    return start_gateway()


@pytest.fixture
def audio_ends(kafka_settings, topics):
    """``audio_ends()`` -> total records on the audio topic now (exact: Fetch high watermarks)."""
    return lambda: sum(end_offsets(kafka_settings.bootstrap_servers, [topics.audio]).values())


@pytest.fixture
def read_audio(kafka_settings, topics):
    """``read_audio(n, timeout_s)`` -> the first ``n`` AudioChunk records of the topic (all partitions)."""
    tails = []

    def read(n: int, timeout_s: float = 30.0) -> list[dict]:
        tail = TopicTail(kafka_settings, {topics.audio: "AudioChunk"})
        tails.append(tail)
        return tail.collect(lambda got: len(got[topics.audio]) >= n, timeout_s)[topics.audio]

    yield read
    for t in tails:
        t.close()


@pytest.fixture
def produce(kafka_settings, topics):
    """``produce("scores" | "alerts", *records)``: write records as the pipeline's workers would (acked)."""
    from emowatch.streams.kafka.clients import make_producer, serde_for
    from emowatch.topics.serde import encode_key

    producer = make_producer(kafka_settings, **{"linger.ms": 0})
    schemas = {"scores": "FrameScores", "alerts": "Alert"}

    def send(logical: str, *records: dict) -> None:
        topic = topics.name(logical)
        serde = serde_for(kafka_settings, schemas[logical])
        for rec in records:
            producer.produce(topic, key=encode_key(rec["call_id"]), value=serde.encode(rec, topic=topic))
        assert producer.flush(15) == 0

    return send
