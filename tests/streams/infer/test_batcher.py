from concurrent.futures import Future

import pytest

from emowatch.streams.infer.batcher import Batch, Batcher, QueueFull


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
    assert not b.pop_batch()
    b.put(2)
    batch = b.pop_batch()
    assert batch.items == [0, 1, 2] and batch.delays == [0.0, 0.0, 0.0]
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
    batch = b.pop_batch()
    assert batch.items == ["a", "b"]
    assert batch.delays == pytest.approx([0.02, 0.01])


def test_per_item_futures_complete_with_their_own_result():
    b = Batcher(max_batch=3, max_wait_ms=0, capacity=10, clock=Clock())
    futs = [b.put(x) for x in (1, 2, 3)]
    assert all(isinstance(f, Future) and not f.done() for f in futs)
    batch = b.pop_batch()
    batch.resolve([x * 10 for x in batch.items])
    assert [f.result(timeout=0) for f in futs] == [10, 20, 30]


def test_failed_batch_fails_every_future_and_wrong_result_count_is_an_error():
    b = Batcher(max_batch=2, max_wait_ms=0, capacity=10, clock=Clock())
    f1, f2 = b.put("x"), b.put("y")
    b.pop_batch().fail(ValueError("model exploded"))
    assert isinstance(f1.exception(timeout=0), ValueError) and isinstance(f2.exception(timeout=0), ValueError)
    f3 = b.put("z")
    b.pop_batch().resolve([1, 2])  # two results for one item
    assert "got 2 results" in str(f3.exception(timeout=0))


def test_buckets_keep_groups_apart_and_oldest_first():
    clk = Clock()
    b = Batcher(max_batch=2, max_wait_ms=10, capacity=10, bucket_of=len, clock=clk)
    b.put("xx")
    clk.t = 0.001
    b.put("yyy")
    b.put("zz")
    assert b.pop_batch().items == ["xx", "zz"]
    clk.t = 1.0
    assert b.pop_batch().items == ["yyy"]


def test_default_is_one_fifo_queue():
    b = Batcher(max_batch=2, max_wait_ms=0, capacity=10, clock=Clock())
    for x in ("a", "bb", "ccc"):
        b.put(x)
    assert b.pop_batch().items == ["a", "bb"] and b.pop_batch().items == ["ccc"]


def test_bounded_capacity_force_put_and_force_flush():
    b = Batcher(max_batch=2, max_wait_ms=10_000, capacity=3, clock=Clock())
    for i in range(3):
        b.put(i)
    assert b.full and b.free == 0
    with pytest.raises(QueueFull):
        b.put(3)
    b.put(3, force=True)  # already accepted upstream: allowed beyond capacity
    assert len(b) == 4
    assert b.pop_batch().items == [0, 1]  # full bucket is due
    assert b.pop_batch().items == [2, 3]
    b.put(4)
    assert not b.pop_batch()
    assert b.pop_batch(force=True).items == [4]


def test_cancel_all_fails_queued_futures():
    b = Batcher(max_batch=4, max_wait_ms=1000, capacity=10, clock=Clock())
    f = b.put(1)
    assert b.cancel_all() == 1 and len(b) == 0
    assert isinstance(f.exception(timeout=0), RuntimeError)


def test_empty_batch_is_falsy():
    assert not Batch() and len(Batch()) == 0


@pytest.mark.parametrize("kwargs", [dict(max_batch=5, max_wait_ms=1, capacity=2),
                                    dict(max_batch=0, max_wait_ms=1, capacity=2),
                                    dict(max_batch=1, max_wait_ms=-1, capacity=2)])
def test_rejects_bad_limits(kwargs):
    with pytest.raises(ValueError):
        Batcher(**kwargs)
