"""The first offset at or after a time on the local broker: its ListOffsets-by-timestamp answer is wrong,
caught by the check against the records, and the scan gives the exact offsets."""
from __future__ import annotations

import pytest
from confluent_kafka import Producer

from emowatch.streams.kafka.time_scan import offsets_at_or_after

pytestmark = pytest.mark.integration
BASE = 1_700_000_000_000


def test_offsets_at_or_after_a_time_per_partition(kafka_settings, topics):
    producer = Producer({"bootstrap.servers": kafka_settings.bootstrap_servers})
    for i in range(10):  # partition 0: t = 0, 1, ..., 9 s; partition 1: 0, 2, ..., 18 s; partition 2: empty
        producer.produce(topics.scores, key=b"k", value=b"v", partition=0, timestamp=BASE + i * 1000)
        producer.produce(topics.scores, key=b"k", value=b"v", partition=1, timestamp=BASE + i * 2000)
    assert producer.flush(30) == 0
    for at, want in ((BASE - 1, {0: 0, 1: 0}), (BASE + 4_500, {0: 5, 1: 3}), (BASE + 9_000, {0: 9, 1: 5}),
                     (BASE + 18_001, {0: 10, 1: 10})):
        found, ends, how = offsets_at_or_after(kafka_settings, topics.scores, at)
        assert {p: found[p] for p in (0, 1)} == want, at
        assert found[2] == ends[2] == 0 and (ends[0], ends[1]) == (10, 10)
        if at > BASE:
            assert how == "scan"  # tansu answered offset 0 for these (the check catches it)
