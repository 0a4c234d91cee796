"""What ``emowatch rules reset`` changes, as data: the plan, its printout, and when to refuse. Pure.

Like Kafka Streams' application reset tool, for one business line's rules workers: their consumer
group's offsets on the scores topic move to the first offset at or after a time, and their table
state (the call table's changelog topic) is cleared, so the restarted workers re-evaluate the window
from empty state and re-produce its alerts with the same alert ids. Workers must be stopped first.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from emowatch.topics.errors import EmowatchError

IDLE_STATES = ("EMPTY", "DEAD")
"""Consumer-group states in which nothing consumes (a group that never existed reads as DEAD)."""


class ResetError(EmowatchError, RuntimeError):
    """A reset was refused (workers running) or could not be applied."""


@dataclass(frozen=True)
class PartitionMove:
    partition: int
    current: int | None  # committed offset (None: the group committed nothing here)
    new: int
    end: int  # high watermark when planned

    @property
    def reprocess(self) -> int:
        """Messages the workers will read again (or skip, when negative: moving forward)."""
        return (self.end if self.current is None else self.current) - self.new


@dataclass
class ResetPlan:
    business_line: str
    group: str
    scores_topic: str
    changelog_topic: str
    to_ms: int
    moves: list[PartitionMove]
    live_keys: dict[int, int] = field(default_factory=dict)  # changelog partition -> keys with a state to clear
    changelog_records: int = 0  # records in the changelog (tombstones are added: compaction removes them)
    changelog_exists: bool = True
    offsets_by: str = "list-offsets"  # or "scan" (the broker's ListOffsets by timestamp was wrong or unusable)

    @property
    def keys_to_clear(self) -> int:
        return sum(self.live_keys.values())

    def lines(self, format_ms) -> list[str]:
        """Human-readable plan (``format_ms``: epoch ms -> text)."""
        out = [f"group {self.group}: offsets on {self.scores_topic} -> first offset at or after "
               f"{format_ms(self.to_ms)} (found by {self.offsets_by})"]
        for m in sorted(self.moves, key=lambda m: m.partition):
            cur = "none" if m.current is None else str(m.current)
            out.append(f"  partition {m.partition}: {cur} -> {m.new} (end {m.end}; {m.reprocess:+d} messages to "
                       f"read again)" if m.reprocess >= 0 else
                       f"  partition {m.partition}: {cur} -> {m.new} (end {m.end}; skips {-m.reprocess} messages)")
        if not self.changelog_exists:
            out.append(f"table state: changelog {self.changelog_topic} does not exist (nothing to clear)")
        else:
            per = ", ".join(f"p{p}: {n}" for p, n in sorted(self.live_keys.items()) if n) or "none"
            out.append(f"table state: {self.keys_to_clear} call state(s) to clear in {self.changelog_topic} "
                       f"({self.changelog_records} records; a tombstone per key) - {per}")
        return out


def refuse_if_active(group: str, state: str, members: int) -> None:
    """ResetError unless the group is idle: moving a running group's offsets would be overwritten by its
    next commit, and its in-memory table would be written back to the changelog."""
    if members or state.upper() not in IDLE_STATES:
        raise ResetError(f"consumer group {group} is {state.lower()} with {members or 'unlisted'} member(s): stop "
                         "every rules worker of this business line first (after a kill, wait for the session "
                         "timeout to expire), then run the reset again; nothing was changed")
