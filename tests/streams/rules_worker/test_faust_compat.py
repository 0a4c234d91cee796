"""Canary for the Faust internals the rules worker relies on (``faust_compat.py``).

These fail on a Faust upgrade that moves what the worker reaches into, before a crash test
or a benchmark would."""
from __future__ import annotations

import inspect

import faust
from faust.streams import Stream
from faust.tables.base import Collection
from faust.transport.consumer import Consumer
from faust.transport.producer import Producer

from emowatch.streams.rules_worker import faust_compat


def test_the_pinned_faust_still_has_what_faust_compat_uses():
    assert callable(getattr(Collection, "send_changelog", None))
    assert "self.data" in inspect.getsource(Collection) or hasattr(Collection, "data")
    init = inspect.getsource(Consumer.__init__)
    assert "self._acked" in init and "self._committed_offset" in init
    assert "self.buffer" in inspect.getsource(Producer.__init__)
    assert callable(getattr(Stream, "noack_take", None))
    assert faust.__version__.startswith("0.")


def test_wait_delivered_awaits_the_kafka_producers_own_flush():
    """``wait_delivered`` relies on Faust's producer flush waiting for the deliveries, not only draining its
    buffer: the changelog records of a flush must be acknowledged before each partition's last one goes."""
    from faust.transport.drivers.aiokafka import Producer as KafkaProducer

    assert inspect.iscoroutinefunction(KafkaProducer.flush)
    source = inspect.getsource(KafkaProducer.flush)
    assert "await self.buffer.flush()" in source and "await self._producer.flush()" in source


def test_commit_bookkeeping_is_none_for_a_consumer_without_it():
    class App:
        consumer = object()

    assert faust_compat.commit_bookkeeping(App()) is None


def test_source_of_event_keeps_position_bytes_and_headers():
    class Msg:
        topic, partition, offset, headers = "t", 3, 42, [("a", b"1")]

    class Event:
        message, key, value = Msg(), b"k", b"v"

    s = faust_compat.source_of_event(Event())
    assert (s.topic, s.partition, s.offset, s.key, s.value, s.headers) == ("t", 3, 42, b"k", b"v", [("a", b"1")])


def test_the_consumer_lag_uses_documented_consumer_methods():
    for name in ("assignment", "highwater", "highwaters", "earliest_offsets"):
        assert callable(getattr(Consumer, name, None)), name


def test_the_worker_consumer_fetch_wait_is_still_where_set_fetch_max_wait_changes_it():
    from aiokafka import AIOKafkaConsumer
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    assert "fetch_max_wait_ms" in inspect.getsource(AIOKafkaConsumerThread._create_worker_consumer)
    assert "self._fetch_max_wait_ms = fetch_max_wait_ms" in inspect.getsource(AIOKafkaConsumer.__init__)
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(AIOKafkaConsumer.start)


def test_set_fetch_max_wait_sets_the_wait_of_that_apps_worker_consumer_only():
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    class App:
        pass

    class AIOKafkaConsumer:  # the attribute the canary above checks the real one has
        def __init__(self, fetch_max_wait_ms: int) -> None:
            self._fetch_max_wait_ms = fetch_max_wait_ms

    app, other = App(), App()
    assert faust_compat.set_fetch_max_wait(app, 25) and faust_compat.set_fetch_max_wait(app, 30)
    assert AIOKafkaConsumerThread._create_worker_consumer._emowatch_wrapped  # wrapped once, the latest value wins
    consumer = AIOKafkaConsumer(fetch_max_wait_ms=1500)
    assert faust_compat.apply_fetch_max_wait(app, consumer)._fetch_max_wait_ms == 30
    untouched = AIOKafkaConsumer(fetch_max_wait_ms=1500)
    assert faust_compat.apply_fetch_max_wait(other, untouched)._fetch_max_wait_ms == 1500
