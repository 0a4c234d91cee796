"""Where the sink cuts each partition's messages into insert batches. Pure (no Kafka, no ClickHouse).

A batch is a range of offsets ``[first, last]`` of one partition; its insert carries
``insert_deduplication_token = topic-partition-first-last-digest``, so ClickHouse drops a retried batch only if
the retry is cut at the same offsets. The digest is of the rows' identities (:func:`rows_digest`): offsets start
again at 0 in a deleted and re-created topic (or a local broker that lost its memory), and a batch of other
records at a lost batch's offsets must not be dropped as its repeat. Cuts are reproducible:

* size: a batch never crosses a multiple of ``batch_rows`` (it holds the offsets ``[first, B)`` with
  ``B = (first // batch_rows + 1) * batch_rows``), so a full batch is a function of the offsets alone;
* age: a partial batch older than ``batch_ms`` is cut at the newest offset read - a function of timing,
  so before its insert the sink records ``(first, last, first_key)`` in ClickHouse (``sink_batches``,
  :class:`emowatch.streams.sink.writer.SinkWriter`) and keeps it *pinned* here until the offsets are
  committed. A sink restarted after a crash loads the record of each partition it reads (:meth:`Batcher.load`)
  and cuts the re-read batch at the recorded ``last`` - the same token, so a batch that had been
  inserted but not committed is dropped by ClickHouse instead of doubling its rows.
A pinned cut also makes retries during a ClickHouse outage identical, whatever was read meanwhile.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

TP = tuple[str, int]


@dataclass(frozen=True)
class Batch:
    topic: str
    partition: int
    first: int
    last: int
    rows: list
    recut: bool = False  # cut at the offsets recorded before a restart (Batcher.load), not by this process
    first_key: str = ""  # record_key of the record at ``first`` (recorded with the cut)

    @property
    def token(self) -> str:
        """``topic-partition-first-last-digest`` (:func:`rows_digest`): the same for a retry or a re-cut of this
        batch (the same records read again), another one for other records at the same offsets."""
        return f"{self.topic}-{self.partition}-{self.first}-{self.last}-{rows_digest(self.rows)}"


IDENTITY_COLUMNS = 5
"""A row's first columns that identify its record (``rows.py``): scores ``business_line, call_id, role, seq,
start_ms``; alerts ``business_line, call_id, event_time, alert_id, status``."""


def rows_digest(rows: Sequence[Sequence[object]]) -> str:
    """16 hex digits of the rows' identities, in order (~0.6 us a row)."""
    text = "\n".join([repr(row[:IDENTITY_COLUMNS]) for row in rows])
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def record_key(row: Sequence[object] | None) -> str:
    """The identity of one record (:func:`rows_digest` of its row; ``-`` for a dead-lettered one, which has no
    row): recorded with a cut, so a re-cut applies only to the records it was made for."""
    return "-" if row is None else rows_digest([row])


@dataclass
class _Part:
    started: float = 0.0
    entries: list[tuple[int, list | None]] = field(default_factory=list)  # (offset, row; None = dead-lettered)
    pinned: tuple[int, int] | None = None
    from_record: bool = False  # ``pinned`` came from the record of a previous run (Batcher.load)
    loaded: bool = False  # the recorded cut was looked up since this partition was assigned


class Batcher:
    def __init__(self, batch_rows: int, batch_ms: int) -> None:
        self.batch_rows, self.batch_ms = batch_rows, batch_ms
        self.parts: dict[TP, _Part] = {}

    def add(self, tp: TP, offset: int, row: list | None, now: float) -> None:
        part = self.parts.setdefault(tp, _Part())
        if not part.entries:
            part.started = now
        part.entries.append((offset, row))

    def buffered(self) -> int:
        return sum(len(p.entries) for p in self.parts.values())

    def oldest_held(self, topic: str, partition: int) -> int | None:
        """The oldest offset of ``(topic, partition)`` read and not written yet (None: nothing held)."""
        part = self.parts.get((topic, partition))
        return part.entries[0][0] if part is not None and part.entries else None

    def unloaded(self) -> list[TP]:
        """Partitions holding messages whose recorded cut was not looked up yet."""
        return [tp for tp, p in self.parts.items() if p.entries and not p.loaded]

    def load(self, tp: TP, recorded: tuple[int, int, str] | None) -> None:
        """The cut recorded for ``tp`` before a crash (or None): ``(first, last, first_key)``, reproduced if it
        starts at the first offset held and the record held there is the one it was made for (not a record of a
        re-created topic at the same offset; ``first_key`` '': recorded before migration 0007, offsets alone)."""
        part = self.parts[tp]
        part.loaded = True
        if recorded is None or not part.entries:
            return
        first, last, key = recorded
        if first == part.entries[0][0] and (not key or key == record_key(part.entries[0][1])):
            part.pinned, part.from_record = (first, last), True

    def cut(self, tp: TP, now: float, final: bool = False) -> Batch | None:
        """The next batch of ``tp`` if one is due (pinned from then on until :meth:`done`), else None.
        ``final`` (stop, revoke): cut whatever is held, unless a pinned cut is not complete yet."""
        part = self.parts.get(tp)
        if part is None or not part.entries:
            return None
        first, newest = part.entries[0][0], part.entries[-1][0]
        if part.pinned is not None and part.pinned[0] != first:
            part.pinned, part.from_record = None, False  # recorded for offsets this consumer does not hold (stale)
        if part.pinned is not None:
            last = part.pinned[1]
            if newest < last:
                return None  # the recorded batch is not fully re-read yet
        else:
            boundary = (first // self.batch_rows + 1) * self.batch_rows
            if newest >= boundary - 1:
                last = max(o for o, _r in part.entries if o < boundary)
            elif final or (now - part.started) * 1000 >= self.batch_ms:
                last = newest
            else:
                return None
            part.pinned = (first, last)
        rows = [r for o, r in part.entries if o <= last and r is not None]
        return Batch(tp[0], tp[1], first, last, rows, part.from_record, record_key(part.entries[0][1]))

    def ready(self, now: float, final: bool = False, only: set[TP] | None = None) -> Iterator[Batch]:
        """Every due batch, in offset order per partition and round-robin across partitions (one batch of each
        in turn: after a restart with a backlog, every partition's first batch - a recorded cut - is written
        before any partition's second); the caller calls :meth:`done` after each."""
        tps = [tp for tp in self.parts if only is None or tp in only]
        while tps:
            again = []
            for tp in tps:
                batch = self.cut(tp, now, final)
                if batch is None:
                    continue
                yield batch
                if self.parts.get(tp) is None or self.parts[tp].pinned == (batch.first, batch.last):
                    return  # the caller did not complete it: stop here
                again.append(tp)
            tps = again

    def done(self, batch: Batch, now: float) -> None:
        """``batch`` was inserted and its offsets committed: forget it."""
        part = self.parts[(batch.topic, batch.partition)]
        part.entries = [(o, r) for o, r in part.entries if o > batch.last]
        part.pinned, part.from_record = None, False
        part.started = now

    def drop(self, tps) -> None:
        """Partitions revoked or lost: their messages will be read again by their next owner."""
        for tp in tps:
            self.parts.pop(tp, None)
