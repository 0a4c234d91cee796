"""Producers key their records through the key serde (topics.serde.encode_key): an empty call id is
refused before anything reaches the producer (an empty key would scatter a call over partitions)."""
import pytest

from emowatch.streams.kafka import audio_publisher, scores_publisher
from emowatch.streams.settings import KafkaSettings
from emowatch.topics.examples import example_record
from emowatch.topics.serde import SerdeError


class FakeProducer:
    def __init__(self) -> None:
        self.produced: list[tuple[str, bytes, bytes]] = []

    def produce(self, topic, key=None, value=None, on_delivery=None):
        self.produced.append((topic, key, value))
        if on_delivery:
            on_delivery(None, None)

    def poll(self, _timeout=0):
        return 0

    def flush(self, _timeout=0):
        return 0


@pytest.fixture
def producer(monkeypatch):
    fake = FakeProducer()
    for mod in (audio_publisher, scores_publisher):
        monkeypatch.setattr(mod, "make_producer", lambda *_a, **_k: fake)
    return fake


def test_audio_publisher_keys_by_call_id_and_refuses_an_empty_one(producer):
    pub = audio_publisher.AudioPublisher(KafkaSettings())
    pub.send(example_record("AudioChunk", call_id="call-1"))
    assert producer.produced[0][1] == b"call-1"
    with pytest.raises(SerdeError, match="non-empty"):
        pub.send(example_record("AudioChunk", call_id=""))
    assert len(producer.produced) == 1


def test_publish_scores_refuses_an_empty_call_id_before_producing(producer):
    with pytest.raises(SerdeError, match="non-empty"):
        scores_publisher.publish_scores(KafkaSettings(), [example_record("FrameScores", call_id="")])
    assert producer.produced == []
    assert scores_publisher.publish_scores(KafkaSettings(), [example_record("FrameScores", call_id="c9")]) == 1
    assert producer.produced[0][1] == b"c9"
