"""Dynamic batching across calls: flush on ``max_batch`` or ``max_wait_ms``, length buckets,
bounded capacity. Pure: no Kafka, no torch. The caller decides what to do when it is full
(the inference agent pauses its partitions).
"""
from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Callable, Generic, Hashable, TypeVar

T = TypeVar("T")


class QueueFull(RuntimeError):
    """The batcher holds ``capacity`` items; drain before adding more."""


@dataclass
class _Entry(Generic[T]):
    item: T
    enqueued: float


class Batcher(Generic[T]):
    """Items are grouped by ``bucket_of(item)`` (e.g. window length) so a batch
    pads little. A bucket is due when it holds ``max_batch`` items or its oldest
    item has waited ``max_wait_ms``. ``pop_batch`` returns the due bucket with
    the oldest head (FIFO fairness across buckets)."""

    def __init__(self, *, max_batch: int, max_wait_ms: float, capacity: int,
                 bucket_of: Callable[[T], Hashable] = lambda _: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_batch < 1 or capacity < max_batch:
            raise ValueError("need 1 <= max_batch <= capacity")
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.capacity = capacity
        self._bucket_of = bucket_of
        self._clock = clock
        self._buckets: OrderedDict[Hashable, deque[_Entry[T]]] = OrderedDict()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def full(self) -> bool:
        return self._size >= self.capacity

    def put(self, item: T) -> None:
        if self.full:
            raise QueueFull(f"batcher holds {self._size} items (capacity {self.capacity})")
        key = self._bucket_of(item)
        self._buckets.setdefault(key, deque()).append(_Entry(item, self._clock()))
        self._size += 1

    def next_deadline(self) -> float | None:
        """Clock time at which the oldest item becomes due (None when empty)."""
        heads = [q[0].enqueued for q in self._buckets.values() if q]
        return min(heads) + self.max_wait if heads else None

    def _due_keys(self, now: float, force: bool) -> list[Hashable]:
        due = [k for k, q in self._buckets.items()
               if q and (force or len(q) >= self.max_batch or now - q[0].enqueued >= self.max_wait)]
        return sorted(due, key=lambda k: self._buckets[k][0].enqueued)

    def due(self, now: float | None = None) -> bool:
        return bool(self._due_keys(self._clock() if now is None else now, False))

    def pop_batch(self, *, force: bool = False, now: float | None = None) -> tuple[list[T], list[float]]:
        """The next due batch (items, their queue delays in seconds); empty if none is due.
        ``force`` flushes the oldest bucket regardless of size and age (shutdown, drain)."""
        now = self._clock() if now is None else now
        keys = self._due_keys(now, force)
        if not keys:
            return [], []
        q = self._buckets[keys[0]]
        entries = [q.popleft() for _ in range(min(self.max_batch, len(q)))]
        if not q:
            del self._buckets[keys[0]]
        self._size -= len(entries)
        return [e.item for e in entries], [now - e.enqueued for e in entries]
