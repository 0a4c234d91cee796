"""The rules worker (faust-streaming): scores topic -> per-call state in a Table -> alerts topic.

One Faust app id (= consumer group) per business line. :class:`RulesWorker` wires the parts:
the batch core (``batch.py``: decode, the pure ``emowatch.rules.step``, alerts, state writes),
the rule set in force and the rules-topic records (``active_rules.py``, fed by
``emowatch.streams.kafka.rules_feed`` in every worker), the stuck-commit watchdog
(``commit_stall.py``), the consumer lag (``lag.py``), the metrics and the web pages (``/health``, ``/metrics``,
``/calls/<id>``). Faust internals are used only through ``faust_compat.py``.

A batch is acknowledged only once fully handled and its call states written (``Stream.noack_take``:
Faust's ``take_events`` acknowledges in a ``finally``, i.e. also after a failure half-way); the
states are written every few batches (``held.py``), so acknowledgements follow every few batches
too, and at once on a rebalance or a stop. A batch that cannot be completed (an alert or dead
letter not deliverable) stops the process with exit code 70 and nothing since the last write
acknowledged; the restart re-reads it from the last committed offset (see ``batch.py`` for why that
loses and duplicates nothing).
"""
from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import faust
from prometheus_client import generate_latest

from emowatch.rules.batched import GC_THRESHOLD0
from emowatch.rules.engine import call_finished
from emowatch.streams.kafka.clients import serde_for, topics_for
from emowatch.streams.kafka.dead_letters import DeadLetters
from emowatch.streams.kafka.group_leave import leave_group_at_generation_zero
from emowatch.streams.kafka.lag import LAG_EVERY_S
from emowatch.streams.kafka.rules_feed import RulesFeed
from emowatch.streams.rules_worker import faust_compat
from emowatch.streams.rules_worker.active_rules import (
    ActiveRules,
    RulesTopicHandler,
    RulesWorkerError,
    initial_selector,
)
from emowatch.streams.rules_worker.batch import BatchEvaluator
from emowatch.streams.rules_worker.call_view import describe_call
from emowatch.streams.rules_worker.commit_stall import StallDetector
from emowatch.streams.rules_worker.config import CALLS_TABLE, app_id, faust_config
from emowatch.streams.rules_worker.finished_calls import FinishedCalls
from emowatch.streams.rules_worker.held import HeldMessages
from emowatch.streams.rules_worker.lag import consumer_lag, needs_start
from emowatch.streams.rules_worker.metrics import RulesMetrics
from emowatch.streams.settings import Settings
from emowatch.topics.dlq import Source
from emowatch.topics.errors import DeadLetterError
from emowatch.topics.serde import encode_key

__all__ = ["EXIT_BATCH_FAILED", "RulesWorker", "RulesWorkerError", "run_worker"]

log = logging.getLogger("emowatch.rules")

EXIT_BATCH_FAILED = 70
"""Exit code when a batch cannot be completed (EX_SOFTWARE): a supervisor restarts the worker."""
FINISHED_RETENTION_S = 3600.0
"""Ended calls stay in the table this long (duplicate suppression), then they are deleted."""
METRICS_SCAN_S = 30.0
"""The table is scanned for the call gauges at most this often."""
COMMIT_STALL_CHECK_S = 10.0
"""How often the worker looks for partitions whose offset commit is stuck (``commit_stall.py``)."""
FLUSH_CHECK_S = 0.05
"""How often the worker checks whether held states are due to be written without a new batch (``held.py``)."""
HELD_BATCHES = 2
"""States are written at the latest after this many full batches' worth of messages (``batch_max`` each)."""


