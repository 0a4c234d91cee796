import pytest

from emowatch.streams.rescore.selection import LATE_MS, Selection, warmup_ms


def c(t, call="a", line="retail"):
    return {"call_id": call, "business_line": line, "event_time": t}


def test_window_scope_and_warm_up():
    s = Selection(10_000, 20_000, "retail", frozenset({"a"}), warmup_ms=3_000)
    assert s.read_from_ms == 7_000
    assert [s.scores(c(t)) for t in (9_999, 10_000, 19_999, 20_000)] == [False, True, True, False]
    assert [s.context_only(c(t)) for t in (6_999, 7_000, 9_999, 10_000)] == [False, True, True, False]
    assert not s.scores(c(12_000, call="b")) and not s.scores(c(12_000, line="vip"))
    assert not s.context_only(c(8_000, call="b"))
    assert not s.past_end(20_000 + LATE_MS - 1) and s.past_end(20_000 + LATE_MS)


def test_open_end_and_no_filters():
    s = Selection(0)
    assert s.scores(c(10**13, call="any", line="any")) and not s.past_end(10**13)


def test_warm_up_covers_context_one_chunk_and_the_reorder_timeout():
    assert warmup_ms(2.0, 5.0, 1.0) == 8_000 and warmup_ms(0.0, 0.5, 0.25) == 750


def test_bad_windows_are_refused():
    with pytest.raises(ValueError, match="after --from"):
        Selection(10, 10)
    with pytest.raises(ValueError):
        Selection(0, warmup_ms=-1)
