"""The sink's batch cuts (streams/sink/batches.py), pure: size cuts at multiples of batch_rows, age cuts,
a recorded cut reloaded and pinned after a restart (and a stale one ignored), the final cut, done/drop and
dead-lettered messages (row None)."""
from __future__ import annotations

from emowatch.streams.sink.batches import Batch, Batcher, record_key, rows_digest

TP = ("scores", 0)


def _fill(b: Batcher, offsets, now: float = 0.0, tp=TP) -> None:
    for o in offsets:
        b.add(tp, o, [o], now)


def _drain(b: Batcher, now: float, final: bool = False) -> list[Batch]:
    out = []
    for batch in b.ready(now, final):
        out.append(batch)
        b.done(batch, now)
    return out


def _cuts(batches) -> list[tuple[int, int]]:
    return [(x.first, x.last) for x in batches]


def test_size_cuts_never_cross_a_multiple_of_batch_rows():
    b = Batcher(batch_rows=10, batch_ms=1000)
    _fill(b, range(3, 35))
    assert _cuts(_drain(b, 0.0)) == [(3, 9), (10, 19), (20, 29)]  # 30..34 not full, not old: held
    assert b.buffered() == 5
    assert list(b.ready(0.5)) == []  # nothing due yet


def test_size_cuts_are_the_same_whatever_was_read_at_once():
    """The offsets alone decide a full batch: reading 3..34 at once or one by one cuts alike."""
    at_once, one_by_one = Batcher(10, 1000), Batcher(10, 1000)
    _fill(at_once, range(3, 35))
    got = []
    for o in range(3, 35):
        _fill(one_by_one, [o])
        got += _drain(one_by_one, 0.0)
    assert _cuts(got) == _cuts(_drain(at_once, 0.0)) == [(3, 9), (10, 19), (20, 29)]
    assert [x.rows for x in got][0] == [[o] for o in range(3, 10)]


def test_an_age_cut_takes_everything_held_once_the_oldest_is_batch_ms_old():
    b = Batcher(batch_rows=100, batch_ms=50)
    _fill(b, [10, 11, 12], now=1.0)
    assert list(b.ready(1.049)) == []
    _fill(b, [13], now=1.04)
    batches = _drain(b, 1.05)
    assert _cuts(batches) == [(10, 13)] and batches[0].rows == [[10], [11], [12], [13]]
    assert not batches[0].recut and batches[0].token == f"scores-0-10-13-{rows_digest([[10], [11], [12], [13]])}"
    _fill(b, [14], now=1.06)  # the age counts from the first message held after done()
    assert list(b.ready(1.10)) == [] and _cuts(_drain(b, 1.11)) == [(14, 14)]


def test_a_cut_stays_pinned_until_done_however_much_more_is_read():
    """An outage: the same batch is cut again and again (same token) while more arrives."""
    b = Batcher(batch_rows=100, batch_ms=50)
    _fill(b, [0, 1, 2])
    first = next(b.ready(1.0))  # not done: the insert failed
    _fill(b, range(3, 150), now=1.0)
    again = next(b.ready(2.0))
    assert (again.first, again.last, again.rows) == (first.first, first.last, first.rows) == (0, 2, [[0], [1], [2]])
    b.done(again, 2.0)
    assert _cuts(_drain(b, 2.0)) == [(3, 99)]


def test_a_recorded_cut_is_reloaded_pinned_and_reported_as_a_recut():
    b = Batcher(batch_rows=100, batch_ms=50)
    _fill(b, range(40, 45))  # the restarted sink has read 40..44 so far; the crash was after cutting 40..47
    assert b.unloaded() == [TP]
    b.load(TP, (40, 47, ""))
    assert b.unloaded() == []
    assert list(b.ready(10.0, final=True)) == []  # not fully re-read yet: even a final flush waits
    _fill(b, range(45, 120), now=10.0)
    batches = _drain(b, 10.0)
    assert _cuts(batches) == [(40, 47), (48, 99)]
    assert batches[0].recut and not batches[1].recut  # only the reloaded one
    assert batches[0].token == f"scores-0-40-47-{rows_digest([[o] for o in range(40, 48)])}"


def test_a_stale_record_is_ignored():
    """Recorded for offsets this consumer does not hold (an older batch, committed since): normal cuts."""
    b = Batcher(batch_rows=10, batch_ms=50)
    _fill(b, range(20, 26))
    b.load(TP, (12, 19, ""))
    batches = _drain(b, 1.0)
    assert _cuts(batches) == [(20, 25)] and not batches[0].recut
    assert b.unloaded() == []


def test_a_record_for_other_records_at_the_same_offsets_is_ignored():
    """The topic was re-created: offsets start again at 0, and a cut recorded for the old records (0..47) would
    hold the new ones until 48 arrive. The record names the record at its first offset: it is re-cut only for
    that one (a dead-lettered one: '-'); a record without it (before migration 0007) is taken by offsets."""
    cut = next(iter(_drain(_filled(range(0, 3)), 1.0, final=True)))
    assert cut.first_key == record_key([0]) and cut.first_key != record_key([1]) and record_key(None) == "-"
    for key, recut in ((record_key([0]), True), ("", True), (record_key(["another record"]), False)):
        b = _filled(range(0, 5))
        b.load(TP, (0, 47, key))
        assert _cuts(_drain(b, 1.0, final=True)) == ([] if recut else [(0, 4)]), key
    dead = Batcher(batch_rows=100, batch_ms=50)
    dead.add(TP, 0, None, 0.0)
    dead.load(TP, (0, 1, "-"))
    _fill(dead, [1])
    batches = _drain(dead, 1.0)
    assert _cuts(batches) == [(0, 1)] and batches[0].recut and batches[0].first_key == "-"