class _FaustCalls:
    """The Faust table seen through :class:`~emowatch.streams.rules_worker.batch.CallTable`."""

    def __init__(self, app: faust.App, table: Any) -> None:
        self.app, self.table = app, table

    def get(self, key: bytes) -> Any:
        return self.table.get(key)

    def items(self) -> Any:
        return self.table.items()

    def put(self, partition: int, key: bytes, value: Any) -> None:
        faust_compat.table_put(self.table, partition, key, value)

    def delete(self, partition: int, key: bytes) -> None:
        faust_compat.table_delete(self.table, partition, key)

    async def flush(self) -> None:
        await faust_compat.flush_send_buffer(self.app)

    async def delivered(self) -> None:
        await faust_compat.wait_delivered(self.app)


class RulesWorker:
    """One business line's rules worker (``*`` = every line).

    ``rules_file`` is the initial rule set and the fallback when the rules topic holds no set
    that fits this worker (precedence: ``reload.py``). Raises :class:`RulesWorkerError` when
    that file is invalid or serves another business line. ``exit`` is how the worker stops
    after a batch it cannot complete (``os._exit``: no clean-up may commit anything)."""

    def __init__(self, settings: Settings, *, business_line: str, rules_file: Path, web_port: int = 0,
                 rules_wait_s: float | None = None, finished_retention_s: float = FINISHED_RETENTION_S,
                 exit: Callable[[int], Any] = os._exit) -> None:
        k = settings.kafka
        self.business_line = business_line
        self.exit = exit
        leave_group_at_generation_zero()  # a stopped worker leaves its group on the local broker too
        self.topics = topics = topics_for(k)
        self.rules = ActiveRules(initial_selector(business_line, rules_file),
                                 settings.rules.rules_wait_s if rules_wait_s is None else rules_wait_s)
        self.app = app = faust.App(app_id(settings, business_line),
                                   **faust_config(k, web_port or 6066, bind=settings.rules.http_bind,
                                                  advertised=settings.rules.advertised_url,
                                                  instance_id=settings.rules.instance_id))
        faust_compat.set_fetch_max_wait(app, k.fetch_wait_max_ms)  # not Faust's fixed 1.5 s
        raw = dict(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw", internal=False)
        self.scores_topic = app.topic(topics.scores, **raw)
        self.alerts_topic = app.topic(topics.alerts, **raw)
        self.dlq_topic = app.topic(topics.dlq, **raw)
        # value_type stays None (plain JSON): with value_type=dict Faust's changelog recovery calls
        # dict.from_data, fails on every record and never completes.
        # Keys are the call id's UTF-8 bytes (key_type=bytes: raw serializer), exactly the scores
        # topic's key, so Faust's router (/calls forwarding) hashes a key to the partition - and the
        # worker - that holds the call; str keys are JSON-serialised ('"id"') and hash elsewhere.
        self.calls = app.Table(CALLS_TABLE, default=None, partitions=k.partitions, key_type=bytes)
        self.metrics = RulesMetrics()
        self.dead_letters = DeadLetters(k, topics.dlq, app.conf.id, metrics=self.metrics.stage)
        self.feed = RulesFeed(k, topics.rules, RulesTopicHandler(self.rules, serde_for(k, "RuleSet"), self.metrics,
                                                                 self._dead_letter))
        self.evaluator = BatchEvaluator(
            business_line=business_line, rules=self.rules, table=_FaustCalls(app, self.calls),
            scores_serde=serde_for(k, "FrameScores", float_arrays="numpy"),  # logits straight into numpy
            alert_serde=serde_for(k, "Alert"), alerts_topic=topics.alerts, send_alert=self._send_alert,
            dead_letter=self._dead_letter, metrics=self.metrics, finished=FinishedCalls(finished_retention_s),
            partitions=k.partitions)
        self.batch_max, self.batch_wait_s = settings.rules.batch_max, settings.rules.batch_wait_ms / 1000.0
        self.held = HeldMessages(HELD_BATCHES * self.batch_max)
        self._lock = asyncio.Lock()  # a batch and a flush never interleave
        self._ack: Callable[[Any], Awaitable[Any]] | None = None
        self._flusher_started = False
        self.stalls = StallDetector()
        self._feed_started = False
        self._last_scan = float("-inf")
        self.lag: int | None = None
        self._lag_failed = False
        self._starts: dict[Any, int] = {}  # low watermarks of partitions without a committed offset
        self._wire()

    # ---- sends ------------------------------------------------------------------------------
    async def _send_alert(self, key: bytes, value: bytes) -> Awaitable[Any]:
        return await self.alerts_topic.send(key=key, value=value)

    async def _dead_letter(self, source: Source, error: DeadLetterError, call_id: str | None) -> Awaitable[Any]:
        key, value = self.dead_letters.encode(source, error, call_id=call_id)
        return await self.dlq_topic.send(key=key, value=value)

    # ---- the stream -------------------------------------------------------------------------
    async def consume(self, stream: Any) -> None:
        """The agent body: wait for the rules topic, then evaluate batches until the stream ends."""
        # The feed starts here, not with @app.task: Faust starts tasks (and the web server) only
        # after table recovery, and the rule set must be known before the first message.
        if not self._feed_started:
            self._feed_started = True
            self.app.add_future(self.feed.run())
        self._ack = stream.ack
        if not self._flusher_started:
            self._flusher_started = True
            self.app.add_future(self._flush_when_due())
        await self.rules.wait_ready(self.feed.caught_up)
        # Start-up objects (Faust, the clients, the recovered table) live as long as the process: kept out of
        # the cyclic GC's full collections, which otherwise walk them all (~10 % of the evaluation time).
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_THRESHOLD0, *gc.get_threshold()[1:])  # fewer collections of the batches' young objects
        async for batch in stream.noack_take(self.batch_max, within=self.batch_wait_s):
            await self.process_batch(batch, stream.ack)

    async def process_batch(self, events: Sequence[Any], ack: Callable[[Any], Awaitable[Any]]) -> None:
        """Evaluate a batch of Faust events and hold them; write the states and acknowledge what is held when due
        (``held.py``). A batch that cannot be completed: exit 70."""
        async with self._lock:
            try:
                await self.evaluator.evaluate([faust_compat.source_of_event(e) for e in events])
            except Exception:  # noqa: BLE001 - e.g. alerts or a dead letter not deliverable
                # Nothing of this batch (nor held) is acknowledged; exit before any later commit, and let the
                # restart (supervisor / Kubernetes) re-read it from the last committed offset.
                log.critical("batch could not be completed; exiting without acknowledging it", exc_info=True)
                logging.shutdown()
                self.exit(EXIT_BATCH_FAILED)
                return
            self.held.add(events, time.monotonic())
            if self.held.due(time.monotonic()):
                await self.flush(ack)

    async def flush(self, ack: Callable[[Any], Awaitable[Any]]) -> None:
        """Write the evaluated call states, then acknowledge the messages they record (exit 70 if the write fails).
        Call it holding the lock."""
        try:
            await self.evaluator.flush()
        except Exception:  # noqa: BLE001
            log.critical("call states could not be written; exiting without acknowledging", exc_info=True)
            logging.shutdown()
            self.exit(EXIT_BATCH_FAILED)
            return
        for event in self.held.take():
            await ack(event)

    async def flush_if_due(self) -> None:
        """Write and acknowledge what is held if it is due (time), or at once on a rebalance or a stop."""
        ack = self._ack
        if ack is None or not self.held.due(time.monotonic(), urgent=faust_compat.winding_down(self.app)):
            return
        async with self._lock:
            if self.held.due(time.monotonic(), urgent=faust_compat.winding_down(self.app)):
                await self.flush(ack)

    async def _flush_when_due(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_CHECK_S)
            await self.flush_if_due()

    async def release_stuck_commits(self) -> None:
        """Seek a partition whose commits are stuck behind never-acknowledged offsets back to its
        committed offset (see ``commit_stall.py``)."""
        books = faust_compat.commit_bookkeeping(self.app)
        if books is None:  # another Faust version: nothing to inspect
            return
        acked, committed = books
        scores_acked = {tp: offsets for tp, offsets in acked.items() if tp.topic == self.topics.scores}
        for tp, (base, lowest) in self.stalls.observe(scores_acked, committed).items():
            log.warning("offset commit stuck behind a gap; re-reading from the committed offset",
                        extra={"partition": f"{tp.topic}[{tp.partition}]", "committed": base, "lowest_acked": lowest})
            self.metrics.stalls.inc()
            await self.app.consumer.seek(tp, base)

    async def measure_lag(self) -> None:
        """Set the consumer lag gauge (``lag.py``); a failure (broker unreachable) keeps the last figure."""
        if faust_compat.commit_bookkeeping(self.app) is None:  # another Faust version: nothing to inspect
            return
        try:
            highs = await faust_compat.high_watermarks(self.app, self.topics.scores)
            acked, committed = faust_compat.commit_bookkeeping(self.app)  # after the await: current
            self._starts = {tp: o for tp, o in self._starts.items() if tp in highs}
            missing = needs_start(highs, committed, self._starts)
            self._starts.update(await faust_compat.earliest_offsets(self.app, missing))
        except Exception as exc:  # noqa: BLE001 - measured again at the next tick
            if not self._lag_failed:  # once per failure streak (the timer ticks every few seconds)
                log.warning("consumer lag not measured", extra={"error": repr(exc)})
            self._lag_failed = True
            return
        self._lag_failed = False
        lag = consumer_lag(highs, acked, committed, self._starts)
        if lag is not None:
            self.lag = lag
            self.metrics.stage.lag.set(lag)

    # ---- web ----------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return {"status": "ok", "business_line": self.business_line, "rules_ready": self.rules.ready.is_set(),
                "rules_topic_records": self.feed.records, "reloads": self.rules.swaps, "consumer_lag": self.lag,
                **self.rules.selector.describe()}

    def metrics_text(self) -> bytes:
        if time.monotonic() - self._last_scan >= METRICS_SCAN_S:  # O(table) scan: not on every scrape
            self._last_scan = time.monotonic()
            states = list(self.calls.values())
            self.metrics.table_calls.set(len(states))
            self.metrics.active_calls.set(sum(1 for s in states if not call_finished(s)))
        return generate_latest(self.metrics.registry)

    def _wire(self) -> None:
        app, calls = self.app, self.calls
        app.agent(self.scores_topic, name="evaluate")(self.consume)
        app.timer(COMMIT_STALL_CHECK_S, name="release_stuck_commits")(self.release_stuck_commits)
        app.timer(LAG_EVERY_S, name="measure_lag")(self.measure_lag)

        @app.page("/health")
        async def health(web, request):
            return web.json(self.health())

        @app.page("/metrics")
        async def prom(web, request):
            return web.bytes(self.metrics_text(), content_type="text/plain; version=0.0.4")

        @app.page("/calls/{call_id}")
        @app.table_route(table=calls, match_info="call_id")
        async def call_state(web, request, call_id):
            doc = describe_call(call_id, self.evaluator.state_of(call_id, encode_key(call_id)), self.rules.current[0])
            return web.json(doc, status=200 if doc["found"] else 404)


def run_worker(settings: Settings, *, business_line: str, rules_file: Path, web_port: int = 0,
               finished_retention_s: float = FINISHED_RETENTION_S) -> None:
    """Run the worker until SIGTERM/SIGINT (Faust installs its own signal handlers)."""
    from faust.worker import Worker
    from threadpoolctl import threadpool_limits

    # One BLAS thread: the evaluation's matrix products are small, and BLAS threads that spin beside the event loop
    # only burn the CPU the loop and the broker need (measured: ~2x the CPU per message for groups of 240 calls).
    threadpool_limits(1)
    worker = RulesWorker(settings, business_line=business_line, rules_file=rules_file, web_port=web_port,
                         finished_retention_s=finished_retention_s)
    # override_logging=False keeps the JSON log format set up by the CLI (structured extras).
    faust_worker = Worker(worker.app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False,
                          override_logging=False)
    faust_worker.execute_from_commandline()
