"""Consumer lag of a confluent-kafka consumer's assigned partitions, measured every few seconds.

:class:`LagMeter` sums, over the partitions a worker owns, the high watermark minus the end of what the
worker has done (``done_position``: its own bookkeeping, e.g. the delivered prefix or the oldest offset
held unwritten), or its fetch position when it holds nothing. A partition the worker has consumed nothing
of yet counts from the offset it starts at: the group's committed offset, or the low watermark when the
group has none (``auto.offset.reset=earliest``); both are looked up once per assignment.

Cost: the high watermark comes from the fetch responses (``get_watermark_offsets(cached=True)``: no broker
request), except for the partitions named ``stale`` - paused ones, which are not fetched, so their cached
watermark would stay frozen while the backlog grows: those are asked from the broker (ListOffsets), and the
larger of the two figures is kept (the local tansu broker answers ListOffsets(latest) with the base offset of
the last record batch + 1, an undercount: ``admin.end_offsets``). Workers call :meth:`LagMeter.maybe_measure`
from their poll loop; it does nothing until :data:`LAG_EVERY_S` passed since the last measurement.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable

from confluent_kafka import Consumer, TopicPartition

__all__ = ["LAG_EVERY_S", "LagMeter"]

log = logging.getLogger("emowatch.kafka.lag")

LAG_EVERY_S = 2.0
"""How often the workers measure their consumer lag (Prometheus scrapes every 15 s)."""
QUERY_TIMEOUT_S = 1.0
"""Broker requests of a measurement (stale partitions, start offsets) give up after this long."""

TP = tuple[str, int]


class LagMeter:
    """``value``: the lag of the last measurement (None until a partition had a known watermark)."""

    def __init__(self, every_s: float = LAG_EVERY_S) -> None:
        self.every_s = every_s
        self.value: int | None = None
        self._next = 0.0
        self._start: dict[TP, int] = {}  # where a partition with no fetch position yet starts
        self._answering = True

    def due(self) -> bool:
        """Whether :meth:`maybe_measure` measures now (a caller can skip building its arguments until then)."""
        return time.monotonic() >= self._next

    def maybe_measure(self, consumer: Consumer, assigned: Iterable[TP],
                      done_position: Callable[[str, int], int | None] = lambda _t, _p: None,
                      stale: Collection[TP] = ()) -> int | None:
        """:meth:`measure` if the last one is :attr:`every_s` old, else None (nothing measured)."""
        now = time.monotonic()
        if now < self._next:
            return None
        self._next = now + self.every_s
        return self.measure(consumer, assigned, done_position, stale)

    def measure(self, consumer: Consumer, assigned: Iterable[TP],
                done_position: Callable[[str, int], int | None] = lambda _t, _p: None,
                stale: Collection[TP] = ()) -> int | None:
        """The lag now (also kept in :attr:`value`); None while no assigned partition has a watermark."""
        parts = sorted(set(assigned))
        self._start = {tp: o for tp, o in self._start.items() if tp in parts}
        total, known = 0, False
        self._answering = True  # the broker answered every request of this measurement so far
        for topic, part in parts:
            high = self._high(consumer, topic, part, (topic, part) in stale)
            if high is None:
                continue
            pos = done_position(topic, part)
            if pos is None:
                pos = self._position(consumer, topic, part)
            if pos is None:
                continue
            total += max(0, high - pos)
            known = True
        if known:
            self.value = total
        return self.value if known else None

    def _high(self, consumer: Consumer, topic: str, part: int, stale: bool) -> int | None:
        tp = TopicPartition(topic, part)
        try:
            high = consumer.get_watermark_offsets(tp, cached=True)[1]
        except Exception:  # noqa: BLE001 - no fetch response yet
            high = None
        if stale and self._answering:
            try:
                high = max(high if high is not None else -1,
                           consumer.get_watermark_offsets(tp, timeout=QUERY_TIMEOUT_S, cached=False)[1])
            except Exception as exc:  # noqa: BLE001 - broker unreachable: keep the cached figure
                self._answering = False  # no more requests this time: a dead broker would hold up the poll loop
                log.debug("high watermark query failed", extra={"topic": topic, "partition": part, "error": str(exc)})
        return high if high is not None and high >= 0 else None

    def _position(self, consumer: Consumer, topic: str, part: int) -> int | None:
        """The fetch position (next offset the application gets), else where the partition starts."""
        tp = TopicPartition(topic, part)
        pos = consumer.position([tp])[0].offset
        if pos is not None and pos >= 0:
            return pos
        if (topic, part) not in self._start:
            if not self._answering:
                return None
            try:
                committed = consumer.committed([tp], timeout=QUERY_TIMEOUT_S)[0].offset
                start = committed if committed is not None and committed >= 0 else \
                    consumer.get_watermark_offsets(tp, timeout=QUERY_TIMEOUT_S, cached=False)[0]
            except Exception as exc:  # noqa: BLE001 - try again at the next measurement
                self._answering = False
                log.debug("start offset query failed", extra={"topic": topic, "partition": part, "error": str(exc)})
                return None
            if start is None or start < 0:
                return None
            self._start[(topic, part)] = start
        return self._start[(topic, part)]
