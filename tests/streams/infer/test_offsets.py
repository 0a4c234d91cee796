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


def test_context_holds_keep_the_delivered_inputs_covering_the_context_per_call_and_role():
    from emowatch.streams.infer.offsets import ContextHolds

    h = ContextHolds(context_s=2.0, idle_s=30.0)
    h.add("t", 0, "a", "CUSTOMER", 0, 1.0, now=0.0, end_of_call=False)
    h.add("t", 0, "a", "AGENT", 1, 1.0, now=0.0, end_of_call=False)  # another role: its own context
    h.add("t", 0, "a", "CUSTOMER", 2, 1.0, now=1.0, end_of_call=False)
    h.add("t", 0, "a", "CUSTOMER", 3, 1.5, now=2.0, end_of_call=False)
    h.add("t", 0, "a", "CUSTOMER", 4, 0.5, now=3.0, end_of_call=False)
    assert len(h) == 5  # every admitted input held
    # nothing is delivered yet: a restart would score 0 first, so nothing may be released
    assert h.delivered("t", 0, 3) == [] and h.delivered("t", 0, 4) == []  # delivered out of order: 2 is still open
    assert h.delivered("t", 0, 0) == []  # the first open input is 2: only 0 is before it
    # 2 delivered: all of CUSTOMER is; the next input needs the 2 s before it, held by 3 (1.5) + 4 (0.5)
    assert h.delivered("t", 0, 2) == [("t", 0, 0), ("t", 0, 2)]
    assert len(h) == 3  # CUSTOMER 3, 4; AGENT 1
    assert h.expire(now=30.5) == [("t", 0, 1)]  # AGENT idle since 0.0
    h.add("t", 0, "a", "CUSTOMER", 5, 1.0, now=4.0, end_of_call=True)  # ended, not delivered yet
    h.add("t", 0, "a", "CUSTOMER", 6, 1.0, now=4.0, end_of_call=False)  # (a chunk after the end)
    assert h.delivered("t", 0, 5) == []  # 6 is open: 4 + 5 hold 1.5 s of its context, 3 the rest
    assert sorted(h.delivered("t", 0, 6)) == [("t", 0, o) for o in (3, 4, 5, 6)]  # all delivered: released
    assert h.delivered("t", 0, 6) == [] and len(h) == 0
    h.add("t", 1, "b", "", 0, 1.0, now=0.0, end_of_call=False)
    h.add("t", 2, "c", "", 0, 1.0, now=0.0, end_of_call=False)
    assert h.drop({("t", 1)}) == [("t", 1, 0)] and h.drop() == [("t", 2, 0)] and len(h) == 0
    assert h.delivered("t", 2, 0) == []  # dropped before its delivery


def test_an_input_in_flight_is_scored_again_with_its_whole_context():
    """The defect the fault suite found: two inputs of a call in flight at a kill -9 (a batch, the producer's
    queue). The committed position must leave the delivered 2 s before the first of them to read again."""
    from emowatch.streams.infer.offsets import HeldTracker

    t = HeldTracker(context_s=2.0, hold_s=10.0)
    for off in range(6):  # 1 s chunks of one call
        t.add("t", 0, off)
        t.hold_input("t", 0, "a", "", off, 1.0, now=0.0, end_of_call=False)
    for off in range(4):
        assert t.done("t", 0, off) is True
    # 4 and 5 were scored but not delivered: a restart must start at 2 (2 + 3 give 4 its context)
    assert t.committable() == {("t", 0): 2} and t.processed("t", 0) == 4
    t.done("t", 0, 4)
    assert t.committable() == {("t", 0): 3}
    t.add("t", 0, 6, outputs=2)  # a stereo input: two outputs
    t.hold_input("t", 0, "a", "", 6, 1.0, now=0.0, end_of_call=True)
    t.done("t", 0, 5)
    assert t.committable() == {("t", 0): 4}
    assert t.done("t", 0, 6) is False and t.committable() == {}  # one role delivered: still open
    assert t.done("t", 0, 6) is True and t.committable() == {("t", 0): 7} and t.holds() == 0


def test_a_hold_keeps_a_done_offset_uncommitted_without_counting_it_in_flight():
    from emowatch.streams.infer.offsets import OffsetTracker

    t = OffsetTracker()
    for off in range(3):
        t.add("t", 0, off)
        t.done("t", 0, off)
    t.hold("t", 0, 1)
    assert t.position("t", 0) == 1 and t.processed("t", 0) == 3 and t.in_flight() == 0 and t.holds() == 1
    t.release("t", 0, 1)
    assert t.position("t", 0) == 3 and t.holds() == 0
