"""The sink worker in server mode (``EMOWATCH_SINK__CLICKHOUSE_URL``), without a ClickHouse server:

* unreachable (http://127.0.0.1:<closed port>): the worker starts anyway and waits with its back-off -
  /health says ``waiting`` with the error, the log names the URL without its password - joins no group,
  commits nothing, and stops cleanly on SIGTERM;
* recovery: the "server" is ``tests/clickhouse_relay.py`` (ClickHouse's HTTP interface answered by an
  embedded chDB in this process), started only after the sink has failed to reach it, stopped again while
  the sink writes and started again: the sink connects, migrates, writes, pauses through the outage and
  stores every row once;
* a rejected password (the stand-in answers 403, code 516 AUTHENTICATION_FAILED, as ClickHouse does): not
  retryable, the sink stops at start-up instead of waiting.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from clickhouse_relay import ClickHouseRelay
from sink_helpers import count_inserted_rows, inserted_rows

from emowatch.streams.kafka.admin import group_lag
from emowatch.streams.kafka.clients import group_name, make_producer, serde_for, topics_for
from emowatch.streams.local.broker import free_port
from emowatch.streams.local.stack import LocalStack
from emowatch.topics.examples import example_record
from emowatch.topics.security import MASK

pytestmark = pytest.mark.integration
PW = "s3cr3tPW-ch-unreach-51c"


def _health(port: int) -> dict | None:
    """/health's JSON whatever its status code (503 while waiting), None while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return json.loads(err.read())
    except OSError:
        return None


def test_an_unreachable_clickhouse_keeps_the_sink_waiting_without_reading_and_sigterm_stops_it(broker, tmp_path,
                                                                                               unique):
    stack = LocalStack(data_dir=tmp_path, broker=broker, topic_prefix=f"su{unique}.").start()
    try:
        kafka = stack.kafka_settings()
        t = topics_for(kafka)
        producer, serde = make_producer(kafka), serde_for(kafka, "FrameScores")
        for i in range(5):
            rec = example_record("FrameScores", call_id=f"c-{i}", seq=i, event_time=int(time.time() * 1000))
            producer.produce(t.scores, key=rec["call_id"].encode(), value=serde.encode(rec, topic=t.scores))
        assert producer.flush(30) == 0
        group, topics = group_name(kafka, "emowatch-sink"), [t.scores, t.alerts]
        url = f"http://emowatch:{PW}@127.0.0.1:{free_port()}"  # nothing listens there
        w = stack.start_worker("sink", ["sink"], env={"EMOWATCH_SINK__CLICKHOUSE_URL": url})
        deadline = time.monotonic() + 60
        while _failures(stack) < 3 or (health := _health(w.http_port)) is None:  # three attempts, 0.5 + 1 s apart
            stack.check_workers()
            assert time.monotonic() < deadline, f"the sink did not report waiting:\n{w.tail()}"
            time.sleep(0.1)  # polling interval of a deadline loop
        assert health["status"] == "waiting" and health["paused"] and "Connection refused" in health["error"], health
        assert PW not in json.dumps(health)
        assert group_lag(stack.bootstrap, group, topics) == {t.scores: 5, t.alerts: 0}  # nothing committed
        assert stack.stop_worker("sink") == 0  # SIGTERM while waiting: a clean exit
        text = (tmp_path / "logs" / "sink.log").read_text()
        waiting = [json.loads(line) for line in text.splitlines()
                   if '"msg": "clickhouse unreachable at start-up: waiting"' in line]
        assert len(waiting) >= 3 and waiting[0]["clickhouse"] == url.replace(PW, MASK)
        assert [r["retry_in_s"] for r in waiting[:3]] == [0.5, 1.0, 2.0]  # the back-off
        assert PW not in text
        assert group_lag(stack.bootstrap, group, topics) == {t.scores: 5, t.alerts: 0}
    finally:
        stack.stop()


def _failures(stack: LocalStack, what: str = "clickhouse unreachable at start-up: waiting") -> int:
    text = (stack.data_dir / "logs" / "sink.log").read_text(errors="replace")
    return text.count(f'"msg": "{what}"')


def _produce(kafka, start: int, n: int) -> None:
    t = topics_for(kafka)
    producer, scores, alerts = make_producer(kafka), serde_for(kafka, "FrameScores"), serde_for(kafka, "Alert")
    now = int(time.time() * 1000)
    for i in range(start, start + n):
        rec = example_record("FrameScores", call_id=f"c-{i % 7}", seq=i, event_time=now)
        producer.produce(t.scores, key=rec["call_id"].encode(), value=scores.encode(rec, topic=t.scores))
        if i % 5 == 0:
            rec = example_record("Alert", call_id=f"c-{i % 7}", alert_id=f"a-{i}", event_time=now)
            producer.produce(t.alerts, key=rec["call_id"].encode(), value=alerts.encode(rec, topic=t.alerts))
    assert producer.flush(30) == 0