def _filled(offsets) -> Batcher:
    b = Batcher(batch_rows=100, batch_ms=50)
    _fill(b, offsets)
    return b


def test_no_record_means_normal_cuts_and_unloaded_lists_held_partitions_only():
    b = Batcher(batch_rows=10, batch_ms=50)
    assert b.unloaded() == []
    _fill(b, [5, 6])
    _fill(b, [0], tp=("alerts", 2))
    assert sorted(b.unloaded()) == [("alerts", 2), TP]
    b.load(TP, None)
    assert b.unloaded() == [("alerts", 2)]
    assert _cuts(_drain(b, 0.0, final=True)) == [(5, 6), (0, 0)]


def test_the_final_cut_takes_what_is_held_without_waiting_for_age():
    b = Batcher(batch_rows=10, batch_ms=10_000)
    _fill(b, [7, 8, 9, 10, 11])
    assert _cuts(_drain(b, 0.0)) == [(7, 9)]  # a full batch (up to the multiple of 10)
    assert _cuts(_drain(b, 0.0)) == []
    assert _cuts(_drain(b, 0.0, final=True)) == [(10, 11)]
    assert b.buffered() == 0 and _drain(b, 0.0, final=True) == []


def test_ready_stops_at_a_batch_the_caller_did_not_complete():
    b = Batcher(batch_rows=10, batch_ms=50)
    _fill(b, range(0, 30))
    assert _cuts(b.ready(0.0)) == [(0, 9)]  # not done(): the next cut would cross it
    assert b.buffered() == 30


def test_drop_forgets_revoked_partitions():
    b = Batcher(batch_rows=10, batch_ms=50)
    _fill(b, [1, 2])
    _fill(b, [3], tp=("alerts", 1))
    b.drop([TP, ("scores", 9)])
    assert b.buffered() == 1 and b.unloaded() == [("alerts", 1)]
    assert _cuts(_drain(b, 1.0)) == [(3, 3)]


def test_dead_lettered_messages_count_in_the_offsets_not_in_the_rows():
    b = Batcher(batch_rows=5, batch_ms=50)
    for o in range(0, 5):
        b.add(TP, o, None if o in (1, 4) else [o], 0.0)
    batches = _drain(b, 0.0)
    assert _cuts(batches) == [(0, 4)] and batches[0].rows == [[0], [2], [3]]
    b.add(TP, 5, None, 0.0)
    only_dead = _drain(b, 1.0)
    assert _cuts(only_dead) == [(5, 5)] and only_dead[0].rows == []  # committed, nothing inserted


def test_oldest_held_is_where_the_partitions_unwritten_messages_begin():
    b = Batcher(batch_rows=10, batch_ms=1000)
    assert b.oldest_held("s", 0) is None
    for off in (3, 4, 5):
        b.add(("s", 0), off, [off], 0.0)
    assert b.oldest_held("s", 0) == 3
    batch = b.cut(("s", 0), 0.0, final=True)
    b.done(batch, 1.0)
    assert b.oldest_held("s", 0) is None and b.oldest_held("s", 1) is None


def test_the_token_tells_other_records_at_the_same_offsets_from_a_retry():
    """A re-created topic starts again at offset 0: a batch of other records there is not a repeat of the lost
    topic's batch; the same records read again (a retry, a re-cut after a crash) are."""
    rows = [["line", "call-a", "CUSTOMER", seq, seq * 1000] for seq in range(4)]
    again = [list(r) for r in rows]
    assert Batch("scores", 0, 0, 3, rows).token == Batch("scores", 0, 0, 3, again).token
    other_call = [["line", "call-b", *r[2:]] for r in rows]
    other_seq = rows[:3] + [["line", "call-a", "CUSTOMER", 9, 9000]]
    tokens = {Batch("scores", 0, 0, 3, r).token for r in (rows, other_call, other_seq, rows[:3])}
    assert len(tokens) == 4
    wide = [r + ["logits differ beyond the identity"] for r in rows]
    assert Batch("scores", 0, 0, 3, wide).token == Batch("scores", 0, 0, 3, rows).token


def test_partitions_take_turns_so_a_backlog_does_not_hold_the_others_back():
    """After a restart with a backlog, each partition's first batch (the one a recorded cut reproduces) is
    written before any partition's second: the order is round-robin, per partition still by offset."""
    b = Batcher(batch_rows=10, batch_ms=1000)
    other = ("scores", 1)
    _fill(b, range(0, 30))
    _fill(b, range(100, 120), tp=other)
    got = [(x.partition, x.first, x.last) for x in _drain(b, 0.0)]
    assert got == [(0, 0, 9), (1, 100, 109), (0, 10, 19), (1, 110, 119), (0, 20, 29)]
