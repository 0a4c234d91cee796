"""The rules worker (faust-streaming): scores topic -> per-call state in a Table -> alerts topic.

One Faust app id (= consumer group) per business line. Rule evaluation is the
pure ``emowatch.rules`` step function; this module only feeds it messages,
persists its state (assigned back to the Table so the changelog records it)
and publishes its events. At-least-once: Faust flushes the producer before it
commits offsets, and ``alert_id`` is deterministic, so a crash and restart
re-publishes identical alerts at worst (consumers dedupe by ``alert_id``).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import faust
from prometheus_client import generate_latest

from emowatch.rules.compiler import compile_ruleset
from emowatch.rules.engine import step
from emowatch.rules.errors import ScoresError
from emowatch.rules.loader import load_ruleset
from emowatch.streams.io.kafka import serde_for, topics_for
from emowatch.streams.observability import StageMetrics
from emowatch.streams.settings import Settings
from emowatch.topics.dlq import dead_letter
from emowatch.topics.serde import SerdeError

log = logging.getLogger("emowatch.rules")


def app_id(settings: Settings, business_line: str) -> str:
    line = "all" if business_line == "*" else business_line
    return f"{settings.kafka.topic_prefix}{settings.rules.app_prefix}-{line}"


def build_app(settings: Settings, *, business_line: str, rules_file: Path, web_port: int = 0) -> faust.App:
    k = settings.kafka
    topics = topics_for(k)
    ruleset = load_ruleset(rules_file)
    holder = {"ruleset": ruleset, "compiled": compile_ruleset(ruleset)}
    app = faust.App(
        app_id(settings, business_line),
        broker=f"kafka://{k.bootstrap_servers}",
        store="memory://",
        topic_partitions=k.partitions,
        topic_replication_factor=k.replication_factor,
        broker_session_timeout=k.session_timeout_ms / 1000.0,
        broker_heartbeat_interval=max(0.25, k.session_timeout_ms / 4000.0),
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        web_enabled=True,
        web_host="127.0.0.1",
        web_port=web_port or 6066,
        web_bind="127.0.0.1",
        web_in_thread=False,
        table_cleanup_interval=60.0,
        logging_config=None,
    )
    scores_topic = app.topic(topics.scores, key_type=bytes, value_type=bytes, key_serializer="raw",
                             value_serializer="raw", internal=False)
    alerts_topic = app.topic(topics.alerts, key_type=bytes, value_type=bytes, key_serializer="raw",
                             value_serializer="raw", internal=False)
    dlq_topic = app.topic(topics.dlq, key_type=bytes, value_type=bytes, key_serializer="raw",
                          value_serializer="raw", internal=False)
    calls = app.Table("calls", default=None, partitions=k.partitions, key_type=str, value_type=dict)
    scores_serde, alert_serde, dlq_serde = (serde_for(k, n) for n in ("FrameScores", "Alert", "DeadLetter"))
    metrics = StageMetrics("rules")
    m_alerts = metrics.counter("rules_alerts", "Alert events published")

    async def _dead_letter(stage: str, reason: str, exc: BaseException, event, call_id: str | None) -> None:
        msg = event.message
        metrics.errors.labels(stage.lower()).inc()
        metrics.dlq.inc()
        log.warning("dead-lettered message", extra={"stage": stage, "reason": reason, "call_id": call_id,
                                                    "source": f"{msg.topic}[{msg.partition}]@{msg.offset}"})
        dl = dead_letter(stage=stage, reason=reason, error=exc, source_topic=msg.topic,
                         source_partition=msg.partition, source_offset=msg.offset, key=event.key,
                         value=event.value, headers=list(msg.headers or []), call_id=call_id,
                         service=app.conf.id, now_ms=int(time.time() * 1000))
        await dlq_topic.send(key=event.key, value=dlq_serde.encode(dl, topic=topics.dlq))

    def in_scope(line: str) -> bool:
        return business_line == "*" or line == business_line

    @app.agent(scores_topic)
    async def evaluate(stream):
        async for event in stream.events():
            msg = event.message
            metrics.received.inc()
            try:
                record = scores_serde.decode(event.value, topic=msg.topic, partition=msg.partition, offset=msg.offset)
            except SerdeError as exc:
                await _dead_letter("DECODE", str(exc), exc, event, None)
                continue
            if not in_scope(record["business_line"]):
                metrics.discarded.labels("other_business_line").inc()
                continue
            call_id = record["call_id"]
            try:
                state, events = step(calls.get(call_id), record, holder["compiled"])
            except ScoresError as exc:
                await _dead_letter("EVALUATE", str(exc), exc, event, call_id)
                continue
            except Exception as exc:  # a bug must not stall the partition: keep the evidence in the DLQ
                log.exception("rule evaluation failed", extra={"call_id": call_id})
                await _dead_letter("EVALUATE", f"unexpected {type(exc).__name__}: {exc}", exc, event, call_id)
                continue
            for ev in events:
                log.info("alert", extra={"call_id": call_id, "alert_id": ev["alert_id"], "status": ev["status"],
                                         "rule_id": ev["rule_id"]})
                await alerts_topic.send(key=call_id.encode(), value=alert_serde.encode(ev, topic=topics.alerts))
                m_alerts.inc()
            calls[call_id] = state  # assign back: in-place mutation would skip the changelog
            metrics.sent.inc(len(events))

    @app.page("/health")
    async def health(web, request):
        rs = holder["ruleset"]
        return web.json({"status": "ok", "business_line": business_line, "rule_set": rs.rule_set,
                         "rule_version": rs.version})

    @app.page("/metrics")
    async def prom(web, request):
        return web.bytes(generate_latest(metrics.registry), content_type="text/plain; version=0.0.4")

    @app.page("/calls/{call_id}")
    @app.table_route(table=calls, match_info="call_id")
    async def call_state(web, request, call_id):
        return web.json({"call_id": call_id, "state": calls.get(call_id)})

    app.emowatch_holder = holder  # for hot reload (issue 6) and tests
    return app


def run_worker(settings: Settings, *, business_line: str, rules_file: Path, web_port: int = 0) -> None:
    """Run the worker until SIGTERM/SIGINT (Faust installs its own signal handlers)."""
    from faust.worker import Worker

    app = build_app(settings, business_line=business_line, rules_file=rules_file, web_port=web_port)
    worker = Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
