"""The rules worker, the sink and the notifier export their consumer lag (``emowatch_<worker>_consumer_lag``,
and ``consumer_lag`` in /health): it counts the messages published while the worker is held back, grows while
its partitions are paused, and returns to 0 once the worker has caught up.

Each worker runs as a real process (``emowatch worker ...`` through LocalStack) and is held back by
something that lasts until the test ends it: the rules worker waits for a rules topic that does not exist
yet (it holds back scores until the rules topic is read, up to 30 s), the sink's ClickHouse writes fail
(``EMOWATCH_FAULT_POINTS``: the sink pauses its partitions; a second sink without the fault catches up), the
notifier's webhook receiver holds every request until the test releases it.
"""
from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.error
import urllib.request

import pytest
from aiohttp import web
from confluent_kafka.admin import AdminClient, NewTopic
from notify_helpers import alert, publish, write_config
from polling import poll

from emowatch.streams.kafka.admin import ensure_topics
from emowatch.streams.kafka.clients import make_producer, serde_for, topics_for
from emowatch.streams.local.demo import default_rules_file
from emowatch.streams.local.http_thread import BackgroundApp
from emowatch.streams.local.stack import LocalStack
from emowatch.topics.examples import example_record
from emowatch.topics.registry import Topics, topic_config

pytestmark = pytest.mark.integration
TIMEOUT = 120


def health(stack: LocalStack, name: str) -> dict | None:
    """The worker's /health JSON, whatever its status (503 while the sink waits for ClickHouse)."""
    url = f"http://127.0.0.1:{stack.workers[name].http_port}/health"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())
    except (OSError, ValueError):
        return None


def metric(stack: LocalStack, name: str, sample: str) -> float | None:
    """The value of ``sample`` (a metric name with its labels, as /metrics writes it), None if absent."""
    url = f"http://127.0.0.1:{stack.workers[name].http_port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
    except (OSError, ValueError):
        return None
    m = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def wait_for(stack: LocalStack, what: str, check, timeout: float = TIMEOUT):
    return poll(check, what, timeout=timeout, check=stack.check_workers)


def lag_is(stack: LocalStack, name: str, worker: str, expected):
    """A check: the gauge and /health agree and ``expected(lag)`` holds."""
    def check():
        gauge = metric(stack, name, f"emowatch_{worker}_consumer_lag")
        h = health(stack, name) or {}
        lag = h.get("consumer_lag")
        return lag is not None and gauge == lag and expected(lag)
    return check


