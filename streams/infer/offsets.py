"""Offset bookkeeping for at-least-once delivery: commit only what is fully delivered. Pure."""
from __future__ import annotations

from collections import defaultdict


class OffsetTracker:
    """Tracks in-flight input offsets per (topic, partition).

    An input message may fan out into several outputs (e.g. stereo -> two
    roles); it is done when all of them are acknowledged. ``committable``
    returns, per partition, the next offset to commit: one past the highest
    offset below which every message is done.

    A *hold* keeps a done offset uncommitted without counting it as in flight: the inputs that
    make up a live call's left context (:class:`ContextHolds`), read again after a crash so that
    the next chunk is scored with the context it would have had.
    """

    def __init__(self) -> None:
        self._pending: dict[tuple[str, int], dict[int, int]] = defaultdict(dict)
        self._holds: dict[tuple[str, int], dict[int, int]] = defaultdict(dict)
        self._high: dict[tuple[str, int], int] = {}
        self._committed: dict[tuple[str, int], int] = {}

    def add(self, topic: str, partition: int, offset: int, outputs: int = 1) -> None:
        tp = (topic, partition)
        if outputs > 0:
            self._pending[tp][offset] = self._pending[tp].get(offset, 0) + outputs
        self._high[tp] = max(self._high.get(tp, -1), offset)

    def done(self, topic: str, partition: int, offset: int, n: int = 1) -> bool:
        """One output of an input acknowledged; True when that completed the input."""
        pend = self._pending.get((topic, partition))
        if pend is None or offset not in pend:
            return False
        pend[offset] -= n
        if pend[offset] <= 0:
            del pend[offset]
            return True
        return False

    def hold(self, topic: str, partition: int, offset: int) -> None:
        held = self._holds[(topic, partition)]
        held[offset] = held.get(offset, 0) + 1

    def release(self, topic: str, partition: int, offset: int) -> None:
        held = self._holds.get((topic, partition))
        if held is None or offset not in held:
            return
        held[offset] -= 1
        if held[offset] <= 0:
            del held[offset]

    def holds(self) -> int:
        return sum(len(h) for h in self._holds.values())

    def in_flight(self) -> int:
        return sum(len(p) for p in self._pending.values())

    def position(self, topic: str, partition: int) -> int | None:
        """Next offset to commit for a partition (end of the delivered prefix, before any hold); None if unknown."""
        pos = self.processed(topic, partition)
        held = self._holds.get((topic, partition))
        return min(pos, min(held)) if held and pos is not None else pos

    def processed(self, topic: str, partition: int) -> int | None:
        """End of the delivered prefix of a partition, holds aside (what the consumer lag is measured from)."""
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
        self._holds.pop(tp, None)
        self._high.pop(tp, None)
        self._committed.pop(tp, None)


