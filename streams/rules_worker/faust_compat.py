"""Every use of Faust beyond its documented app/agent/table/page API, in one place.

Pinned: ``faust-streaming>=0.11,<0.16`` (pyproject.toml; measured on 0.15.3). Each function
names what it relies on and why the rules worker needs it. When Faust is upgraded, this
module and ``tests/streams/rules_worker/test_faust_compat.py`` are what to check first.

* :func:`table_put` / :func:`table_delete` write a table entry with its changelog record on
  an explicit partition (``Table.data`` + ``Table.send_changelog``). Faust's item assignment
  takes the partition from the *current event*, and the worker writes a whole batch's states
  after the batch (``Stream.noack_take``), outside any event's context.
* :func:`flush_send_buffer` drains Faust's producer send buffer
  (``app.producer.buffer.flush()``): it holds 100 records and, past that, logs "producer
  buffer full" and drains with 0.1 s waits, which cost the worker 15 % of its throughput.
* :func:`commit_bookkeeping` reads the consumer's acknowledged and committed offsets
  (``Consumer._acked``, ``Consumer._committed_offset``, private) for the stuck-commit
  watchdog (``commit_stall.py``, upstream robinhood/faust#681, faust-streaming#318). It returns
  None when another Faust version lacks them, and the watchdog then does nothing.
* :func:`source_of_event` reads an event's message position and headers (``event.message``).
* :func:`winding_down` tells whether the app rebalances or stops (``App.rebalancing``, set first thing
  when partitions are revoked; ``App.should_stop``): Faust then waits for every message in flight to be
  acknowledged, so the worker writes its held states and acknowledges at once (``held.py``).
* :func:`set_fetch_max_wait` replaces the fixed ``fetch_max_wait_ms=1500`` Faust gives its worker consumer
  (``AIOKafkaConsumerThread._create_worker_consumer``; aiokafka's ``AIOKafkaConsumer._fetch_max_wait_ms``,
  read when the consumer starts): a broker that holds a Fetch until that wait expires (tansu, the local
  broker) otherwise adds it to every scores -> alert hop (docs/benchmarks.md, whole pipeline).
"""
from __future__ import annotations

import functools
from typing import Any

from emowatch.topics.dlq import Source

__all__ = ["apply_fetch_max_wait", "commit_bookkeeping", "flush_send_buffer", "set_fetch_max_wait", "source_of_event",
           "table_delete", "table_put", "winding_down"]


def table_put(table: Any, partition: int, key: bytes, value: Any) -> None:
    """``table[key] = value`` with the changelog record on ``partition`` (the message's).

    Equivalent to the item assignment for a non-windowed table on the memory store."""
    table.data[key] = value
    table.send_changelog(partition, key, value)


def table_delete(table: Any, partition: int, key: bytes) -> None:
    """``del table[key]`` with the tombstone on ``partition`` (see :func:`table_put`)."""
    del table.data[key]
    table.send_changelog(partition, key, None, value_serializer="raw")


async def flush_send_buffer(app: Any) -> None:
    """Hand the records buffered by ``Topic.send`` / ``send_changelog`` to the producer now."""
    await app.producer.buffer.flush()


def commit_bookkeeping(app: Any) -> tuple[dict[Any, list[int]], dict[Any, int]] | None:
    """``(acked offsets per partition, committed offset per partition)`` of the app's consumer,
    copied; None when this Faust version keeps them elsewhere."""
    consumer = app.consumer
    acked, committed = getattr(consumer, "_acked", None), getattr(consumer, "_committed_offset", None)
    if acked is None or committed is None:
        return None
    return {tp: list(offsets) for tp, offsets in list(acked.items())}, dict(committed)


def source_of_event(event: Any) -> Source:
    """The :class:`~emowatch.topics.dlq.Source` of a Faust event (raw key and value bytes)."""
    msg = event.message
    return Source(topic=msg.topic, partition=msg.partition, offset=msg.offset, key=event.key, value=event.value,
                  headers=list(msg.headers or []))


def winding_down(app: Any) -> bool:
    """Whether the app is rebalancing or stopping (either way Faust waits for in-flight messages' acks)."""
    return bool(getattr(app, "rebalancing", False) or getattr(app, "should_stop", False))


_FETCH_WAIT_ATTR = "_emowatch_fetch_max_wait_ms"


def set_fetch_max_wait(app: Any, ms: int) -> bool:
    """Build ``app``'s worker consumer with ``fetch_max_wait_ms=ms`` instead of Faust's fixed 1500.

    Wraps ``AIOKafkaConsumerThread._create_worker_consumer`` once per process (other apps keep Faust's
    value); call before the app starts. Returns False, changing nothing, when this Faust or aiokafka
    version builds its consumer elsewhere."""
    try:
        from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
    except ImportError:  # pragma: no cover - Faust without its aiokafka driver
        return False
    create = getattr(AIOKafkaConsumerThread, "_create_worker_consumer", None)
    if create is None:
        return False
    if not getattr(create, "_emowatch_wrapped", False):

        @functools.wraps(create)  # inspect.getsource still shows Faust's own method
        def _create_worker_consumer(self: Any, transport: Any) -> Any:
            return apply_fetch_max_wait(self.app, create(self, transport))

        _create_worker_consumer._emowatch_wrapped = True  # type: ignore[attr-defined]
        AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer
    setattr(app, _FETCH_WAIT_ATTR, int(ms))
    return True


def apply_fetch_max_wait(app: Any, consumer: Any) -> Any:
    """``consumer`` (aiokafka, not started) with the fetch wait :func:`set_fetch_max_wait` gave ``app``, if any."""
    wait = getattr(app, _FETCH_WAIT_ATTR, None)
    if wait is not None and hasattr(consumer, "_fetch_max_wait_ms"):
        consumer._fetch_max_wait_ms = int(wait)
    return consumer
