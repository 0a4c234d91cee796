"""Combined conditions on arrays of points: all/any/not, count, if/not_followed_by, scope; split = whole."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emowatch.rules.tree import All, AnyOf, Context, Count, Leaf, Not, NotFollowedBy, in_span

HOP = 200


def ctx(times, leaves, mem):
    def leaf(i):
        h, v = leaves[i]
        return np.where(h, 1.0, 0.0)[None], np.asarray(h, dtype=bool)[None], np.asarray(v, dtype=bool)[None]
    return Context(np.asarray(times, dtype=np.int64)[None], leaf, None, [mem])


def evaluate(node, c):
    from emowatch.rules.tree import evaluate as ev
    return tuple(a[0] for a in ev(node, c))


def times(n, first=1):
    return [HOP * (first + j) for j in range(n)]


T, F = True, False


def test_all_any_not_and_their_validity() -> None:
    a = ([T, T, F, F, T], [T, T, T, F, T])
    b = ([T, F, T, F, F], [T, T, T, T, F])
    c = ctx(times(5), [a, b], {})
    _, h, v = evaluate(All((Leaf(0), Leaf(1))), c)
    assert h.tolist() == [T, F, F, F, F] and v.tolist() == [T, T, T, F, F]
    _, h, v = evaluate(AnyOf((Leaf(0), Leaf(1))), c)
    assert h.tolist() == [T, T, T, F, T] and v.tolist() == [T, T, T, T, T]
    _, h, v = evaluate(Not(Leaf(0)), c)
    assert h.tolist() == [F, F, T, F, F] and v.tolist() == [T, T, T, F, T]  # not scored: not negated either


def test_count_needs_k_starts_within_the_window_and_forgets_at_the_border() -> None:
    x = [T, F, T, T, F, T, F, F, F, F, F]
    node = Count(Leaf(0), 3, 5 * HOP, "0")
    mem: dict = {}
    values, h, _ = evaluate(node, ctx(times(len(x)), [(x, [T] * len(x))], mem))
    # starts at 200, 600 and 1200; the window is (t - 1000, t]: 200 leaves at 1200, 600 at 1600, 1200 at 2200
    assert values.tolist() == [1, 1, 2, 2, 2, 2, 2, 1, 1, 1, 0]
    assert not h.any()
    node = Count(Leaf(0), 2, 5 * HOP, "0")
    mem = {}
    _, h, _ = evaluate(node, ctx(times(len(x)), [(x, [T] * len(x))], mem))
    assert h.tolist() == [F, F, T, T, T, T, T, F, F, F, F]
    assert mem == {}  # nothing left to remember


def test_a_held_condition_is_one_episode_across_messages() -> None:
    node = Count(Leaf(0), 2, 10_000, "0")
    mem: dict = {}
    _, h1, _ = evaluate(node, ctx(times(3), [([F, T, T], [T] * 3)], mem))
    _, h2, _ = evaluate(node, ctx(times(3, 4), [([T, T, F], [T] * 3)], mem))
    assert not h1.any() and not h2.any() and mem["0"]["e"] == [400]


def test_not_followed_by_holds_from_the_deadline_until_the_second_condition() -> None:
    a = [F, T, T, T, T, T, T, T, F, F]
    b = [F, F, F, F, F, F, F, F, T, F]
    node = NotFollowedBy(Leaf(0), Leaf(1), 3 * HOP, "0")
    mem: dict = {}
    values, h, _ = evaluate(node, ctx(times(10), [(a, [T] * 10), (b, [T] * 10)], mem))
    # a starts at 400; the deadline 1000 (point 5) passes without b; b at 1800 ends it
    assert h.tolist() == [F, F, F, F, T, T, T, T, F, F]
    assert values[4] == pytest.approx(0.6) and mem == {}


def test_not_followed_by_in_time_does_not_hold() -> None:
    a = [T, T, F, F, F, F]
    b = [F, F, T, F, F, F]
    mem: dict = {}
    _, h, _ = evaluate(NotFollowedBy(Leaf(0), Leaf(1), 3 * HOP, "0"), ctx(times(6), [(a, [T] * 6), (b, [T] * 6)], mem))
    assert not h.any() and mem == {}


def test_not_followed_by_at_the_deadline_point_exactly() -> None:
    a = [T, F, F, F, F]
    b = [F, F, F, T, F]  # b at the deadline point itself: it came in time
    mem: dict = {}
    _, h, _ = evaluate(NotFollowedBy(Leaf(0), Leaf(1), 3 * HOP, "0"), ctx(times(5), [(a, [T] * 5), (b, [T] * 5)], mem))
    assert not h.any()


def test_scope_span() -> None:
    t = np.array([0, 29_800, 30_000, 30_200])
    assert in_span(t, (0, 30_000)).tolist() == [T, T, T, F]
    assert in_span(t, None) is None


@settings(max_examples=60, deadline=None)
@given(a=st.lists(st.booleans(), min_size=2, max_size=60), b=st.lists(st.booleans(), min_size=60, max_size=60),
       cut=st.integers(min_value=1, max_value=59), within=st.integers(min_value=1, max_value=12))
def test_split_evaluation_equals_whole(a, b, cut, within) -> None:
    n = len(a)
    b = b[:n]
    cut = min(cut, n - 1)
    for node in (Count(Leaf(0), 2, within * HOP, "0"), NotFollowedBy(Leaf(0), Leaf(1), within * HOP, "0"),
                 All((Not(Leaf(1)), Count(Leaf(0), 2, within * HOP, "0")))):
        whole = evaluate(node, ctx(times(n), [(a, [T] * n), (b, [T] * n)], {}))
        mem: dict = {}
        first = evaluate(node, ctx(times(cut), [(a[:cut], [T] * cut), (b[:cut], [T] * cut)], mem))
        second = evaluate(node, ctx(times(n - cut, cut + 1), [(a[cut:], [T] * (n - cut)), (b[cut:], [T] * (n - cut))],
                                    mem))
        for k in range(3):
            assert np.concatenate((first[k], second[k])).tolist() == whole[k].tolist()