class ContextHolds:
    """Which input offsets hold each live call's left context, so that a crash does not lose it.

    The agent scores a chunk with the last ``context_s`` seconds of the call as left context. A new
    agent that starts at the committed offset has no context for the first chunk it scores, so after
    a kill -9 the first chunks nobody had scored yet came out different from an uninterrupted run, and
    an alert's episode could start a frame earlier or later (another alert id). Each call's inputs
    stay held (uncommitted) until the *delivered* inputs after them cover the context: a restart reads
    them again, scores them again (at-least-once duplicates: the rules worker keeps a seq's first score,
    the sink its latest row) and scores the first input that was not delivered, and what follows, with
    its full context. Several inputs of a call may be in flight at once (batching, the producer's
    queue), so only delivered inputs count towards the context. Released when the call's last input
    is delivered, after ``idle_s`` without a chunk, and for revoked partitions and a graceful stop,
    whose final commit is exact (the new owner starts without context, as before). Pure: returns
    ``(topic, partition, offset)`` triples to release from the :class:`OffsetTracker`.
    """

    def __init__(self, context_s: float, idle_s: float) -> None:
        self.context_s, self.idle_s = context_s, idle_s
        # (topic, partition, call_id, role) -> [offset, seconds, delivered] in admission (seq) order
        self._calls: dict[tuple[str, int, str, str], list[list]] = {}
        self._seen: dict[tuple[str, int, str, str], float] = {}  # when a call's list last grew
        self._ended: set[tuple[str, int, str, str]] = set()
        self._keys: dict[tuple[str, int, int], list[tuple[str, int, str, str]]] = {}  # offset -> calls holding it

    def add(self, topic: str, partition: int, call_id: str, role: str, offset: int, seconds: float, now: float,
            end_of_call: bool) -> None:
        """Record one admitted input, held until :meth:`delivered` and later inputs release it (with ``context_s``
        0: not held at all)."""
        key = (topic, partition, call_id, role)
        if self.context_s <= 0:
            return
        self._calls.setdefault(key, []).append([offset, seconds, False])
        self._keys.setdefault((topic, partition, offset), []).append(key)
        self._seen[key] = now
        if end_of_call:
            self._ended.add(key)

    def delivered(self, topic: str, partition: int, offset: int) -> list[tuple[str, int, int]]:
        """Every output of an input was acknowledged: the held inputs this releases."""
        out = []
        for key in self._keys.pop((topic, partition, offset), []):
            entries = self._calls.get(key, [])
            for e in entries:
                if e[0] == offset:
                    e[2] = True
            out += self._trim(key)
        return out

    def _trim(self, key) -> list[tuple[str, int, int]]:
        entries = self._calls.get(key)
        if not entries:
            return []
        first_open = next((i for i, e in enumerate(entries) if not e[2]), len(entries))
        if key in self._ended and first_open == len(entries):  # the call is over and all of it delivered
            return self._pop([key])
        out = []
        # the first input not delivered yet is scored again after a crash: the delivered inputs before it,
        # the oldest held one aside (read first, it is scored without context), must cover context_s
        while first_open > 1 and sum(e[1] for e in entries[1:first_open]) >= self.context_s:
            out.append((key[0], key[1], entries.pop(0)[0]))
            first_open -= 1
        return out

    def expire(self, now: float) -> list[tuple[str, int, int]]:
        """Release the calls without a new input for ``idle_s``."""
        return self._pop([k for k, t in self._seen.items() if now - t >= self.idle_s])

    def drop(self, partitions: set[tuple[str, int]] | None = None) -> list[tuple[str, int, int]]:
        """Release every call of ``partitions`` (None: all)."""
        return self._pop([k for k in self._calls if partitions is None or (k[0], k[1]) in partitions])

    def _pop(self, keys) -> list[tuple[str, int, int]]:
        out = []
        for k in keys:
            for o, _, _ in self._calls.pop(k, []):
                out.append((k[0], k[1], o))
                holders = self._keys.get((k[0], k[1], o))
                if holders is not None:
                    holders.remove(k)
                    if not holders:
                        del self._keys[(k[0], k[1], o)]
            self._seen.pop(k, None)
            self._ended.discard(k)
        return out

    def __len__(self) -> int:
        return sum(len(v) for v in self._calls.values())


class HeldTracker(OffsetTracker):
    """An :class:`OffsetTracker` that holds each live call's left-context inputs (:class:`ContextHolds`)."""

    def __init__(self, context_s: float, hold_s: float) -> None:
        super().__init__()
        self.context = ContextHolds(context_s if hold_s > 0 else 0.0, hold_s)

    def hold_input(self, topic: str, partition: int, call_id: str, role: str, offset: int, seconds: float,
                   now: float, end_of_call: bool) -> None:
        """After :meth:`add` of an input that will be scored: hold it as its call's context."""
        if self.context.context_s > 0:
            self.hold(topic, partition, offset)
            self.context.add(topic, partition, call_id, role, offset, seconds, now, end_of_call)

    def done(self, topic: str, partition: int, offset: int, n: int = 1) -> bool:
        complete = super().done(topic, partition, offset, n)
        if complete:
            self._release_all(self.context.delivered(topic, partition, offset))
        return complete

    def expire_holds(self, now: float) -> None:
        self._release_all(self.context.expire(now))

    def release_held(self, partitions: set[tuple[str, int]] | None = None) -> None:
        """Commit ``partitions`` (None: all) exactly: before a revoke's or a graceful stop's last commit."""
        self._release_all(self.context.drop(partitions))

    def forget(self, topic: str, partition: int) -> None:
        self.context.drop({(topic, partition)})
        super().forget(topic, partition)

    def _release_all(self, held: list[tuple[str, int, int]]) -> None:
        for topic, partition, offset in held:
            self.release(topic, partition, offset)
