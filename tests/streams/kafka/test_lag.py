"""LagMeter against a stand-in consumer (the broker's answers are what confluent-kafka returns)."""
from __future__ import annotations

from confluent_kafka import TopicPartition

from emowatch.streams.kafka.lag import LagMeter

INVALID = -1001


class FakeConsumer:
    def __init__(self, cached, listed=None, positions=None, committed=None, broken=False):
        self.cached, self.listed = cached, listed or {}
        self.positions, self.committed_at = positions or {}, committed or {}
        self.broken = broken
        self.requests = 0

    def get_watermark_offsets(self, tp, timeout=None, cached=False):
        key = (tp.topic, tp.partition)
        if cached:
            return self.cached.get(key, (INVALID, INVALID))
        self.requests += 1
        if self.broken:
            raise RuntimeError("broker down")
        return self.listed[key]

    def position(self, tps):
        return [TopicPartition(tp.topic, tp.partition, self.positions.get((tp.topic, tp.partition), INVALID))
                for tp in tps]

    def committed(self, tps, timeout=None):
        self.requests += 1
        if self.broken:
            raise RuntimeError("broker down")
        return [TopicPartition(tp.topic, tp.partition, self.committed_at.get((tp.topic, tp.partition), INVALID))
                for tp in tps]


def test_lag_is_the_high_watermark_minus_what_the_worker_has_done():
    c = FakeConsumer(cached={("t", 0): (0, 100), ("t", 1): (0, 40)}, positions={("t", 0): 95, ("t", 1): 40})
    done = {("t", 0): 80}  # e.g. rows held unwritten from offset 80 on
    assert LagMeter().measure(c, [("t", 0), ("t", 1)], lambda t, p: done.get((t, p))) == 20
    assert c.requests == 0  # cached watermarks and local positions: no broker request


def test_a_partition_not_consumed_yet_counts_from_the_committed_offset_else_the_low_watermark():
    c = FakeConsumer(cached={("t", 0): (-1001, 100), ("t", 1): (-1001, 30)}, listed={("t", 1): (5, 30)},
                     committed={("t", 0): 100})
    meter = LagMeter()
    assert meter.measure(c, [("t", 0), ("t", 1)]) == 0 + 25
    asked = c.requests
    assert meter.measure(c, [("t", 0), ("t", 1)]) == 25 and c.requests == asked  # looked up once per assignment


def test_stale_partitions_ask_the_broker_and_keep_the_larger_figure():
    c = FakeConsumer(cached={("t", 0): (0, 10), ("t", 1): (0, 10)}, listed={("t", 0): (0, 60), ("t", 1): (0, 9)},
                     positions={("t", 0): 10, ("t", 1): 10})
    done = {("t", 0): 0, ("t", 1): 0}
    assert LagMeter().measure(c, [("t", 0), ("t", 1)], lambda t, p: done[(t, p)], stale={("t", 0), ("t", 1)}) == 70


def test_an_unreachable_broker_is_asked_once_per_measurement_and_the_last_figure_kept():
    c = FakeConsumer(cached={("t", p): (0, 10) for p in range(4)}, broken=True)
    meter = LagMeter()
    meter.value = 7
    assert meter.measure(c, [("t", p) for p in range(4)], lambda t, p: 0, stale={("t", p) for p in range(4)}) == 40
    assert c.requests == 1
    assert meter.measure(c, [("t", 0)], stale={("t", 0)}) is None and meter.value == 40


def test_measurements_are_spaced():
    c = FakeConsumer(cached={("t", 0): (0, 10)}, positions={("t", 0): 4})
    meter = LagMeter(every_s=3600)
    assert meter.maybe_measure(c, [("t", 0)]) == 6
    c.cached[("t", 0)] = (0, 20)
    assert meter.maybe_measure(c, [("t", 0)]) is None and meter.value == 6
