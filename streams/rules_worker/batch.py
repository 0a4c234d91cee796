"""Evaluate one batch of score messages: the rules worker's core, without Faust.

The service (``service.py``) reads batches from Faust and hands them here as
:class:`~emowatch.topics.dlq.Source` messages; the call table, the alert send and the
dead-letter send are injected, so the batch logic is tested without a broker.

Crash safety (at-least-once, nothing lost): a batch's alerts and dead letters are
acknowledged by the broker *before* the call states that record its messages are written to
the table (:meth:`evaluate` awaits them; :meth:`flush` writes), and the service acknowledges
messages only after a :meth:`flush` that followed their evaluation (``held.py``: every few
batches, at once on a rebalance or a stop). After a kill -9 the table recovers a state that
is never ahead of the delivered alerts, and no committed offset is ahead of the recovered
state; messages after the committed offset are evaluated again, those the state already
holds are dropped as duplicates (same call, role, seq) and the rest re-emit identical alerts
(``alert_id`` is deterministic), which consumers dedupe by ``alert_id``.

Evaluation is column-wise (:func:`~emowatch.rules.batched.step_batch`): the batch's messages are decoded,
then evaluated in waves (the first message of every call, then the second, ...), each wave's window scoring,
threshold conditions and sequence progress as whole-array operations; results, alerts and states equal
``step`` one message after the other. The rule set in force is read once per batch. A call's state is kept
in memory (rings as arrays) from its first change after a flush until the next flush writes it to the table
in stored form (rings as strings, as ``step`` stores them); reads see the unwritten state first.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from emowatch.rules.batched import Result, step_batch, stored_form
from emowatch.rules.compiler import CompiledRuleSet
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
    async def delivered(self) -> None: ...


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
        self.writes = 0
        self.seeded = False
        self.unwritten: dict[str, list[Any]] = {}  # call -> [state as written, state now, partition, key]

    def in_scope(self, line: str) -> bool:
        return self.business_line == "*" or line == self.business_line

    async def handle(self, batch: Sequence[Source]) -> None:
        """:meth:`evaluate` a batch, then :meth:`flush` (write the states)."""
        await self.evaluate(batch)
        await self.flush()

    def state_of(self, call_id: str, key: bytes) -> Any:
        """A call's current state: not yet written (as :func:`~emowatch.rules.batched.stored_form`), else the
        table's."""
        entry = self.unwritten.get(call_id)
        return stored_form(entry[1]) if entry is not None else self.table.get(key)

    async def evaluate(self, batch: Sequence[Source]) -> None:
        """Evaluate a batch and await its alerts' and dead letters' acks; the new states are kept (``unwritten``)
        until :meth:`flush`.

        Raises when an alert or dead letter cannot be delivered: the caller must then acknowledge
        nothing that was not flushed before."""
        if not self.seeded:  # the table is recovered once events flow
            self.seed_finished()
        m = self.metrics
        m.stage.received.inc(len(batch))
        m.batch.observe(len(batch))
        crs = self.rules.current[1]  # one read per batch: a hot reload takes effect between batches
        pending: list[Awaitable[Any]] = []
        accepted: list[tuple[Source, dict[str, Any], str, bytes]] = []
        before: dict[str, Any] = {}  # call -> its state before the batch
        for source in batch:
            call_id = None
            try:
                record = self.scores_serde.decode(source.value, topic=source.topic, partition=source.partition,
                                                  offset=source.offset)
                if not self.in_scope(record["business_line"]):
                    m.stage.discarded.labels("other_business_line").inc()
                    continue
                call_id = record["call_id"]
                key = encode_key(call_id)  # rejects an empty call id, which could not be partitioned
            except (DeadLetterError, SerdeError) as exc:
                pending.append(await self.dead_letter(source, exc, call_id))
                continue
            if call_id not in before:
                entry = self.unwritten.get(call_id)
                before[call_id] = entry[1] if entry is not None else self.table.get(key)
            accepted.append((source, record, call_id, key))
        results = self._evaluate([record for _, record, _, _ in accepted], before, crs)
        working: dict[str, list[Any]] = {}  # call -> [state before the batch, state, partition, key]
        for (source, _, call_id, key), result in zip(accepted, results):
            if isinstance(result, DeadLetterError):
                pending.append(await self.dead_letter(source, result, call_id))
                continue
            state, events = result
            entry = working.get(call_id)
            if state is (entry[1] if entry is not None else before[call_id]):
                m.stage.discarded.labels("duplicate").inc()
                continue
            for ev in events:  # in message order, as one message after the other would send them
                log.info("alert", extra={"call_id": call_id, "alert_id": ev["alert_id"], "status": ev["status"],
                                         "rule_id": ev["rule_id"], "rule_version": ev["rule_version"]})
                pending.append(await self.send_alert(key, self.alert_serde.encode(ev, topic=self.alerts_topic)))
                m.alerts.inc()
                m.stage.sent.inc()
            if entry is None:
                working[call_id] = [before[call_id], state, source.partition, key]
            else:
                entry[1] = state
        if pending:
            await asyncio.gather(*pending)  # acked before the states that record them are written
        for call_id, entry in working.items():
            kept = self.unwritten.get(call_id)
            if kept is None:
                self.unwritten[call_id] = entry
            else:
                kept[1] = entry[1]  # kept[0]: the state as last written

    async def flush(self) -> None:
        """Write every call state changed since the last flush, once (its changelog record on the partition of the
        call's messages); then delete ended calls whose retention is over."""
        unwritten = self.unwritten
        await self._write(unwritten)  # reads (``state_of``) see the unwritten states until they are written
        self.unwritten = {}  # the caller holds the batches off meanwhile (the service's lock)

    def _evaluate(self, records: list[dict[str, Any]], before: dict[str, Any],
                  crs: CompiledRuleSet) -> list[Result | DeadLetterError]:
        """Every message's ``(state, events)`` or dead-letter error: the whole batch column-wise
        (:func:`~emowatch.rules.batched.step_batch`); after an unexpected error there, message by message."""
        if not records:
            return []
        t0 = time.perf_counter()
        try:
            results: list[Any] = step_batch(records, before.__getitem__, crs)
        except Exception:  # noqa: BLE001 - a bug: find the message(s) that trigger it, dead-letter only those
            log.exception("batch evaluation failed; evaluating its messages one by one")
            results = self._one_by_one(records, before, crs)
        elapsed = time.perf_counter() - t0
        self.metrics.step.observe(elapsed / len(records))
        self.metrics.evaluation.inc(elapsed)
        return results

    @staticmethod
    def _one_by_one(records: list[dict[str, Any]], before: dict[str, Any],
                    crs: CompiledRuleSet) -> list[Result | DeadLetterError]:
        current = dict(before)
        out: list[Result | DeadLetterError] = []
        for record in records:
            call_id = record["call_id"]
            try:
                state, events = step(current[call_id], record, crs)
            except DeadLetterError as exc:
                out.append(exc)
                continue
            except Exception as exc:  # a bug must not stall the partition: keep the evidence in the DLQ
                log.exception("rule evaluation failed", extra={"call_id": call_id})
                out.append(DeadLetterError("EVALUATE", f"unexpected {type(exc).__name__}: {exc}", cause=exc))
                continue
            current[call_id] = state
            out.append((state, events))
        return out

    async def _write(self, unwritten: dict[str, list[Any]]) -> None:
        """The changelog records of a flush (the states, then the tombstones of ended calls whose retention is
        over), each partition's last one sent alone once every record sent before is acknowledged.

        A table's recovery reads its changelog up to the high watermark that ListOffsets(latest) reports; the
        local tansu broker reports the base offset of the last record batch + 1 (documented gap), so a last
        batch of several records would leave all but its first unread, and a worker restarted after a kill -9
        would continue those calls from older states than the committed offsets assume (measured: 3-30 of 300
        calls). A kill while the others are on their way loses only states no committed offset relies on (the
        messages are acknowledged after the flush). On Apache Kafka this costs a round trip per flush."""
        now = self.clock()
        ops: list[tuple[int, bytes, Any]] = []  # (partition, key, state or None: a tombstone)
        written: dict[bytes, Any] = {}
        for call_id, (before, state, partition, key) in unwritten.items():
            state = stored_form(state)  # the window rings as strings, as step() stores them
            ops.append((partition, key, state))
            written[key] = state
            self.writes += 1
            ended = call_finished(state)
            if self.writes % STATE_SIZE_SAMPLE == 0 and not ended:
                self.metrics.state_bytes.observe(state_size_bytes(state))
            if ended and (before is None or not call_finished(before)):
                self.finished.add(partition, call_id, now)
        for partition in sorted({op[0] for op in ops}):  # tombstones go to the partition the call's messages are on
            for gone in self.finished.due(partition, now):
                key = encode_key(gone)
                if call_finished(written[key] if key in written else self.table.get(key)):
                    ops.append((partition, key, None))
                    self.metrics.expired.inc()
        if not ops:
            return
        last = {op[0]: i for i, op in enumerate(ops)}  # each partition's last record
        await self._send([op for i, op in enumerate(ops) if last[op[0]] != i])
        await self.table.delivered()  # also the last flush's records: none may share a record batch with these
        await self._send([ops[i] for i in sorted(last.values())])

    async def _send(self, ops: list[tuple[int, bytes, Any]]) -> None:
        for i, (partition, key, state) in enumerate(ops, 1):
            if state is None:
                self.table.delete(partition, key)
            else:
                self.table.put(partition, key, state)
            if i % CHANGELOG_CHUNK == 0:  # Faust's send buffer warns ("producer buffer full") past 100
                await self.table.flush()
        if ops:
            await self.table.flush()

    def seed_finished(self) -> None:
        """Ended calls recovered from the changelog start their retention now."""
        now = self.clock()
        for key, state in list(self.table.items()):
            if call_finished(state):
                self.finished.add(partition_of(key, self.partitions), key.decode("utf-8"), now)
        self.seeded = True
