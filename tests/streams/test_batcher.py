import pytest

from emowatch.streams.batcher import Batcher, QueueFull


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_flushes_on_max_batch_before_deadline():
    clk = Clock()
    b = Batcher(max_batch=3, max_wait_ms=100, capacity=10, clock=clk)
    for i in range(2):
        b.put(i)
    assert b.pop_batch() == ([], [])
    b.put(2)
    items, delays = b.pop_batch()
    assert items == [0, 1, 2] and delays == [0.0, 0.0, 0.0]
    assert len(b) == 0


def test_flushes_on_deadline_with_queue_delay():
    clk = Clock()
    b = Batcher(max_batch=8, max_wait_ms=20, capacity=10, clock=clk)
    b.put("a")
    clk.t = 0.01
    b.put("b")
    assert not b.due()
    assert b.next_deadline() == pytest.approx(0.02)
    clk.t = 0.02
    items, delays = b.pop_batch()
    assert items == ["a", "b"]
    assert delays == pytest.approx([0.02, 0.01])


def test_buckets_keep_lengths_apart_and_oldest_first():
    clk = Clock()
    b = Batcher(max_batch=2, max_wait_ms=10, capacity=10, bucket_of=len, clock=clk)
    b.put("xx")
    clk.t = 0.001
    b.put("yyy")
    b.put("zz")
    assert b.pop_batch()[0] == ["xx", "zz"]
    clk.t = 1.0
    assert b.pop_batch()[0] == ["yyy"]


def test_bounded_capacity_and_force_flush():
    b = Batcher(max_batch=2, max_wait_ms=10_000, capacity=3, clock=Clock())
    for i in range(3):
        b.put(i)
    assert b.full
    with pytest.raises(QueueFull):
        b.put(3)
    assert b.pop_batch()[0] == [0, 1]  # full bucket is due
    assert b.pop_batch()[0] == []
    assert b.pop_batch(force=True)[0] == [2]


def test_rejects_bad_limits():
    with pytest.raises(ValueError):
        Batcher(max_batch=5, max_wait_ms=1, capacity=2)
