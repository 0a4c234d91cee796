"""Ended calls the rules worker still remembers, and when to forget them.

An ended call's state is tiny (``{seq, t, end}`` per role) but is kept for a while so that
redelivered messages of the call are still recognised as duplicates. After ``retention_s``
(wall-clock: this is housekeeping, not rule evaluation) the worker deletes it from the table.
Faust allows table writes only while handling an event, and a changelog record goes to the
event's partition, so calls are queued per partition and deleted while handling a message of
the same partition. Pure: the caller passes the time.
"""
from __future__ import annotations

from collections import deque

__all__ = ["FinishedCalls"]


class FinishedCalls:
    """Per-partition FIFO of ``(ended_at, call_id)``; ``due`` pops those older than the retention."""

    def __init__(self, retention_s: float) -> None:
        if retention_s <= 0:
            raise ValueError(f"retention_s must be > 0, got {retention_s}")
        self.retention_s = retention_s
        self._queues: dict[int, deque[tuple[float, str]]] = {}

    def add(self, partition: int, call_id: str, now: float) -> None:
        """Remember that ``call_id`` (on ``partition``) ended at ``now``."""
        self._queues.setdefault(partition, deque()).append((now, call_id))

    def due(self, partition: int, now: float, limit: int = 64) -> list[str]:
        """Calls of ``partition`` that ended at least ``retention_s`` before ``now`` (at most ``limit``)."""
        queue = self._queues.get(partition)
        out: list[str] = []
        while queue and len(out) < limit and queue[0][0] + self.retention_s <= now:
            out.append(queue.popleft()[1])
        return out

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())
