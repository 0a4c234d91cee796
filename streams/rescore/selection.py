"""Which audio chunks a rescore reads, scores or uses as left context only. Pure.

A chunk is *scored* when it is in scope (business line, call ids) and its event time is in
``[from_ms, to_ms)``. Chunks in scope from ``warmup_ms`` before ``from_ms`` are read for left
context only (decoded and offered to the context store, never sent to the model), so the first
scored chunks of a call that started before ``--from`` get the same left context and flags as
in production. Reading stops at the end offsets captured at start, or once a partition shows a
chunk ``LATE_MS`` past ``to_ms`` (a chunk arriving later than that after its neighbours is not
rescored; the audio topic is written in near event-time order per call).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

LATE_MS = 10 * 60 * 1000
"""A partition is done once it holds a chunk this far past ``--to`` (lateness allowance of the audio topic)."""


def warmup_ms(context_s: float, max_chunk_s: float, reorder_timeout_s: float) -> int:
    """Event time read before ``--from`` so that the first scored chunk has its full left context:
    the context itself, one chunk that may start before it, and the reorder timeout that releases a
    call's first chunk read (it has seq > 0, so it waits like a chunk after a gap)."""
    return int(math.ceil((context_s + max_chunk_s + reorder_timeout_s) * 1000))


@dataclass(frozen=True)
class Selection:
    """The window and scope of one rescore."""

    from_ms: int
    to_ms: int | None = None
    business_line: str | None = None
    calls: frozenset[str] = field(default_factory=frozenset)
    warmup_ms: int = 0

    def __post_init__(self) -> None:
        if self.to_ms is not None and self.to_ms <= self.from_ms:
            raise ValueError(f"--to ({self.to_ms}) must be after --from ({self.from_ms})")
        if self.warmup_ms < 0:
            raise ValueError("warmup_ms must be >= 0")

    @property
    def read_from_ms(self) -> int:
        """Earliest event time read (left context of the first scored chunks)."""
        return self.from_ms - self.warmup_ms

    def in_scope(self, chunk: dict) -> bool:
        if self.business_line is not None and chunk.get("business_line", "default") != self.business_line:
            return False
        return not self.calls or chunk.get("call_id") in self.calls

    def scores(self, chunk: dict) -> bool:
        """In scope and inside ``[from_ms, to_ms)``."""
        t = chunk["event_time"]
        return self.in_scope(chunk) and t >= self.from_ms and (self.to_ms is None or t < self.to_ms)

    def context_only(self, chunk: dict) -> bool:
        """In scope and in the warm-up before ``from_ms``: read for left context, not scored."""
        t = chunk["event_time"]
        return self.in_scope(chunk) and self.read_from_ms <= t < self.from_ms

    def past_end(self, event_time_ms: int) -> bool:
        """The partition that holds a chunk this late is done (only with ``to_ms``)."""
        return self.to_ms is not None and event_time_ms >= self.to_ms + LATE_MS
