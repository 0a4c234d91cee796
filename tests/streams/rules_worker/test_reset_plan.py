"""The reset plan, its printout and the refusal rule (pure), and the changelog topic's name."""
from __future__ import annotations

import pytest

from emowatch.streams.rules_worker.config import app_id, changelog_topic
from emowatch.streams.rules_worker.reset_plan import PartitionMove, ResetError, ResetPlan, refuse_if_active
from emowatch.streams.settings import KafkaSettings, Settings


def plan(**kw):
    moves = [PartitionMove(1, 40, 20, 40), PartitionMove(0, None, 5, 30), PartitionMove(2, 10, 25, 30)]
    base = dict(business_line="vip", group="p.emowatch-rules-vip", scores_topic="p.emowatch.scores.v1",
                changelog_topic="p.emowatch-rules-vip-calls-changelog", to_ms=0, moves=moves,
                live_keys={0: 3, 1: 0, 2: 2}, changelog_records=9)
    return ResetPlan(**{**base, **kw})


def test_the_printout_lists_every_partition_in_order_and_the_states_to_clear():
    lines = plan().lines(lambda ms: f"T{ms}")
    assert lines[0] == ("group p.emowatch-rules-vip: offsets on p.emowatch.scores.v1 -> first offset at or after T0 "
                        "(found by list-offsets)")
    assert lines[1] == "  partition 0: none -> 5 (end 30; +25 messages to read again)"
    assert lines[2] == "  partition 1: 40 -> 20 (end 40; +20 messages to read again)"
    assert lines[3] == "  partition 2: 10 -> 25 (end 30; skips 15 messages)"
    assert lines[4] == ("table state: 5 call state(s) to clear in p.emowatch-rules-vip-calls-changelog (9 records; "
                        "a tombstone per key) - p0: 3, p2: 2")


def test_a_missing_changelog_has_nothing_to_clear():
    last = plan(changelog_exists=False, live_keys={}, offsets_by="scan").lines(str)
    assert last[-1] == "table state: changelog p.emowatch-rules-vip-calls-changelog does not exist (nothing to clear)"
    assert "(found by scan)" in last[0]


@pytest.mark.parametrize("state, members", [("EMPTY", 0), ("DEAD", 0), ("empty", 0)])
def test_an_idle_group_may_be_reset(state, members):
    refuse_if_active("g", state, members)


@pytest.mark.parametrize("state, members", [("STABLE", 0), ("STABLE", 2), ("PREPARING_REBALANCE", 0),
                                            ("UNKNOWN", 0), ("EMPTY", 1)])
def test_a_group_with_members_or_in_another_state_is_refused(state, members):
    with pytest.raises(ResetError, match="stop every rules worker of this business line first"):
        refuse_if_active("g", state, members)


def test_the_changelog_topic_follows_faust_naming_for_the_business_lines_app():
    s = Settings(kafka=KafkaSettings(topic_prefix="t1."))
    assert changelog_topic(s, "vip") == f"{app_id(s, 'vip')}-calls-changelog" == "t1.emowatch-rules-vip-calls-changelog"
    assert changelog_topic(s, "*") == "t1.emowatch-rules-all-calls-changelog"
