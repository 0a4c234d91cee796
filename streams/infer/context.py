"""Per call+role streaming context: seq ordering, a small reorder buffer and a rolling
left-context buffer. Pure (numpy only); time is whatever monotonic clock the caller passes.

For every (call_id, role) the store expects ``seq`` 0, 1, 2, ...:

* the expected seq is admitted at once, with the last ``context_s`` seconds of audio as
  left context; held chunks that became contiguous are released right after it;
* a seq below the expected one (already scored) or equal to a held one is skipped and
  counted (``skipped``);
* a seq above the expected one is *held* (reorder buffer) until the missing chunks
  arrive. The gap becomes final when more than ``reorder_max`` chunks are held or the
  oldest held chunk has waited ``reorder_timeout_s`` (:meth:`flush_expired`); the lowest
  held chunk is then released with ``gap_before=True`` and the context reset;
* ``end_of_call`` ends the context (a small tombstone keeps the next seq, so late
  duplicates of an ended call are still recognised); idle contexts are evicted.

Memory per active call+role is bounded by ``context_s`` of audio plus at most
``reorder_max`` held chunks.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from emowatch.topics.model_io import SAMPLE_RATE

Key = tuple[str, str]
Status = Literal["admitted", "held", "duplicate", "old"]
_OVERHEAD_BYTES = 200  # rough per-context bookkeeping (dataclass, dict entries)


@dataclass
class Admitted:
    """A chunk released for scoring: the model window and how many trailing samples are its own."""

    token: Any  # what the caller passed to offer() (e.g. the source message)
    call_id: str
    role: str
    seq: int
    window: np.ndarray
    emit_samples: int
    gap_before: bool


@dataclass
class Offer:
    """Result of :meth:`ContextStore.offer`: chunks now ready (in seq order) and what happened to this one."""

    released: list[Admitted]
    status: Status


@dataclass
class _Held:
    audio: np.ndarray
    token: Any
    end_of_call: bool
    since: float


@dataclass
class _CallCtx:
    next_seq: int
    buffer: np.ndarray
    last_seen: float
    partition: int | None
    held: dict[int, _Held] = field(default_factory=dict)


@dataclass
class _Ended:
    next_seq: int
    partition: int | None
    last_seen: float


class ContextStore:
    """Rolling buffers of the last ``context_s`` seconds per (call_id, role), with seq ordering."""

    def __init__(self, context_s: float = 2.0, *, reorder_max: int = 4, reorder_timeout_s: float = 1.0) -> None:
        if reorder_max < 0 or reorder_timeout_s < 0:
            raise ValueError("reorder_max and reorder_timeout_s must be >= 0")
        self.context_s = context_s
        self.reorder_max = reorder_max
        self.reorder_timeout_s = reorder_timeout_s
        self.contexts: dict[Key, _CallCtx] = {}
        self.ended: dict[Key, _Ended] = {}
        self._holding: set[Key] = set()
        self.skipped = 0  # duplicates and older seqs
        self.gaps = 0  # chunks released with gap_before
        self.reordered = 0  # chunks that were held and released in order

    @property
    def context_samples(self) -> int:
        return int(round(self.context_s * SAMPLE_RATE))

    # ---- the one entry point for a chunk --------------------------------------------------------
    def offer(self, call_id: str, role: str, seq: int, audio: np.ndarray, *, now: float, token: Any = None,
              end_of_call: bool = False, partition: int | None = None) -> Offer:
        """Offer one chunk; returns the chunks released for scoring (in seq order) and its status."""
        key = (call_id, role)
        ctx = self.contexts.get(key)
        if ctx is None:
            tomb = self.ended.get(key)
            if tomb is not None and seq < tomb.next_seq:
                tomb.last_seen = now
                self.skipped += 1
                return Offer([], "old")
            start = 0 if tomb is None else tomb.next_seq
            self.ended.pop(key, None)
            ctx = self.contexts[key] = _CallCtx(start, np.zeros(0, np.float32), now, partition)
        ctx.last_seen = now
        ctx.partition = partition if partition is not None else ctx.partition
        if seq < ctx.next_seq:
            self.skipped += 1
            return Offer([], "old")
        if seq in ctx.held:
            self.skipped += 1
            return Offer([], "duplicate")
        if seq == ctx.next_seq:
            out = [self._admit(key, ctx, seq, audio, token, gap=False)]
            if end_of_call:
                out += self._end(key, ctx)
            else:
                out += self._release_contiguous(key, ctx)
            return Offer(out, "admitted")
        ctx.held[seq] = _Held(audio, token, end_of_call, now)
        self._holding.add(key)
        out = []
        while len(ctx.held) > self.reorder_max:  # the gap is final: too much is waiting behind it
            out += self._release_lowest(key, ctx)
        if key in self.contexts and seq in ctx.held:
            return Offer(out, "held")
        return Offer(out, "admitted")

    # ---- releasing held chunks ------------------------------------------------------------------
    def next_hold_deadline(self) -> float | None:
        """Clock time at which the oldest held chunk's gap becomes final (None when nothing is held)."""
        times = [_oldest(self.contexts[k]) for k in self._holding]
        return min(times) + self.reorder_timeout_s if times else None

    def held_count(self) -> int:
        return sum(len(self.contexts[k].held) for k in self._holding)

    def flush_expired(self, now: float) -> list[Admitted]:
        """Release held chunks whose gap is final (held >= ``reorder_timeout_s``), in seq order."""
        out: list[Admitted] = []
        for key in list(self._holding):
            ctx = self.contexts.get(key)
            while ctx is not None and ctx.held and now - _oldest(ctx) >= self.reorder_timeout_s:
                out += self._release_lowest(key, ctx)
                ctx = self.contexts.get(key)
        return out

    def _release_lowest(self, key: Key, ctx: _CallCtx) -> list[Admitted]:
        seq = min(ctx.held)
        h = ctx.held.pop(seq)
        out = [self._admit(key, ctx, seq, h.audio, h.token, gap=True)]
        out += self._end(key, ctx) if h.end_of_call else self._release_contiguous(key, ctx)
        return out

    def _release_contiguous(self, key: Key, ctx: _CallCtx) -> list[Admitted]:
        out = []
        while ctx.next_seq in ctx.held:
            seq = ctx.next_seq
            h = ctx.held.pop(seq)
            self.reordered += 1
            out.append(self._admit(key, ctx, seq, h.audio, h.token, gap=False))
            if h.end_of_call:
                return out + self._end(key, ctx)
        if not ctx.held:
            self._holding.discard(key)
        return out

    def _admit(self, key: Key, ctx: _CallCtx, seq: int, audio: np.ndarray, token: Any, *, gap: bool) -> Admitted:
        if gap or (seq != ctx.next_seq):
            gap = True
            ctx.buffer = np.zeros(0, np.float32)
            self.gaps += 1
        window = np.concatenate([ctx.buffer, audio]) if ctx.buffer.size else audio
        keep = self.context_samples
        ctx.buffer = window[-keep:].copy() if keep else np.zeros(0, np.float32)
        ctx.next_seq = seq + 1
        return Admitted(token, key[0], key[1], seq, window, len(audio), gap)

    def _end(self, key: Key, ctx: _CallCtx) -> list[Admitted]:
        """End of call: anything still held (seq after the end, unusual) is released, then the context goes."""
        out = []
        for seq in sorted(ctx.held):
            h = ctx.held.pop(seq)
            out.append(self._admit(key, ctx, seq, h.audio, h.token, gap=seq != ctx.next_seq))
        self._holding.discard(key)
        self.contexts.pop(key, None)
        self.ended[key] = _Ended(ctx.next_seq, ctx.partition, ctx.last_seen)
        return out

    # ---- bounded memory --------------------------------------------------------------------------
    def end(self, call_id: str, role: str) -> list[Admitted]:
        """End a call+role explicitly (held chunks are released)."""
        ctx = self.contexts.get((call_id, role))
        return self._end((call_id, role), ctx) if ctx is not None else []

    def evict_idle(self, now: float, idle_s: float) -> int:
        """Drop contexts (without held chunks) and tombstones idle for more than ``idle_s``."""
        stale = [k for k, c in self.contexts.items() if now - c.last_seen > idle_s and not c.held]
        for k in stale:
            del self.contexts[k]
        for k in [k for k, e in self.ended.items() if now - e.last_seen > idle_s]:
            del self.ended[k]
        return len(stale)

    def drop_partitions(self, partitions: Iterable[int]) -> list[Any]:
        """Forget every call on ``partitions`` (revoked); returns the tokens of held chunks dropped."""
        gone = set(partitions)
        dropped: list[Any] = []
        for k in [k for k, c in self.contexts.items() if c.partition in gone]:
            dropped += [h.token for h in self.contexts.pop(k).held.values()]
            self._holding.discard(k)
        for k in [k for k, e in self.ended.items() if e.partition in gone]:
            del self.ended[k]
        return dropped

    def drop_all(self) -> list[Any]:
        """Forget everything (partitions lost); returns the tokens of held chunks dropped."""
        dropped = [h.token for c in self.contexts.values() for h in c.held.values()]
        self.contexts.clear()
        self.ended.clear()
        self._holding.clear()
        return dropped

    def total_bytes(self) -> int:
        """Audio bytes held for all active call+roles (left context + reorder buffer) plus overhead."""
        return sum(c.buffer.nbytes + sum(h.audio.nbytes for h in c.held.values()) + _OVERHEAD_BYTES
                   for c in self.contexts.values())

    def bytes_per_call(self) -> float:
        """Mean bytes per active call+role (0 when none)."""
        return self.total_bytes() / len(self.contexts) if self.contexts else 0.0


def _oldest(ctx: _CallCtx) -> float:
    """When the longest-held chunk of a context arrived."""
    return min(h.since for h in ctx.held.values())
