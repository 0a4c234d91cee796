"""The rules worker's consumer lag, from Faust's offset bookkeeping. Pure (no Kafka, no Faust).

Per partition of the scores topic: the high watermark minus the end of what the worker has done, i.e. the
committed offset advanced over the contiguous run of acknowledged offsets after it (what Faust commits at its
next commit; a batch is acknowledged once evaluated and its call states written: ``held.py``). A partition
without a committed offset starts at its low watermark (``consumer_auto_offset_reset="earliest"``). Measured
every :data:`~emowatch.streams.kafka.lag.LAG_EVERY_S` by the worker (``service.py``).
"""
from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping

__all__ = ["consumer_lag", "done_position", "needs_start"]


def _known(offset: int | None) -> int | None:
    return offset if offset is not None and offset > 0 else None  # Faust keeps 0 and "none" (-1) as unknown


def done_position(committed: int | None, acked: Iterable[int], start: int | None) -> int | None:
    """The next offset not done: ``committed`` (else ``start``) moved past the acknowledged offsets that follow it."""
    done = _known(committed)
    if done is None:
        done = start
    if done is None:
        return None
    for offset in sorted(acked):
        if offset == done:
            done += 1
        elif offset > done:
            break
    return done


def needs_start(partitions: Iterable[Hashable], committed: Mapping[Hashable, int | None],
                starts: Mapping[Hashable, int]) -> list[Hashable]:
    """The partitions with no committed offset whose low watermark is not known yet."""
    return [tp for tp in partitions if _known(committed.get(tp)) is None and tp not in starts]


def consumer_lag(highs: Mapping[Hashable, int], acked: Mapping[Hashable, Iterable[int]],
                 committed: Mapping[Hashable, int | None], starts: Mapping[Hashable, int]) -> int | None:
    """Messages not done, summed over the partitions of ``highs``; None when none has a known position."""
    total, known = 0, False
    for tp, high in highs.items():
        done = done_position(committed.get(tp), acked.get(tp, ()), starts.get(tp))
        if done is None:
            continue
        total += max(0, high - done)
        known = True
    return total if known else None
