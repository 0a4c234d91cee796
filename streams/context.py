"""Per call+role streaming context: seq ordering and a rolling left-context buffer. Pure."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from emowatch.streams.audio import TARGET_RATE


@dataclass
class Admitted:
    """A chunk accepted for scoring: the model window and how many trailing samples are its own."""

    window: np.ndarray
    emit_samples: int
    gap_before: bool


@dataclass
class _CallCtx:
    next_seq: int
    buffer: np.ndarray
    last_seen: float


@dataclass
class ContextStore:
    """Rolling buffers of the last ``context_s`` seconds per (call_id, role).

    ``admit`` returns None for a duplicate or older seq (skip it), flags a gap
    (``seq`` beyond the next expected one) and resets the context then. Memory is
    bounded by ``context_s`` per active call and by end-of-call / idle eviction.
    """

    context_s: float = 2.0
    contexts: dict[tuple[str, str], _CallCtx] = field(default_factory=dict)
    skipped: int = 0
    gaps: int = 0

    @property
    def context_samples(self) -> int:
        return int(round(self.context_s * TARGET_RATE))

    def admit(self, call_id: str, role: str, seq: int, audio: np.ndarray, now: float) -> Admitted | None:
        key = (call_id, role)
        ctx = self.contexts.get(key)
        gap = False
        if ctx is None:
            gap = seq != 0
            ctx = _CallCtx(seq, np.zeros(0, np.float32), now)
            self.contexts[key] = ctx
        elif seq < ctx.next_seq:
            self.skipped += 1
            return None
        elif seq > ctx.next_seq:
            gap = True
            ctx.buffer = np.zeros(0, np.float32)
        if gap:
            self.gaps += 1
        window = np.concatenate([ctx.buffer, audio]) if ctx.buffer.size else audio
        keep = self.context_samples
        ctx.buffer = window[-keep:].copy() if keep else np.zeros(0, np.float32)
        ctx.next_seq = seq + 1
        ctx.last_seen = now
        return Admitted(window, len(audio), gap)

    def end(self, call_id: str, role: str) -> None:
        self.contexts.pop((call_id, role), None)

    def evict_idle(self, now: float, idle_s: float) -> int:
        stale = [k for k, c in self.contexts.items() if now - c.last_seen > idle_s]
        for k in stale:
            del self.contexts[k]
        return len(stale)

    def drop_calls(self, keep) -> None:
        """Drop contexts whose call_id does not satisfy ``keep(call_id)`` (after a rebalance)."""
        for k in [k for k in self.contexts if not keep(k[0])]:
            del self.contexts[k]

    def bytes_per_call(self) -> float:
        if not self.contexts:
            return 0.0
        return sum(c.buffer.nbytes + 64 for c in self.contexts.values()) / len(self.contexts)
