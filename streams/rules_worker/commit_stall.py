"""Detect partitions whose offset commits are stuck behind a gap in the acknowledged offsets.

Faust commits a partition only up to the first gap after its last committed offset
(``Consumer._new_offset``). After two quick rebalances (e.g. a restarted worker joins while
the killed one's session has not yet expired) its fetcher can drop re-fetched messages that
an acknowledgement from the previous assignment already "covered", so the offsets right after
the committed one are never acknowledged again and the partition is never committed again
(upstream: robinhood/faust#681, faust-streaming/faust#318). Lag then grows forever and every
restart reprocesses the backlog.

:class:`StallDetector` is the pure decision: a partition is stalled when its lowest
acknowledged offset lies more than one past its committed offset in two consecutive
observations with the committed offset unchanged. The rules worker (``service.py``)
then seeks that partition back to its committed offset; re-read messages it already processed
are duplicates the call state ignores, any the fetcher dropped unprocessed are evaluated now (late:
see docs/rules.md, "Stuck commits"), and their acknowledgements close the gap.
"""
from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["StallDetector", "gap_after_commit"]


def gap_after_commit(acked: Iterable[int], committed: int | None) -> int | None:
    """The lowest acknowledged offset when it leaves a gap of more than one after ``committed``
    (the condition under which Faust refuses to commit), else None."""
    lowest = min(acked, default=None)
    if lowest is None or committed is None or lowest - committed <= 1:
        return None
    return lowest


@dataclass
class StallDetector:
    """Remembers the previous observation of each partition; :meth:`observe` returns those
    stalled for two observations in a row as ``{partition: (committed, lowest acked)}``."""

    _seen: dict[Hashable, tuple[int, int]] = field(default_factory=dict)

    def observe(self, acked: Mapping[Hashable, Iterable[int]],
                committed: Mapping[Hashable, int | None]) -> dict[Hashable, tuple[int, int]]:
        stalled: dict[Hashable, tuple[int, int]] = {}
        now: dict[Hashable, tuple[int, int]] = {}
        for tp, offsets in acked.items():
            base = committed.get(tp)
            lowest = gap_after_commit(offsets, base)
            if lowest is None or base is None:
                continue
            now[tp] = (base, lowest)
            before = self._seen.get(tp)
            if before is not None and before[0] == base:
                stalled[tp] = (base, lowest)
        self._seen = {tp: v for tp, v in now.items() if tp not in stalled}
        return stalled
