"""``emowatch rules reset``: plan and apply the reset of one business line's rules workers (Kafka side).

Plan: the group's committed offsets on the scores topic, the first offset at or after the time per
partition (``time_scan``), and the call-table changelog's keys that hold a state. Apply (only when the
group is idle, checked again right before): move the offsets first - the broker refuses that for a
group with members, so a worker started meanwhile leaves everything unchanged - then tombstone every
live key of the changelog. Both steps are idempotent: after a failure, run the reset again.
"""
from __future__ import annotations

from emowatch.streams.kafka.admin import topic_partitions
from emowatch.streams.kafka.changelog import live_keys, tombstone
from emowatch.streams.kafka.clients import base_config, topics_for
from emowatch.streams.kafka.consumer_groups import committed_offsets, group_state, move_offsets
from emowatch.streams.kafka.time_scan import offsets_at_or_after
from emowatch.streams.rules_worker.config import app_id, changelog_topic
from emowatch.streams.rules_worker.reset_plan import PartitionMove, ResetError, ResetPlan, refuse_if_active
from emowatch.streams.settings import Settings


def plan_reset(settings: Settings, business_line: str, to_ms: int) -> tuple[ResetPlan, dict[int, list[bytes]]]:
    """The plan and the changelog keys to tombstone. Changes nothing."""
    k = settings.kafka
    group, scores, changelog = app_id(settings, business_line), topics_for(k).scores, changelog_topic(settings,
                                                                                                      business_line)
    targets, ends, how = offsets_at_or_after(k, scores, to_ms)
    current = committed_offsets(k, group, scores, sorted(ends))
    extra = {key: v for key, v in base_config(k).items() if key != "bootstrap.servers"}
    exists = changelog in topic_partitions(k.bootstrap_servers, extra)
    keys, records = live_keys(k, changelog) if exists else ({}, 0)
    moves = [PartitionMove(p, current.get(p), targets[p], ends[p]) for p in sorted(ends)]
    plan = ResetPlan(business_line, group, scores, changelog, to_ms, moves, {p: len(v) for p, v in keys.items()},
                     records, exists, how)
    return plan, keys


def check_idle(settings: Settings, group: str) -> None:
    """ResetError when the group has members (workers running)."""
    refuse_if_active(group, *group_state(settings.kafka, group))


def apply_reset(settings: Settings, plan: ResetPlan, keys: dict[int, list[bytes]]) -> int:
    """Move the offsets, then clear the table state; the number of tombstones written."""
    check_idle(settings, plan.group)
    try:
        move_offsets(settings.kafka, plan.group, plan.scores_topic, {m.partition: m.new for m in plan.moves})
    except RuntimeError as exc:
        raise ResetError(f"{exc}; nothing was changed (are workers running?)") from None
    try:
        return tombstone(settings.kafka, plan.changelog_topic, keys) if keys else 0
    except RuntimeError as exc:
        raise ResetError(f"offsets moved, but clearing the table state failed: {exc}; run the reset again "
                         "before starting the workers") from None
