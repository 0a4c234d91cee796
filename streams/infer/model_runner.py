"""Runs one batch at a time on a model function, optionally in its own thread.

The inference agent's poll thread keeps consuming, decoding and publishing while the
model computes the current batch (torch releases the GIL inside its kernels), so Kafka
I/O overlaps model time; on a GPU the CPU work of batch *k-1* overlaps the GPU work of
batch *k*. Completed batches are handed back to the poll thread through
:meth:`completed` / :meth:`wait` in submission order, so every Kafka call stays on the
poll thread.

One slot only: the poll thread submits a new batch once the previous one is collected.
While the model is busy, new items accumulate in the batcher and form the next, larger
batch (continuous dynamic batching).

Pure: no Kafka, no torch (the model function is injected).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from emowatch.streams.infer.batcher import Batch

T = TypeVar("T")
log = logging.getLogger("emowatch.infer.runner")


@dataclass
class Completed(Generic[T]):
    """A batch the model has finished: results (one per item, same order) or the error that failed it."""

    batch: Batch[T]
    results: list[object] | None
    error: BaseException | None
    model_s: float


class ModelRunner(Generic[T]):
    """Runs ``fn(items) -> results`` for one batch at a time; resolves the batch's futures."""

    def __init__(self, fn: Callable[[Sequence[T]], list[object]], *, threaded: bool = True,
                 name: str = "model-runner") -> None:
        self._fn = fn
        self._done: queue.SimpleQueue[Completed[T]] = queue.SimpleQueue()
        self._inbox: queue.SimpleQueue[Batch[T] | None] = queue.SimpleQueue()
        self._busy = False
        self._thread: threading.Thread | None = None
        if threaded:
            self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
            self._thread.start()

    @property
    def busy(self) -> bool:
        """A batch was submitted and its completion not collected yet."""
        return self._busy

    @property
    def alive(self) -> bool:
        return self._thread is None or self._thread.is_alive()

    def submit(self, batch: Batch[T]) -> None:
        """Start ``batch`` (the previous one must have been collected)."""
        if self._busy:
            raise RuntimeError("model runner is busy; collect the running batch first")
        if not batch:
            return
        self._busy = True
        if self._thread is None:
            self._done.put(self._run(batch))
        else:
            self._inbox.put(batch)

    def completed(self) -> list[Completed[T]]:
        """Finished batches not collected yet (at most one), without blocking."""
        out = []
        while True:
            try:
                out.append(self._done.get_nowait())
            except queue.Empty:
                break
        if out:
            self._busy = False
        return out

    def wait(self, timeout: float | None = None) -> Completed[T] | None:
        """Block until the running batch finishes (None on timeout or when nothing runs)."""
        if not self._busy:
            return None
        try:
            done = self._done.get(timeout=timeout)
        except queue.Empty:
            return None
        self._busy = False
        return done

    def close(self, timeout: float = 30.0) -> None:
        """Stop the thread after the running batch (collect it first to see its results)."""
        if self._thread is not None and self._thread.is_alive():
            self._inbox.put(None)
            self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            batch = self._inbox.get()
            if batch is None:
                return
            self._done.put(self._run(batch))

    def _run(self, batch: Batch[T]) -> Completed[T]:
        t0 = time.perf_counter()
        try:
            results = list(self._fn(batch.items))
            if len(results) != len(batch):
                raise RuntimeError(f"model returned {len(results)} results for {len(batch)} items")
        except Exception as exc:  # noqa: BLE001 - errors are data: the batch's items are dead-lettered
            log.exception("model batch of %d items failed", len(batch))
            batch.fail(exc)
            return Completed(batch, None, exc, time.perf_counter() - t0)
        dt = time.perf_counter() - t0
        batch.resolve(results)
        return Completed(batch, results, None, dt)
