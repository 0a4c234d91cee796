"""The gateway's live feed: the scores and alerts topics read from their end, without a consumer group.

Every gateway instance reads every partition (a browser may be connected to any instance), so there is
no group to join and nothing to commit: :class:`LiveFeed` assigns all partitions at their high watermark
(read from Fetch responses by ``admin.end_offsets``, exact on tansu and Apache Kafka, unlike
``OFFSET_END``), decodes records with the topics' serde on a thread of its own and hands each batch
``[("scores" | "alerts", record), ...]`` to the asyncio loop with ``call_soon_threadsafe``.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, TopicPartition

from emowatch.streams.kafka.admin import end_offsets
from emowatch.streams.kafka.clients import base_config, serde_for, topics_for
from emowatch.streams.kafka.notify_control import groupless_consumer
from emowatch.streams.settings import KafkaSettings
from emowatch.topics.serde import SerdeError

log = logging.getLogger("emowatch.gateway.feed")

Batch = list[tuple[str, dict[str, Any]]]


class LiveFeed:
    """``start()`` assigns and starts the reader thread; ``deliver(batch)`` runs on ``loop``."""

    def __init__(self, kafka: KafkaSettings, deliver: Callable[[Batch], None], loop: asyncio.AbstractEventLoop,
                 *, max_batch: int = 1000) -> None:
        self.kafka = kafka
        self.deliver = deliver
        self.loop = loop
        self.max_batch = max_batch
        topics = topics_for(kafka)
        self.kinds = {topics.scores: "scores", topics.alerts: "alerts"}
        self.serdes = {topics.scores: serde_for(kafka, "FrameScores"), topics.alerts: serde_for(kafka, "Alert")}
        self.connected = False
        self.last_error: str | None = None
        self.counts = {"records": 0, "undecodable": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gateway-live-feed", daemon=True)
        self._consumer = None

    def start(self, timeout_s: float = 15.0) -> LiveFeed:
        """Assign every partition of the scores and alerts topics at its current end; raises when the
        broker does not answer within ``timeout_s``."""
        extra = {k: v for k, v in base_config(self.kafka).items() if k != "bootstrap.servers"}
        ends = end_offsets(self.kafka.bootstrap_servers, list(self.kinds), extra=extra, timeout_s=timeout_s)
        missing = set(self.kinds) - {t for t, _p in ends}
        if missing:
            log.warning("live feed topics missing (create them: `emowatch topics create`)",
                        extra={"topics": sorted(missing)})
        self._consumer = groupless_consumer(self.kafka, error_cb=self._on_error, **{"enable.partition.eof": False})
        self._consumer.assign([TopicPartition(t, p, off) for (t, p), off in sorted(ends.items())])
        self.connected = True
        self._thread.start()
        log.info("live feed started", extra={"partitions": len(ends)})
        return self

    def _on_error(self, err: KafkaError) -> None:
        self.last_error = str(err)
        if err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._AUTHENTICATION):
            self.connected = False

    def _run(self) -> None:
        assert self._consumer is not None
        while not self._stop.is_set():
            try:
                msgs = self._consumer.consume(num_messages=self.max_batch, timeout=0.2)
            except Exception:  # noqa: BLE001 - a client failure must not end the feed silently
                log.exception("live feed poll failed")
                time.sleep(0.5)
                continue
            batch: Batch = []
            for msg in msgs:
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        self.last_error = str(err)
                    continue
                self.connected = True
                try:
                    rec = self.serdes[msg.topic()].decode(msg.value(), topic=msg.topic(), partition=msg.partition(),
                                                          offset=msg.offset())
                except SerdeError:
                    self.counts["undecodable"] += 1
                    continue
                batch.append((self.kinds[msg.topic()], rec))
            if batch:
                self.counts["records"] += len(batch)
                try:
                    self.loop.call_soon_threadsafe(self.deliver, batch)
                except RuntimeError:  # the loop is closed: the gateway is stopping
                    return

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
