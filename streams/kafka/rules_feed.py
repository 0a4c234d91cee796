"""Follow the compacted rules topic from the beginning, in every rules worker (aiokafka).

The rules topic is not read through the worker's consumer group: a group would hand its
single partition to one worker, and hot reload must reach every worker. Each worker runs
one :class:`RulesFeed` inside its Faust event loop: an ``AIOKafkaConsumer`` without a
group, ``assign()`` + ``seek_to_beginning()``, no commits. It reports when it has read
the topic up to the end that the broker reported at start (the worker holds back scores
until then, so a restarted worker never evaluates with an older rule set than the topic's).

"The end" comes from the high watermark of Fetch responses; ListOffsets is used only
while no Fetch has reported one (an empty topic): tansu undercounts ListOffsets(latest)
when the last record batch holds several records (docs/ARCHITECTURE.md).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from emowatch.streams.kafka.security import aiokafka_security
from emowatch.streams.settings import KafkaSettings
from emowatch.topics.dlq import Source

log = logging.getLogger("emowatch.rules.feed")

OnRecord = Callable[[Source], Awaitable[None]]


class RulesFeed:
    """Reads one partition (partition 0 of the rules topic) from the beginning, forever.

    ``on_record(source)`` is awaited for every record in offset order (key, value, position
    and headers as read); a record whose handling raises is read again after the back-off;
    ``caught_up`` is set once the records present at start have been handed over.
    Errors are logged and the read resumes, after a back-off, at the first record not yet handled.
    """

    def __init__(self, kafka: KafkaSettings, topic: str, on_record: OnRecord, *, poll_ms: int = 500,
                 retry_s: float = 2.0) -> None:
        self.kafka = kafka
        self.topic = topic
        self.on_record = on_record
        self.poll_ms = poll_ms
        self.retry_s = retry_s
        self.caught_up = asyncio.Event()
        self.next_offset = 0
        self.records = 0

    async def run(self) -> None:
        """Run until cancelled (the Faust app cancels its tasks on shutdown)."""
        while True:
            try:
                await self._read()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - broker gone, topic missing, ...: keep the current rule set, retry
                log.warning("rules topic read failed; retrying", extra={"topic": self.topic, "error": repr(exc),
                                                                       "next_offset": self.next_offset})
                await asyncio.sleep(self.retry_s)

    async def _read(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.kafka.bootstrap_servers, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=200,
                                    **aiokafka_security(self.kafka))
        await consumer.start()
        try:
            tp = TopicPartition(self.topic, 0)
            if not await self._exists(consumer):
                raise RuntimeError(f"topic {self.topic} does not exist (create it: `emowatch topics create`)")
            consumer.assign([tp])
            consumer.seek(tp, self.next_offset)
            listed_end = (await asyncio.wait_for(consumer.end_offsets([tp]), 15.0))[tp]
            while True:
                batch = await consumer.getmany(tp, timeout_ms=self.poll_ms, max_records=500)
                for msg in batch.get(tp, []):
                    await self.on_record(Source(topic=msg.topic, partition=msg.partition, offset=msg.offset,
                                                key=msg.key, value=msg.value, headers=list(msg.headers or [])))
                    self.next_offset = msg.offset + 1
                    self.records += 1
                if not self.caught_up.is_set():
                    high = consumer.highwater(tp)
                    end = high if high is not None else listed_end
                    if await consumer.position(tp) >= end:
                        log.info("rules topic read to its end", extra={"topic": self.topic, "records": self.records,
                                                                       "end_offset": end})
                        self.caught_up.set()
        finally:
            await consumer.stop()

    async def _exists(self, consumer: AIOKafkaConsumer) -> bool:
        try:
            topics = await asyncio.wait_for(consumer.topics(), 15.0)
        except TimeoutError:
            return False
        return self.topic in topics
