from emowatch.streams.infer.offsets import OffsetTracker


def test_commits_only_contiguous_delivered_prefix():
    t = OffsetTracker()
    for off in range(5):
        t.add("a", 0, off)
    t.done("a", 0, 1)
    t.done("a", 0, 2)
    assert t.committable() == {("a", 0): 0}
    t.done("a", 0, 0)
    assert t.committable() == {("a", 0): 3}
    assert t.committable() == {}  # nothing moved
    t.done("a", 0, 4)
    t.done("a", 0, 3)
    assert t.committable() == {("a", 0): 5}


def test_fan_out_needs_every_output_and_skips_need_none():
    t = OffsetTracker()
    t.add("a", 1, 10, outputs=2)  # stereo -> two roles
    t.add("a", 1, 11, outputs=0)  # duplicate skipped: nothing to wait for
    t.done("a", 1, 10)
    assert t.committable() == {("a", 1): 10}
    t.done("a", 1, 10)
    assert t.committable() == {("a", 1): 12}
    assert t.in_flight() == 0


def test_forget_revoked_partition():
    t = OffsetTracker()
    t.add("a", 2, 7)
    t.forget("a", 2)
    assert t.committable() == {}
    t.done("a", 2, 7)  # late delivery report of a revoked partition is ignored
    assert t.in_flight() == 0


def test_position_is_end_of_delivered_prefix_and_held_offsets_block_it():
    t = OffsetTracker()
    assert t.position("a", 0) is None
    t.add("a", 0, 5)  # e.g. a chunk held in a reorder buffer
    t.add("a", 0, 6)
    t.done("a", 0, 6)
    assert t.position("a", 0) == 5
    assert t.committable() == {("a", 0): 5}
    t.done("a", 0, 5)
    assert t.position("a", 0) == 7
    assert t.committable() == {("a", 0): 7}
