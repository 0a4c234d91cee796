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
* :func:`wait_delivered` waits until the broker has acknowledged every record handed to the producer
  (``app.producer.flush()``, the producer API Faust's own commit uses): the worker sends each changelog
  partition's last record of a flush alone, after the others (``batch.py``, a gap of the local broker).
* :func:`commit_bookkeeping` reads the consumer's acknowledged and committed offsets
  (``Consumer._acked``, ``Consumer._committed_offset``, private) for the stuck-commit
  watchdog (``commit_stall.py``, upstream robinhood/faust#681, faust-streaming#318). It returns
  None when another Faust version lacks them, and the watchdog then does nothing.
* :func:`source_of_event` reads an event's message position and headers (``event.message``).
* :func:`high_watermarks` and :func:`earliest_offsets` use the documented consumer methods ``assignment``,
  ``highwater`` (from the fetch responses), ``highwaters`` and ``earliest_offsets`` (broker requests, run on
  the consumer's thread) for the consumer lag (``lag.py``): the larger of the fetched and the listed high
  watermark, as a partition Faust stops fetching (its stream buffer is full: a slow or stuck agent) keeps
  its last fetched one, and the local tansu broker undercounts the listed one.
* :func:`winding_down` tells whether the app rebalances or stops (``App.rebalancing``, set first thing
  when partitions are revoked; ``App.should_stop``): Faust then waits for every message in flight to be
  acknowledged, so the worker writes its held states and acknowledges at once (``held.py``).
* :func:`set_fetch_max_wait` replaces the fixed ``fetch_max_wait_ms=1500`` Faust gives its worker consumer
  (``AIOKafkaConsumerThread._create_worker_consumer``; aiokafka's ``AIOKafkaConsumer._fetch_max_wait_ms``,
  read when the consumer starts): a broker that holds a Fetch until that wait expires (tansu, the local
  broker) otherwise adds it to every scores -> alert hop (docs/benchmarks.md, whole pipeline). It imports
  Faust's Kafka driver, so it lives with the Kafka adapters (``streams/kafka/faust_fetch.py``) and is re-exported here.
"""
from __future__ import annotations

from typing import Any

from emowatch.streams.kafka.faust_fetch import apply_fetch_max_wait, set_fetch_max_wait
from emowatch.topics.dlq import Source

__all__ = ["apply_fetch_max_wait", "commit_bookkeeping", "earliest_offsets", "flush_send_buffer", "high_watermarks",
           "set_fetch_max_wait", "source_of_event",
           "table_delete", "table_put", "wait_delivered", "winding_down"]


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


async def wait_delivered(app: Any) -> None:
    """Wait until every record handed to the app's producer is acknowledged by the broker."""
    await app.producer.flush()


def commit_bookkeeping(app: Any) -> tuple[dict[Any, list[int]], dict[Any, int]] | None:
    """``(acked offsets per partition, committed offset per partition)`` of the app's consumer,
    copied; None when this Faust version keeps them elsewhere."""
    consumer = app.consumer
    acked, committed = getattr(consumer, "_acked", None), getattr(consumer, "_committed_offset", None)
    if acked is None or committed is None:
        return None
    return {tp: list(offsets) for tp, offsets in list(acked.items())}, dict(committed)


async def high_watermarks(app: Any, topic: str) -> dict[Any, int]:
    """The high watermark of each partition of ``topic`` assigned to the app's consumer (one broker request)."""
    consumer = app.consumer
    parts = [tp for tp in consumer.assignment() if tp.topic == topic]
    if not parts:
        return {}
    listed = await consumer.highwaters(*parts)
    out = {}
    for tp in parts:
        try:
            fetched = consumer.highwater(tp)
        except Exception:  # noqa: BLE001 - revoked meanwhile (aiokafka asserts the assignment)
            fetched = None
        high = max(x for x in (fetched, listed.get(tp), -1) if x is not None)
        if high >= 0:
            out[tp] = high
    return out


async def earliest_offsets(app: Any, partitions: list[Any]) -> dict[Any, int]:
    """The low watermark of each of ``partitions`` (one broker request)."""
    return dict(await app.consumer.earliest_offsets(*partitions)) if partitions else {}


def source_of_event(event: Any) -> Source:
    """The :class:`~emowatch.topics.dlq.Source` of a Faust event (raw key and value bytes)."""
    msg = event.message
    return Source(topic=msg.topic, partition=msg.partition, offset=msg.offset, key=event.key, value=event.value,
                  headers=list(msg.headers or []))


def winding_down(app: Any) -> bool:
    """Whether the app is rebalancing or stopping (either way Faust waits for in-flight messages' acks)."""
    return bool(getattr(app, "rebalancing", False) or getattr(app, "should_stop", False))
