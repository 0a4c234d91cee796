"""offsets_at: the broker's answer to ListOffsets by timestamp is checked against the messages around it;
the local tansu broker answers the earliest offset for every timestamp, which the check catches."""
from __future__ import annotations

import pytest

from emowatch.streams.kafka.time_offsets import answer_plausible

T = 1_700_000_010_000


@pytest.mark.parametrize("answer, low, high, before_ts, at_ts, at_known", [
    (5, 0, 10, T - 1, T, True),          # message at the answer is the first one at T
    (5, 0, 10, T - 500, T + 900, True),  # no message exactly at T: the next one
    (0, 0, 10, None, T + 1, True),       # every message is newer: the earliest offset
    (10, 0, 10, T - 1, None, True),      # every message is older: the end
    (0, 0, 0, None, None, True),         # empty partition
    (7, 3, 10, None, T, True),           # the message before was deleted (compaction): not known, not needed
])
def test_a_right_answer_passes(answer, low, high, before_ts, at_ts, at_known):
    assert answer_plausible(T, answer, low, high, before_ts, at_ts, at_known)


@pytest.mark.parametrize("answer, low, high, before_ts, at_ts, at_known", [
    (0, 0, 10, None, T - 10_000, True),  # tansu: the earliest offset for a later time (its message is older)
    (6, 0, 10, T, T + 1, True),          # too late: the message before already qualifies
    (5, 0, 10, T - 1, None, False),      # nothing read in time: unknown
    (2, 3, 10, None, T, True),           # below the earliest offset
    (12, 0, 10, T - 1, None, True),      # beyond the end
])
def test_a_wrong_or_unverifiable_answer_fails(answer, low, high, before_ts, at_ts, at_known):
    assert not answer_plausible(T, answer, low, high, before_ts, at_ts, at_known)


@pytest.mark.integration
def test_tansu_answers_are_detected_and_fall_back(kafka_settings, unique):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from emowatch.streams.kafka.notify_control import groupless_consumer
    from emowatch.streams.kafka.time_offsets import offsets_at

    topic = f"t{unique}.probe"
    admin = AdminClient({"bootstrap.servers": kafka_settings.bootstrap_servers})
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(10)
    producer = Producer({"bootstrap.servers": kafka_settings.bootstrap_servers, "linger.ms": 0})
    for i in range(20):  # partition 0: one message per second from T; partition 1 from T + 100 s; 2 empty
        producer.produce(topic, value=b"x", partition=0, timestamp=T + i * 1000)
        producer.produce(topic, value=b"y", partition=1, timestamp=T + 100_000 + i * 1000)
        if i % 5 == 4:
            producer.flush(10)
    producer.flush(10)
    consumer = groupless_consumer(kafka_settings)
    try:
        # before every message: the broker's answer (the earliest offsets) is right, no fallback
        assert offsets_at(consumer, topic, [0, 1, 2], T - 1) == ({0: 0, 1: 0, 2: 0}, False)
        # inside partition 0's messages: tansu answers 0 again, which the check rejects
        offsets, fallback = offsets_at(consumer, topic, [0, 1, 2], T + 7_500)
        assert fallback is True and offsets == {0: 0, 1: 0, 2: 0}
        # partition 1 alone is still answered right (all of its messages are newer)
        assert offsets_at(consumer, topic, [1], T + 7_500) == ({1: 0}, False)
        assert consumer.assignment() == []
    finally:
        consumer.close()