def publish_scores(kafka, n: int, first: int = 0) -> None:
    """``n`` score messages, one record batch each (the local broker's ListOffsets counts whole batches)."""
    t = topics_for(kafka)
    serde = serde_for(kafka, "FrameScores")
    producer = make_producer(kafka, **{"linger.ms": 0})
    now = int(time.time() * 1000)
    for i in range(first, first + n):
        rec = example_record("FrameScores", call_id=f"lag-call-{i % 7}", seq=i // 7, event_time=now)
        producer.produce(t.scores, key=rec["call_id"].encode(), value=serde.encode(rec, topic=t.scores))
        assert producer.flush(30) == 0


def test_rules_worker_lag_counts_the_scores_it_holds_back_then_returns_to_zero(broker, tmp_path, unique):
    stack = LocalStack(data_dir=tmp_path / "stack", broker=broker, topic_prefix=f"lr{unique}.")
    stack.start(create_topics=False)
    try:
        registry = Topics(prefix=stack.topic_prefix, partitions=stack.partitions)
        admin = AdminClient({"bootstrap.servers": stack.bootstrap})
        missing = [NewTopic(name, registry.partitions_for(spec), 1, config=topic_config(spec))
                   for name, spec in registry.specs() if name != registry.rules]  # no rules topic: the worker waits
        for fut in admin.create_topics(missing).values():
            fut.result(30)
        kafka = stack.kafka_settings()
        n = 40
        stack.start_worker("rules", ["rules", "--business-line", "*", "--rules-file", str(default_rules_file())],
                           env={"EMOWATCH_RULES__RULES_WAIT_S": "600"})  # holds the scores back until the topic exists
        stack.wait_healthy("rules", timeout_s=TIMEOUT)
        publish_scores(kafka, n)
        wait_for(stack, f"rules lag {n}", lag_is(stack, "rules", "rules", lambda lag: lag == n))
        assert metric(stack, "rules", "emowatch_rules_received_total") == 0
        ensure_topics(stack.bootstrap, registry)  # the rules topic appears: the worker evaluates the backlog
        wait_for(stack, "rules lag 0", lambda: lag_is(stack, "rules", "rules", lambda lag: lag == 0)()
                 and metric(stack, "rules", "emowatch_rules_received_total") == n)
        assert stack.stop_worker("rules") == 0
    finally:
        stack.stop()


def test_sink_lag_grows_while_clickhouse_fails_and_returns_to_zero_after(broker, tmp_path, unique):
    stack = LocalStack(data_dir=tmp_path / "stack", broker=broker, topic_prefix=f"ls{unique}.").start()
    try:
        kafka = stack.kafka_settings()
        env = {"EMOWATCH_SINK__BATCH_MS": "20"}
        stack.start_worker("sink", ["sink"], env={**env, "EMOWATCH_FAULT_POINTS": "sink.after_record=raise@1-"})
        wait_for(stack, "sink connected", lambda: (health(stack, "sink") or {}).get("status") == "ok")
        publish_scores(kafka, 30)
        wait_for(stack, "a failed insert", lambda: (metric(stack, "sink", "emowatch_sink_insert_failures_total")
                                                    or 0) >= 1)
        wait_for(stack, "sink lag 30", lag_is(stack, "sink", "sink", lambda lag: lag == 30))
        publish_scores(kafka, 20, first=30)  # while the partitions are paused: asked from the broker
        wait_for(stack, "sink lag 50", lag_is(stack, "sink", "sink", lambda lag: lag == 50))
        stack.stop_worker("sink")
        stack.start_worker("sink", ["sink"], env=env)
        wait_for(stack, "sink lag 0", lambda: lag_is(stack, "sink", "sink", lambda lag: lag == 0)()
                 and metric(stack, "sink", "emowatch_sink_rows_written_total") == 50)
        assert stack.stop_worker("sink") == 0
    finally:
        stack.stop()


class HeldReceiver:
    """A webhook receiver that answers 503 to its first request and holds every other one until released."""

    def __init__(self) -> None:
        self.requests = 0
        self.released = asyncio.Event()

        async def handle(request: web.Request) -> web.Response:
            await request.read()
            self.requests += 1
            if self.requests == 1:
                return web.Response(status=503)
            await self.released.wait()
            return web.Response(status=200)

        self._server = BackgroundApp(lambda app: app.router.add_post("/hook", handle), name="held-receiver").start()
        self.port = self._server.port

    def release(self) -> None:
        self._server.loop.call_soon_threadsafe(self.released.set)

    def stop(self) -> None:
        self._server.stop()


def test_notifier_lag_counts_alerts_not_delivered_yet_and_its_failed_attempts(broker, tmp_path, unique):
    receiver = HeldReceiver()
    stack = LocalStack(data_dir=tmp_path / "stack", broker=broker, topic_prefix=f"ln{unique}.").start()
    try:
        kafka = stack.kafka_settings()
        cfg, secrets = write_config(tmp_path, receiver.port, group_wait="0s", timeout="120s", max_attempts=3)
        stack.start_worker("notify", ["notify", "--config", str(cfg)],
                           env={"EMOWATCH_NOTIFY__SECRETS_FILE": str(secrets)})
        stack.wait_healthy("notify", timeout_s=TIMEOUT)
        n = 5
        publish(kafka, [alert(f"call-{i}") for i in range(n)])
        wait_for(stack, f"notifier lag {n}", lag_is(stack, "notify", "notify", lambda lag: lag == n))
        receiver.release()
        wait_for(stack, "notifier lag 0", lambda: lag_is(stack, "notify", "notify", lambda lag: lag == 0)()
                 and metric(stack, "notify", "emowatch_notify_sent_total") == n)
        labels = '{integration="webhook[0]",receiver="hook"}'
        assert metric(stack, "notify", f"emowatch_notify_failed_attempts_total{labels}") == 1
        ok = '{integration="webhook[0]",outcome="ok",receiver="hook"}'
        assert metric(stack, "notify", f"emowatch_notify_deliveries_total{ok}") == n
        assert stack.stop_worker("notify") == 0
    finally:
        stack.stop()
        receiver.stop()
