"""The rules worker's consumer lag from Faust's offset bookkeeping (``lag.py``, pure)."""
from __future__ import annotations

from emowatch.streams.rules_worker.lag import consumer_lag, done_position, needs_start


def test_done_is_the_committed_offset_moved_over_the_acknowledged_run_after_it():
    assert done_position(10, [], None) == 10
    assert done_position(10, [12, 10, 11, 14], None) == 13  # 13 not acknowledged yet: a gap
    assert done_position(10, [8, 9], None) == 10  # acknowledged before the commit: already counted
    assert done_position(10, [11, 12], None) == 10  # 10 itself not done


def test_without_a_committed_offset_a_partition_starts_at_its_low_watermark():
    assert done_position(None, [5, 6], 5) == 7
    assert done_position(-1, [], 0) == 0  # Faust keeps "no commit" as -1 (or None, or 0)
    assert done_position(None, [3], None) is None
    assert needs_start(["a", "b", "c"], {"a": 7, "b": None, "c": -1}, {"c": 0}) == ["b"]


def test_lag_sums_the_partitions_with_a_known_position():
    highs = {"p0": 100, "p1": 50, "p2": 10}
    lag = consumer_lag(highs, acked={"p0": [90, 91]}, committed={"p0": 90, "p1": 50, "p2": None}, starts={})
    assert lag == 8 + 0  # p2: no commit and no low watermark known yet, left out
    assert consumer_lag(highs, {}, {"p0": None}, {"p0": 0, "p1": 0, "p2": 0}) == 160
    assert consumer_lag({"p0": 5}, {}, {}, {}) is None
    assert consumer_lag({"p0": 5}, {}, {"p0": 9}, {}) == 0  # never negative
