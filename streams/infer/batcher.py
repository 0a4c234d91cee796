"""Dynamic batching across calls, in the style of Ray Serve's ``_BatchQueue``.

``put(item)`` returns a per-item :class:`~concurrent.futures.Future`; a batch is due
when a bucket holds ``max_batch`` items or its oldest item has waited ``max_wait_ms``;
``pop_batch`` hands out a :class:`Batch` whose ``resolve(results)`` completes each
item's future (or ``fail(exc)`` fails them all). Capacity is bounded: ``put`` on a full
batcher raises :class:`QueueFull`, and the caller applies backpressure (the inference
agent pauses its partitions).

Pure: no Kafka, no torch, no threads of its own. The clock is injectable so tests
drive time explicitly. Not thread-safe: one thread owns it (the agent's poll loop);
completed futures may be read from any thread.
"""
from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from emowatch.topics.errors import EmowatchError

T = TypeVar("T")


class QueueFull(EmowatchError, RuntimeError):
    """The batcher holds ``capacity`` items; drain before adding more."""


@dataclass
class _Entry(Generic[T]):
    item: T
    future: Future
    enqueued: float


@dataclass
class Batch(Generic[T]):
    """Items popped together, their futures and how long each waited (seconds)."""

    items: list[T] = field(default_factory=list)
    futures: list[Future] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)

    def resolve(self, results: Sequence[object]) -> None:
        """Complete each item's future with its result (same order and length as ``items``)."""
        if len(results) != len(self.items):
            self.fail(RuntimeError(f"batch of {len(self.items)} got {len(results)} results"))
            return
        for fut, res in zip(self.futures, results):
            if not fut.done():
                fut.set_result(res)

    def fail(self, exc: BaseException) -> None:
        """Fail every item's future that is not complete yet."""
        for fut in self.futures:
            if not fut.done():
                fut.set_exception(exc)


class Batcher(Generic[T]):
    """Bounded queue that forms batches on size or deadline.

    Items are grouped by ``bucket_of(item)`` (default: one bucket, pure FIFO) so a
    batch may be restricted to similar items (e.g. window lengths). A bucket is due
    when it holds ``max_batch`` items or its oldest item has waited ``max_wait_ms``;
    ``pop_batch`` returns the due bucket with the oldest head (FIFO fairness across
    buckets).
    """

    def __init__(self, *, max_batch: int, max_wait_ms: float, capacity: int,
                 bucket_of: Callable[[T], Hashable] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_batch < 1 or capacity < max_batch:
            raise ValueError(f"need 1 <= max_batch <= capacity (got max_batch={max_batch}, capacity={capacity})")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0 (got {max_wait_ms})")
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.capacity = capacity
        self._bucket_of = bucket_of or (lambda _item: None)
        self._clock = clock
        self._buckets: OrderedDict[Hashable, deque[_Entry[T]]] = OrderedDict()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def full(self) -> bool:
        return self._size >= self.capacity

    @property
    def free(self) -> int:
        """How many more items fit."""
        return max(0, self.capacity - self._size)

    def put(self, item: T, *, force: bool = False) -> Future:
        """Queue ``item``; the returned future completes when its batch is resolved.

        Raises :class:`QueueFull` at capacity unless ``force`` (for items the caller has
        already accepted upstream, e.g. chunks released from a reorder buffer; the caller
        must then stop feeding, i.e. pause its input, until the queue drains)."""
        if self.full and not force:
            raise QueueFull(f"batcher holds {self._size} items (capacity {self.capacity})")
        fut: Future = Future()
        key = self._bucket_of(item)
        self._buckets.setdefault(key, deque()).append(_Entry(item, fut, self._clock()))
        self._size += 1
        return fut

    def next_deadline(self) -> float | None:
        """Clock time at which the oldest item becomes due (None when empty)."""
        heads = [q[0].enqueued for q in self._buckets.values() if q]
        return min(heads) + self.max_wait if heads else None

    def _due_keys(self, now: float, force: bool) -> list[Hashable]:
        due = [k for k, q in self._buckets.items()
               if q and (force or len(q) >= self.max_batch or now - q[0].enqueued >= self.max_wait)]
        return sorted(due, key=lambda k: self._buckets[k][0].enqueued)

    def due(self, now: float | None = None) -> bool:
        """Whether ``pop_batch`` would return a non-empty batch now."""
        return bool(self._due_keys(self._clock() if now is None else now, False))

    def pop_batch(self, *, force: bool = False, now: float | None = None) -> Batch[T]:
        """The next due batch (empty, falsy, if none is due).

        ``force`` flushes the oldest bucket regardless of size and age (drain, shutdown).
        """
        now = self._clock() if now is None else now
        keys = self._due_keys(now, force)
        if not keys:
            return Batch()
        q = self._buckets[keys[0]]
        entries = [q.popleft() for _ in range(min(self.max_batch, len(q)))]
        if not q:
            del self._buckets[keys[0]]
        self._size -= len(entries)
        return Batch([e.item for e in entries], [e.future for e in entries], [now - e.enqueued for e in entries])

    def cancel_all(self, exc: BaseException | None = None) -> int:
        """Drop every queued item, failing its future (``exc`` or a RuntimeError); returns the count."""
        exc = exc or RuntimeError("batcher cancelled")
        n = 0
        for q in self._buckets.values():
            for e in q:
                if not e.future.done():
                    e.future.set_exception(exc)
                n += 1
        self._buckets.clear()
        self._size = 0
        return n
