"""Messages the rules worker has evaluated but not acknowledged yet, and when to write and acknowledge them.

A call's state is written to the table (one changelog record each) and the messages it records are
acknowledged not after every batch but once every :data:`FLUSH_S` seconds or ``max_messages`` messages,
whichever comes first, and at once while Faust rebalances or stops (it waits for every message in flight to be
acknowledged). A changelog record costs the producer more CPU than evaluating several messages (~100 us here:
``docs/benchmarks.md``), and a call with one message per second has several messages in a flush but often only one
in a batch. Acknowledging only after the write keeps the crash guarantee (``batch.py``); alerts still leave with
every batch. Pure: the caller passes the clock.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["FLUSH_S", "HeldMessages"]

FLUSH_S = 0.5
"""Longest a message waits for its call's state to be written and for its acknowledgement, seconds."""


class HeldMessages:
    """Evaluated messages (Faust events) since the last flush, oldest first."""

    def __init__(self, max_messages: int, max_age_s: float = FLUSH_S) -> None:
        if max_messages < 1 or max_age_s <= 0:
            raise ValueError(f"max_messages must be >= 1 and max_age_s > 0, got {max_messages}, {max_age_s}")
        self.max_messages, self.max_age_s = max_messages, max_age_s
        self._events: list[Any] = []
        self._since = 0.0

    def add(self, events: Sequence[Any], now: float) -> None:
        """Hold a handled batch's events (handled at ``now``)."""
        if not self._events:
            self._since = now
        self._events.extend(events)

    def due(self, now: float, *, urgent: bool = False) -> bool:
        """Whether to write the states and acknowledge now: something is held and it is ``urgent`` (a rebalance,
        a stop), or enough messages, or the oldest held too long."""
        return bool(self._events) and (urgent or len(self._events) >= self.max_messages
                                       or now - self._since >= self.max_age_s)

    def take(self) -> list[Any]:
        """The held events, in the order they were handled; holds nothing after."""
        events, self._events = self._events, []
        return events

    def __len__(self) -> int:
        return len(self._events)
