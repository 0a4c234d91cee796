"""Evaluate one batch of score messages: the rules worker's core, without Faust.

The service (``service.py``) reads batches from Faust and hands them here as
:class:`~emowatch.topics.dlq.Source` messages; the call table, the alert send and the
dead-letter send are injected, so the batch logic is tested without a broker.

Crash safety (at-least-once, nothing lost): a batch's alerts and dead letters are
acknowledged by the broker *before* the call states that record its messages are written to
the table, and the service acknowledges the batch's offsets only after :meth:`handle`
returned. After a kill -9 the table recovers a state that is never ahead of the delivered
alerts; messages after the committed offset are evaluated again, those the state already
holds are dropped as duplicates (same call, role, seq) and the rest re-emit identical alerts
(``alert_id`` is deterministic), which consumers dedupe by ``alert_id``.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from emowatch.rules.engine import call_finished, state_size_bytes, step
from emowatch.streams.rules_worker.active_rules import ActiveRules
from emowatch.streams.rules_worker.finished_calls import FinishedCalls
from emowatch.streams.rules_worker.metrics import RulesMetrics
from emowatch.topics.dlq import Source
from emowatch.topics.errors import DeadLetterError
from emowatch.topics.registry import partition_of
from emowatch.topics.serde import AvroSerde, SerdeError, encode_key

log = logging.getLogger("emowatch.rules")

STATE_SIZE_SAMPLE = 16
"""Measure the stored state size (``len(json)``) of every n-th table write."""
CHANGELOG_CHUNK = 64
"""A batch's table writes are handed to the producer this many at a time (Faust's send buffer holds 100)."""
STEP_SAMPLE = 8
"""Time the rule evaluation of every n-th message (``emowatch_rules_step_seconds``)."""

SendAlert = Callable[[bytes, bytes], Awaitable[Awaitable[Any]]]
"""``await send(key, value)`` queues an alert and returns what to await for its acknowledgement."""
SendDeadLetter = Callable[[Source, DeadLetterError, "str | None"], Awaitable[Awaitable[Any]]]
"""``await send(source, error, call_id)`` queues a dead letter; returns what to await for its ack."""


class CallTable(Protocol):
    """The per-call state table (a Faust Table in the service; a dict in tests)."""

    def get(self, key: bytes) -> Any: ...
    def put(self, partition: int, key: bytes, value: Any) -> None: ...
    def delete(self, partition: int, key: bytes) -> None: ...
    def items(self) -> Any: ...
    async def flush(self) -> None: ...


class BatchEvaluator:
    """Evaluates batches for one business line (``*`` = every line)."""

    def __init__(self, *, business_line: str, rules: ActiveRules, table: CallTable, scores_serde: AvroSerde,
                 alert_serde: AvroSerde, alerts_topic: str, send_alert: SendAlert, dead_letter: SendDeadLetter,
                 metrics: RulesMetrics, finished: FinishedCalls, partitions: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.business_line = business_line
        self.rules = rules
        self.table = table
        self.scores_serde = scores_serde
        self.alert_serde = alert_serde
        self.alerts_topic = alerts_topic
        self.send_alert = send_alert
        self.dead_letter = dead_letter
        self.metrics = metrics
        self.finished = finished
        self.partitions = partitions
        self.clock = clock
        self.seen = 0
        self.writes = 0
        self.seeded = False

    def in_scope(self, line: str) -> bool:
        return self.business_line == "*" or line == self.business_line

    async def handle(self, batch: Sequence[Source]) -> None:
        """Evaluate a batch; await its alerts' and dead letters' acks; then write each touched
        call's state once (with its changelog record on the message's partition).

        Raises when an alert or dead letter cannot be delivered: the caller must then not
        acknowledge the batch."""
        if not self.seeded:  # the table is recovered once events flow
            self.seed_finished()
        working: dict[str, list[Any]] = {}  # call -> [state before the batch, state, partition]
        pending: list[Awaitable[Any]] = []
        for source in batch:
            await self._evaluate(source, working, pending)
        if pending:
            await asyncio.gather(*pending)  # acked before the states that record them are written
        await self._write(working)

    async def _evaluate(self, source: Source, working: dict[str, list[Any]], pending: list[Awaitable[Any]]) -> None:
        m = self.metrics
        m.stage.received.inc()
        self.seen += 1
        call_id = None
        try:
            record = self.scores_serde.decode(source.value, topic=source.topic, partition=source.partition,
                                              offset=source.offset)
            if not self.in_scope(record["business_line"]):
                m.stage.discarded.labels("other_business_line").inc()
                return
            call_id = record["call_id"]
            key = encode_key(call_id)  # rejects an empty call id, which could not be partitioned
            crs = self.rules.current[1]  # one read: a hot reload takes effect between messages
            entry = working.get(call_id)
            old = entry[1] if entry is not None else self.table.get(key)
            timed = self.seen % STEP_SAMPLE == 0
            t0 = time.perf_counter() if timed else 0.0
            try:
                state, events = step(old, record, crs)
            except DeadLetterError:
                raise
            except Exception as exc:  # a bug must not stall the partition: keep the evidence in the DLQ
                log.exception("rule evaluation failed", extra={"call_id": call_id})
                raise DeadLetterError("EVALUATE", f"unexpected {type(exc).__name__}: {exc}", cause=exc) from exc
        except (DeadLetterError, SerdeError) as exc:
            pending.append(await self.dead_letter(source, exc, call_id))
            return
        if timed:
            m.step.observe(time.perf_counter() - t0)
        if state is old:
            m.stage.discarded.labels("duplicate").inc()
            return
        for ev in events:
            log.info("alert", extra={"call_id": call_id, "alert_id": ev["alert_id"], "status": ev["status"],
                                     "rule_id": ev["rule_id"], "rule_version": ev["rule_version"]})
            pending.append(await self.send_alert(key, self.alert_serde.encode(ev, topic=self.alerts_topic)))
            m.alerts.inc()
            m.stage.sent.inc()
        if entry is None:
            working[call_id] = [old, state, source.partition]
        else:
            entry[1] = state

    async def _write(self, working: dict[str, list[Any]]) -> None:
        now = self.clock()
        partitions = set()
        for i, (call_id, (before, state, partition)) in enumerate(working.items(), 1):
            self.table.put(partition, encode_key(call_id), state)
            if i % CHANGELOG_CHUNK == 0:  # Faust's send buffer warns ("producer buffer full") past 100
                await self.table.flush()
            partitions.add(partition)
            self.writes += 1
            ended = call_finished(state)
            if self.writes % STATE_SIZE_SAMPLE == 0 and not ended:
                self.metrics.state_bytes.observe(state_size_bytes(state))
            if ended and (before is None or not call_finished(before)):
                self.finished.add(partition, call_id, now)
        for partition in partitions:  # tombstones go to the partition the call's messages are on
            for gone in self.finished.due(partition, now):
                key = encode_key(gone)
                if call_finished(self.table.get(key)):
                    self.table.delete(partition, key)
                    self.metrics.expired.inc()

    def seed_finished(self) -> None:
        """Ended calls recovered from the changelog start their retention now."""
        now = self.clock()
        for key, state in list(self.table.items()):
            if call_finished(state):
                self.finished.add(partition_of(key, self.partitions), key.decode("utf-8"), now)
        self.seeded = True
