"""Offset bookkeeping for at-least-once delivery: commit only what is fully delivered. Pure."""
from __future__ import annotations

from collections import defaultdict


class OffsetTracker:
    """Tracks in-flight input offsets per (topic, partition).

    An input message may fan out into several outputs (e.g. stereo -> two
    roles); it is done when all of them are acknowledged. ``committable``
    returns, per partition, the next offset to commit: one past the highest
    offset below which every message is done.
    """

    def __init__(self) -> None:
        self._pending: dict[tuple[str, int], dict[int, int]] = defaultdict(dict)
        self._high: dict[tuple[str, int], int] = {}
        self._committed: dict[tuple[str, int], int] = {}

    def add(self, topic: str, partition: int, offset: int, outputs: int = 1) -> None:
        tp = (topic, partition)
        if outputs > 0:
            self._pending[tp][offset] = self._pending[tp].get(offset, 0) + outputs
        self._high[tp] = max(self._high.get(tp, -1), offset)

    def done(self, topic: str, partition: int, offset: int, n: int = 1) -> None:
        pend = self._pending.get((topic, partition))
        if pend is None or offset not in pend:
            return
        pend[offset] -= n
        if pend[offset] <= 0:
            del pend[offset]

    def in_flight(self) -> int:
        return sum(len(p) for p in self._pending.values())

    def position(self, topic: str, partition: int) -> int | None:
        """Next offset to commit for a partition (end of the delivered prefix); None if unknown."""
        tp = (topic, partition)
        if tp not in self._high:
            return None
        pend = self._pending.get(tp)
        return min(pend) if pend else self._high[tp] + 1

    def committable(self) -> dict[tuple[str, int], int]:
        """New commit positions (next offset to read) that moved since the last call."""
        out = {}
        for tp in self._high:
            pos = self.position(*tp)
            if pos is not None and pos > self._committed.get(tp, -1):
                out[tp] = pos
                self._committed[tp] = pos
        return out

    def forget(self, topic: str, partition: int) -> None:
        """Drop a revoked partition's bookkeeping."""
        tp = (topic, partition)
        self._pending.pop(tp, None)
        self._high.pop(tp, None)
        self._committed.pop(tp, None)
