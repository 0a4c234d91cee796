"""When the rules worker writes its held states and acknowledges: enough messages, too old, or urgent."""
from __future__ import annotations

import pytest

from emowatch.streams.rules_worker.held import HeldMessages


def test_nothing_held_is_never_due():
    held = HeldMessages(max_messages=2, max_age_s=1.0)
    assert not held.due(100.0, urgent=True) and held.take() == [] and len(held) == 0


def test_due_by_count_by_age_or_urgency_and_take_empties_in_order():
    held = HeldMessages(max_messages=4, max_age_s=1.0)
    held.add(["a", "b"], now=10.0)
    assert not held.due(10.5) and held.due(10.5, urgent=True)
    held.add(["c"], now=10.9)
    assert not held.due(10.99) and held.due(11.0)  # the oldest message's age counts, not the latest's
    held.add(["d"], now=10.95)
    assert held.due(10.96) and len(held) == 4
    assert held.take() == ["a", "b", "c", "d"] and len(held) == 0
    held.add(["e"], now=20.0)  # a new hold starts its own clock
    assert not held.due(20.5) and held.due(21.0)


@pytest.mark.parametrize(("n", "age"), [(0, 1.0), (3, 0.0)])
def test_bad_limits_fail(n, age):
    with pytest.raises(ValueError, match="max_messages"):
        HeldMessages(max_messages=n, max_age_s=age)