def _until(cond, what: str, stack: LocalStack, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        stack.check_workers()
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{stack.workers['sink'].tail()}"
        time.sleep(0.1)  # polling interval of a deadline loop


def test_the_sink_connects_once_the_server_is_up_and_writes_through_an_outage_exactly_once(broker, tmp_path, unique):
    served = tmp_path / "server"
    count_inserted_rows(served)  # the "server's" data, with a count of every row it accepts
    port = free_port()
    relay = ClickHouseRelay(served, port)
    stack = LocalStack(data_dir=tmp_path / "stack", broker=broker, topic_prefix=f"sr{unique}.").start()
    try:
        kafka = stack.kafka_settings()
        t = topics_for(kafka)
        group, topics = group_name(kafka, "emowatch-sink"), [t.scores, t.alerts]
        _produce(kafka, 0, 30)
        url = f"http://emowatch:{PW}@127.0.0.1:{port}"
        w = stack.start_worker("sink", ["sink"], env={"EMOWATCH_SINK__CLICKHOUSE_URL": url,
                                                      "EMOWATCH_SINK__BATCH_MS": "50"})
        _until(lambda: _failures(stack) >= 2, "two failed connection attempts", stack)
        assert _health(w.http_port)["status"] == "waiting"
        assert group_lag(stack.bootstrap, group, topics) == {t.scores: 30, t.alerts: 6}
        relay.start()  # the server comes up
        _until(lambda: group_lag(stack.bootstrap, group, topics) == {t.scores: 0, t.alerts: 0}, "the first rows", stack)
        assert _failures(stack, "clickhouse reachable: starting") == 1
        assert _health(w.http_port)["status"] == "ok"

        relay.stop()  # and goes down while the sink writes
        _produce(kafka, 30, 30)
        _until(lambda: _failures(stack, "clickhouse write failed: partitions paused") >= 2, "a paused sink", stack)
        health = _health(w.http_port)
        assert health["status"] == "waiting" and health["paused"], health
        assert group_lag(stack.bootstrap, group, topics) != {t.scores: 0, t.alerts: 0}
        relay.start()
        _until(lambda: group_lag(stack.bootstrap, group, topics) == {t.scores: 0, t.alerts: 0}, "the rest", stack)
        assert _failures(stack, "clickhouse writes work again: resuming") == 1
        assert stack.stop_worker("sink") == 0
        assert PW not in (stack.data_dir / "logs" / "sink.log").read_text()
        with relay.lock:
            client = relay.client
            scores = client.query("SELECT count(), uniqExact(call_id, role, seq) FROM emowatch.scores").result_rows
            alerts = client.query("SELECT count(), uniqExact(alert_id, status) FROM emowatch.alerts").result_rows
            landed = inserted_rows(client)
        assert scores == [(60, 60)] and alerts == [(12, 12)] and landed == {"scores": 60, "alerts": 12}
    finally:
        stack.stop()
        relay.close()


def test_a_rejected_password_at_start_up_stops_the_sink_instead_of_waiting(broker, tmp_path, unique):
    port = free_port()
    relay = ClickHouseRelay(tmp_path / "server", port, password="the-right-one").start()
    stack = LocalStack(data_dir=tmp_path / "stack", broker=broker, topic_prefix=f"sp{unique}.").start()
    try:
        kafka = stack.kafka_settings()
        t = topics_for(kafka)
        _produce(kafka, 0, 5)
        w = stack.start_worker("sink", ["sink"], env={"EMOWATCH_SINK__CLICKHOUSE_URL":
                                                      f"http://emowatch:{PW}@127.0.0.1:{port}"})
        deadline = time.monotonic() + 60
        while w.alive():
            assert time.monotonic() < deadline, f"the sink kept waiting for a server that rejects it:\n{w.tail()}"
            time.sleep(0.1)  # polling interval of a deadline loop
        assert stack.stop_worker("sink") not in (0, None)
        text = (stack.data_dir / "logs" / "sink.log").read_text()
        assert '"msg": "clickhouse unusable at start-up: stopping"' in text and "AUTHENTICATION_FAILED" in text
        assert "clickhouse unreachable at start-up: waiting" not in text and PW not in text
        group = group_name(kafka, "emowatch-sink")
        assert group_lag(stack.bootstrap, group, [t.scores, t.alerts]) == {t.scores: 5, t.alerts: 1}
    finally:
        stack.stop()
        relay.close()
