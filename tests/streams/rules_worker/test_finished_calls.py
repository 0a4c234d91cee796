"""Retention of ended calls in the rules worker's table (pure part)."""
from __future__ import annotations

import os

import pytest
from aiokafka.partitioner import murmur2

from emowatch.streams.rules_worker.finished_calls import FinishedCalls
from emowatch.topics.registry import partition_of


def test_due_pops_per_partition_in_order_after_the_retention():
    f = FinishedCalls(retention_s=10)
    f.add(0, "a", now=100.0)
    f.add(1, "b", now=101.0)
    f.add(0, "c", now=105.0)
    assert f.due(0, now=109.9) == []
    assert f.due(0, now=110.0) == ["a"]
    assert f.due(1, now=200.0) == ["b"]
    assert f.due(0, now=200.0, limit=5) == ["c"] and len(f) == 0
    with pytest.raises(ValueError):
        FinishedCalls(0)


def test_due_is_bounded_per_call():
    f = FinishedCalls(retention_s=1)
    for i in range(10):
        f.add(3, f"c{i}", now=0.0)
    assert f.due(3, now=5.0, limit=4) == ["c0", "c1", "c2", "c3"] and len(f) == 6


@pytest.mark.parametrize("partitions", [1, 4, 12])
def test_partition_of_matches_the_java_compatible_murmur2(partitions):
    keys = [os.urandom(n) for n in range(1, 40) for _ in range(10)] + [b"call-1", "通话-7".encode()]
    assert [partition_of(k, partitions) for k in keys] == [(murmur2(k) & 0x7FFFFFFF) % partitions for k in keys]
