"""The rules worker (faust-streaming): scores topic -> per-call state in a Table -> alerts topic.

One Faust app id (= consumer group) per business line. Rule evaluation is the pure
``emowatch.rules.step``; this module feeds it messages, persists its state (assigned back
to the Table so the changelog records it), publishes its events and swaps rule sets that
arrive on the rules topic (read in full by every worker, see ``rules_feed.py``).

Crash safety (at-least-once, nothing lost): a message's alerts are acknowledged by the
broker *before* the state that records the message is written to the table, and Faust
flushes the producer (changelog included) before it commits an offset. After a kill -9 the
table recovers a state that is never ahead of the delivered alerts; messages after the
committed offset are evaluated again, those the state already holds are dropped as
duplicates (same call, role, seq) and the rest re-emit identical alerts (``alert_id`` is
deterministic), which consumers dedupe by ``alert_id``.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit
from typing import Any

import faust
from prometheus_client import generate_latest

from emowatch.rules.compiler import CompiledRuleSet, compile_ruleset
from emowatch.rules.engine import call_finished, state_size_bytes, step
from emowatch.rules.errors import RuleFileError, ScoresError
from emowatch.rules.examples import run_examples
from emowatch.rules.loader import load_ruleset
from emowatch.rules.model import RuleSet
from emowatch.streams.rules_worker.call_view import describe_call
from emowatch.streams.rules_worker.commit_stall import StallDetector
from emowatch.streams.rules_worker.finished_calls import FinishedCalls
from emowatch.topics.registry import partition_of
from emowatch.streams.kafka.clients import serde_for, topics_for
from emowatch.streams.kafka.rules_feed import RulesFeed
from emowatch.streams.kafka.security import faust_credentials
from emowatch.streams.observability import StageMetrics
from emowatch.streams.rules_worker.reload import RuleSetRejected, RuleSetSelector, ruleset_from_record
from emowatch.streams.settings import KafkaSettings, Settings
from emowatch.topics.dlq import dead_letter
from emowatch.topics.serde import SerdeError

log = logging.getLogger("emowatch.rules")

STATE_SIZE_SAMPLE = 16
"""Measure the stored state size (``len(json)``) of every n-th table write."""
CHANGELOG_CHUNK = 64
"""A batch's table writes are handed to the producer this many at a time (Faust's send buffer holds 100)."""
STEP_SAMPLE = 8
"""Time the rule evaluation of every n-th message (``emowatch_rules_step_seconds``)."""
FINISHED_RETENTION_S = 3600.0
"""Ended calls stay in the table this long (duplicate suppression), then they are deleted."""
METRICS_SCAN_S = 30.0
"""The table is scanned for the call gauges at most this often."""
COMMIT_STALL_CHECK_S = 10.0
"""How often the worker looks for partitions whose offset commit is stuck (``commit_stall.py``)."""


def app_id(settings: Settings, business_line: str) -> str:
    line = "all" if business_line == "*" else business_line
    return f"{settings.kafka.topic_prefix}{settings.rules.app_prefix}-{line}"


class ActiveRules:
    """The rule set in force. ``current`` is swapped by one reference assignment, and the
    agent reads it once per message, so every message is evaluated by exactly one version."""

    def __init__(self, selector: RuleSetSelector, wait_s: float) -> None:
        self.selector = selector
        self.current: tuple[RuleSet, CompiledRuleSet] = self._pair()
        self.wait_s = wait_s
        self.ready = asyncio.Event()
        self.swaps = 0
        self.feed_started = False

    def _pair(self) -> tuple[RuleSet, CompiledRuleSet]:
        rs = self.selector.active.ruleset
        return rs, compile_ruleset(rs)

    def swap(self) -> None:
        old = self.current[0]
        self.current = self._pair()
        self.swaps += 1
        log.info("rule set activated", extra={"rule_set": self.current[0].rule_set, "rule_version": self.current[0].version,
                                              "source": self.selector.active.source, "previous": old.version})

    def start_feed(self, app: faust.App, feed: RulesFeed) -> None:
        """Start following the rules topic once per process (cancelled when the app stops)."""
        if not self.feed_started:
            self.feed_started = True
            app.add_future(feed.run())

    async def wait_ready(self, feed: RulesFeed) -> None:
        """Hold back scores until the rules topic has been read (at most ``wait_s``)."""
        if not feed.caught_up.is_set():
            try:
                await asyncio.wait_for(feed.caught_up.wait(), self.wait_s)
            except asyncio.TimeoutError:
                log.error("rules topic not read within %.0fs; evaluating with %s until it is",
                          self.wait_s, self.selector.active.source)
        self.ready.set()


def table_put(table: Any, partition: int, key: bytes, value: Any) -> None:
    """``table[key] = value`` with the changelog record on ``partition`` (the message's).

    Equivalent to the item assignment for a non-windowed table on the memory store, which
    takes the partition from Faust's *current event*; batches (``noack_take``) are handled
    outside Faust's per-event context, so the partition is passed explicitly."""
    table.data[key] = value
    table.send_changelog(partition, key, value)


def table_delete(table: Any, partition: int, key: bytes) -> None:
    """``del table[key]`` with the tombstone on ``partition`` (see :func:`table_put`)."""
    del table.data[key]
    table.send_changelog(partition, key, None, value_serializer="raw")


class RulesWorkerError(Exception):
    """The worker cannot start: invalid rules file, or one for another business line."""


def _initial_selector(business_line: str, rules_file: Path) -> RuleSetSelector:
    try:
        ruleset = load_ruleset(rules_file)
    except RuleFileError as exc:
        raise RulesWorkerError(f"invalid rules file: {exc}") from exc
    failures = run_examples(ruleset)
    if failures:
        raise RulesWorkerError(f"{len(failures)} rule example(s) fail; first: {failures[0]}")
    try:
        return RuleSetSelector(business_line, ruleset, f"file:{rules_file}")
    except ValueError as exc:
        raise RulesWorkerError(str(exc)) from exc


def advertised_url(bind: str, port: int, configured: str | None = None) -> str:
    """The URL other workers use to reach this one (``/calls`` forwarding): ``configured``, else
    ``http://<bind>:<port>``, with the host name instead of a wildcard bind address."""
    if configured:
        return configured.rstrip("/")
    host = socket.gethostname() if bind in ("0.0.0.0", "::", "") else bind
    return f"http://{host}:{port}"


def faust_config(kafka: KafkaSettings, web_port: int, *, bind: str = "127.0.0.1",
                 advertised: str | None = None, instance_id: str | None = None) -> dict[str, Any]:
    """Faust settings of the rules worker (the benchmark's bare loop uses the very same).

    The producer does not linger: the rules worker hands a batch's states to it in chunks of
    ``CHANGELOG_CHUNK``, so they leave in few requests anyway, and a linger would delay every
    batch's alert acknowledgement."""
    canonical = advertised_url(bind, web_port, advertised)
    return dict(
        broker=f"kafka://{kafka.bootstrap_servers}", broker_credentials=faust_credentials(kafka), store="memory://",
        topic_partitions=kafka.partitions, topic_replication_factor=kafka.replication_factor,
        broker_session_timeout=kafka.session_timeout_ms / 1000.0,
        broker_heartbeat_interval=max(0.25, kafka.session_timeout_ms / 4000.0),
        consumer_auto_offset_reset="earliest", producer_acks=-1,
        web_enabled=True, web_host=urlsplit(canonical).hostname, web_port=web_port, web_bind=bind,
        canonical_url=canonical, web_in_thread=False, table_cleanup_interval=60.0,
        consumer_group_instance_id=instance_id, logging_config=None)


def build_app(settings: Settings, *, business_line: str, rules_file: Path, web_port: int = 0,
              rules_wait_s: float = 30.0, finished_retention_s: float = FINISHED_RETENTION_S) -> faust.App:
    """The Faust app of one business line's rules worker (``*`` = every line).

    ``rules_file`` is the initial rule set and the fallback when the rules topic holds no set
    that fits this worker (precedence: ``emowatch.streams.rules_worker.reload``). Raises
    :class:`RulesWorkerError` when that file is invalid or serves another business line.
    """
    k = settings.kafka
    topics = topics_for(k)
    rules = ActiveRules(_initial_selector(business_line, rules_file), rules_wait_s)
    port = web_port or 6066
    app = faust.App(app_id(settings, business_line),
                    **faust_config(k, port, bind=settings.rules.http_bind, advertised=settings.rules.advertised_url,
                                   instance_id=settings.rules.instance_id))
    raw = dict(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw", internal=False)
    scores_topic = app.topic(topics.scores, **raw)
    alerts_topic = app.topic(topics.alerts, **raw)
    dlq_topic = app.topic(topics.dlq, **raw)
    # value_type stays None (plain JSON): with value_type=dict Faust's changelog recovery calls
    # dict.from_data, fails on every record and never completes.
    # Keys are the call id's UTF-8 bytes (key_type=bytes: raw serializer), exactly the scores
    # topic's key, so Faust's router (/calls forwarding) hashes a key to the partition - and the
    # worker - that holds the call; str keys are JSON-serialised ('"id"') and hash elsewhere.
    calls = app.Table("calls", default=None, partitions=k.partitions, key_type=bytes)
    scores_serde = serde_for(k, "FrameScores", float_arrays="numpy")  # logits straight into numpy
    alert_serde, dlq_serde, rules_serde = (serde_for(k, n) for n in ("Alert", "DeadLetter", "RuleSet"))
    metrics = StageMetrics("rules")
    m_alerts = metrics.counter("rules_alerts", "Alert events published")
    m_swaps = metrics.counter("rules_reloads", "Rule-set swaps (hot reloads) after start")
    m_rejected = metrics.counter("rules_rejected", "Rule sets from the rules topic rejected (kept the good one)")
    m_bytes = metrics.histogram("rules_state_bytes", "Stored state of an active call, bytes (sampled writes)",
                                (256, 512, 1024, 2048, 4096, 8192, 16384, 65536))
    m_active = metrics.gauge("rules_active_calls", "Calls in this worker's table that have not ended")
    m_calls = metrics.gauge("rules_table_calls", "Calls in this worker's table (ended ones included)")
    m_step = metrics.histogram("rules_step_seconds", "Rule evaluation (step) time per message (every 8th)",
                               (5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 0.02, 0.1))
    m_expired = metrics.counter("rules_calls_expired", "Ended calls deleted from the table after the retention")
    writes = [0]
    seen = [0]
    finished = FinishedCalls(finished_retention_s)
    seeded = [False]
    last_scan = [float("-inf")]

    async def _dead_letter(stage: str, reason: str, exc: BaseException | None, *, topic: str, partition: int,
                           offset: int, key: bytes | None, value: bytes | None, headers: list, call_id: str | None) -> None:
        metrics.errors.labels(stage.lower()).inc()
        metrics.dlq.inc()
        log.warning("dead-lettered message", extra={"stage": stage, "reason": reason, "call_id": call_id,
                                                    "source": f"{topic}[{partition}]@{offset}"})
        dl = dead_letter(stage=stage, reason=reason, error=exc, source_topic=topic, source_partition=partition,
                         source_offset=offset, key=key, value=value, headers=headers, call_id=call_id,
                         service=app.conf.id, now_ms=int(time.time() * 1000))
        await dlq_topic.send(key=key, value=dlq_serde.encode(dl, topic=topics.dlq))

    async def _dlq_event(stage: str, reason: str, exc: BaseException, event, call_id: str | None) -> None:
        msg = event.message
        await _dead_letter(stage, reason, exc, topic=msg.topic, partition=msg.partition, offset=msg.offset,
                           key=event.key, value=event.value, headers=list(msg.headers or []), call_id=call_id)

    async def on_rules_record(key: bytes | None, value: bytes | None, offset: int) -> None:
        source = f"topic:{topics.rules}@{offset}"
        try:
            if key is None:
                raise RuleSetRejected("DECODE", f"{source}: record without a key (the key must be the rule-set id)")
            if value is None:
                ruleset = None  # tombstone: the key's rule set is withdrawn
            else:
                try:
                    record = rules_serde.decode(value, topic=topics.rules, partition=0, offset=offset)
                except SerdeError as exc:
                    raise RuleSetRejected("DECODE", f"{source}: {exc}") from exc
                ruleset = ruleset_from_record(key, record)
        except RuleSetRejected as exc:
            m_rejected.inc()
            log.error("rule set rejected; keeping %s", rules.selector.active.source,
                      extra={"reason": exc.reason, "offset": offset})
            try:
                await _dead_letter(exc.stage, exc.reason, exc, topic=topics.rules, partition=0, offset=offset,
                                   key=key, value=value, headers=[], call_id=None)
            except Exception:  # the DLQ is best effort here: the rejection is logged and counted
                log.exception("could not dead-letter the rejected rule set")
            return
        if rules.selector.offer(key.decode("utf-8", "replace"), ruleset, offset, source):
            rules.swap()
            if rules.ready.is_set():
                m_swaps.inc()

    feed = RulesFeed(k, topics.rules, on_rules_record)

    def in_scope(line: str) -> bool:
        return business_line == "*" or line == business_line

    async def evaluate_one(event, working: dict[str, list[Any]], pending: list[Any]) -> None:
        """Evaluate one message into ``working`` (call -> [state before the batch, state, partition]);
        its alerts are sent now and acknowledged with the batch."""
        msg = event.message
        metrics.received.inc()
        seen[0] += 1
        try:
            record = scores_serde.decode(event.value, topic=msg.topic, partition=msg.partition, offset=msg.offset)
        except SerdeError as exc:
            await _dlq_event("DECODE", str(exc), exc, event, None)
            return
        if not in_scope(record["business_line"]):
            metrics.discarded.labels("other_business_line").inc()
            return
        call_id = record["call_id"]
        crs = rules.current[1]  # one read: a hot reload takes effect between messages
        entry = working.get(call_id)
        old = entry[1] if entry is not None else calls.get(call_id.encode())
        timed = seen[0] % STEP_SAMPLE == 0
        t0 = time.perf_counter() if timed else 0.0
        try:
            state, events = step(old, record, crs)
        except ScoresError as exc:
            await _dlq_event("EVALUATE", str(exc), exc, event, call_id)
            return
        except Exception as exc:  # a bug must not stall the partition: keep the evidence in the DLQ
            log.exception("rule evaluation failed", extra={"call_id": call_id})
            await _dlq_event("EVALUATE", f"unexpected {type(exc).__name__}: {exc}", exc, event, call_id)
            return
        if timed:
            m_step.observe(time.perf_counter() - t0)
        if state is old:
            metrics.discarded.labels("duplicate").inc()
            return
        for ev in events:
            log.info("alert", extra={"call_id": call_id, "alert_id": ev["alert_id"], "status": ev["status"],
                                     "rule_id": ev["rule_id"], "rule_version": ev["rule_version"]})
            pending.append(await alerts_topic.send(key=call_id.encode(),
                                                   value=alert_serde.encode(ev, topic=topics.alerts)))
        if entry is None:
            working[call_id] = [old, state, msg.partition]
        else:
            entry[1] = state

    async def handle_batch(batch) -> None:
        """Evaluate a batch; await its alerts' acks; then write each touched call's state once.

        The agent acknowledges the batch's messages only after this returns, so their offsets
        are committed only after their alerts and states were handed to the producer (Faust
        flushes the producer before it commits)."""
        working: dict[str, list[Any]] = {}
        pending: list[Any] = []
        for event in batch:
            await evaluate_one(event, working, pending)
        if pending:
            await asyncio.gather(*pending)  # acked before the states that record them are written
            m_alerts.inc(len(pending))
            metrics.sent.inc(len(pending))
        now = time.monotonic()
        partitions = set()
        for i, (call_id, (before, state, partition)) in enumerate(working.items(), 1):
            table_put(calls, partition, call_id.encode(), state)
            if i % CHANGELOG_CHUNK == 0:  # Faust's send buffer warns ("producer buffer full") past 100
                await app.producer.buffer.flush()
            partitions.add(partition)
            writes[0] += 1
            ended = call_finished(state)
            if writes[0] % STATE_SIZE_SAMPLE == 0 and not ended:
                m_bytes.observe(state_size_bytes(state))
            if ended and (before is None or not call_finished(before)):
                finished.add(partition, call_id, now)
        for partition in partitions:  # tombstones go to the partition the call's messages are on
            for gone in finished.due(partition, now):
                if call_finished(calls.get(gone.encode())):
                    table_delete(calls, partition, gone.encode())
                    m_expired.inc()

    def seed_finished() -> None:
        """Ended calls recovered from the changelog start their retention now."""
        now = time.monotonic()
        for cid, st in list(calls.items()):
            if call_finished(st):
                finished.add(partition_of(cid, k.partitions), cid.decode("utf-8"), now)
        seeded[0] = True

    batch_max, batch_wait_s = settings.rules.batch_max, settings.rules.batch_wait_ms / 1000.0

    @app.agent(scores_topic)
    async def evaluate(stream):
        # Started here, not with @app.task: Faust starts tasks (and the web server) only after
        # table recovery, and the rule set must be known before the first message.
        rules.start_feed(app, feed)
        await rules.wait_ready(feed)
        # noack_take: Faust's take_events acknowledges a batch in a `finally`, i.e. also when its
        # handling failed or was cancelled half-way; here only a fully handled batch is acknowledged.
        async for batch in stream.noack_take(batch_max, within=batch_wait_s):
            if not seeded[0]:  # the table is recovered once events flow
                seed_finished()
            try:
                await handle_batch(batch)
            except Exception:  # noqa: BLE001 - e.g. alerts or a dead letter not deliverable
                # Nothing of this batch is acknowledged; exit before any later commit, and let
                # the restart (supervisor / Kubernetes) re-read it from the last committed offset.
                log.critical("batch could not be completed; exiting without acknowledging it", exc_info=True)
                logging.shutdown()
                os._exit(70)
            for event in batch:
                await stream.ack(event)

    stalls = StallDetector()
    m_stalls = metrics.counter("rules_commit_stalls", "Stuck partition commits released by seeking back (faust#681)")

    async def release_stuck_commits() -> None:
        """Seek a partition whose commits are stuck behind never-acknowledged offsets back to its
        committed offset (see ``emowatch.streams.rules_worker.commit_stall``; reads Faust's consumer bookkeeping)."""
        consumer = app.consumer
        acked, committed = getattr(consumer, "_acked", None), getattr(consumer, "_committed_offset", None)
        if acked is None or committed is None:  # another Faust version: nothing to inspect
            return
        scores_acked = {tp: list(offsets) for tp, offsets in list(acked.items()) if tp.topic == topics.scores}
        for tp, (base, lowest) in stalls.observe(scores_acked, dict(committed)).items():
            log.warning("offset commit stuck behind a gap; re-reading from the committed offset",
                        extra={"partition": f"{tp.topic}[{tp.partition}]", "committed": base, "lowest_acked": lowest})
            m_stalls.inc()
            await consumer.seek(tp, base)

    app.timer(COMMIT_STALL_CHECK_S, name="release_stuck_commits")(release_stuck_commits)

    def health_doc() -> dict[str, Any]:
        return {"status": "ok", "business_line": business_line, "rules_ready": rules.ready.is_set(),
                "rules_topic_records": feed.records, "reloads": rules.swaps, **rules.selector.describe()}

    @app.page("/health")
    async def health(web, request):
        return web.json(health_doc())

    @app.page("/metrics")
    async def prom(web, request):
        if time.monotonic() - last_scan[0] >= METRICS_SCAN_S:  # O(table) scan: not on every scrape
            last_scan[0] = time.monotonic()
            states = list(calls.values())
            m_calls.set(len(states))
            m_active.set(sum(1 for s in states if not call_finished(s)))
        return web.bytes(generate_latest(metrics.registry), content_type="text/plain; version=0.0.4")

    @app.page("/calls/{call_id}")
    @app.table_route(table=calls, match_info="call_id")
    async def call_state(web, request, call_id):
        doc = describe_call(call_id, calls.get(call_id.encode()), rules.current[0])
        return web.json(doc, status=200 if doc["found"] else 404)

    app.emowatch_rules = rules  # for tests and tools
    app.emowatch_feed = feed
    app.emowatch_release_stuck_commits = release_stuck_commits
    return app


def run_worker(settings: Settings, *, business_line: str, rules_file: Path, web_port: int = 0,
               finished_retention_s: float = FINISHED_RETENTION_S) -> None:
    """Run the worker until SIGTERM/SIGINT (Faust installs its own signal handlers)."""
    from faust.worker import Worker

    app = build_app(settings, business_line=business_line, rules_file=rules_file, web_port=web_port,
                    finished_retention_s=finished_retention_s)
    # override_logging=False keeps the JSON log format set up by the CLI (structured extras).
    worker = Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False, override_logging=False)
    worker.execute_from_commandline()
