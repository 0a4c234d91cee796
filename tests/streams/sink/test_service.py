"""The ClickHouse sink through a ClickHouse outage (the writer's fault seam on the embedded engine): it pauses,
backs off, resumes and loses nothing; a non-retryable error stops it; no log line shows the password."""
from __future__ import annotations

import io
import logging
import threading
import time

import pytest

from emowatch.streams.kafka.admin import group_lag
from emowatch.streams.kafka.clients import group_name, make_producer, serde_for, topics_for
from emowatch.streams.observability import JsonFormatter
from emowatch.streams.settings import Settings, SinkSettings
from emowatch.streams.sink.outage import Backoff
from emowatch.streams.sink.service import scrub
from emowatch.topics.examples import example_record
from emowatch.topics.security import MASK

PW = "s3cr3tPW-ch-7a61d3"
SERVER = f"http://emowatch:{PW}@clickhouse-0.clickhouse:8123"


def test_scrub_masks_urls_and_the_configured_password():
    assert scrub(f"cannot reach {SERVER}/?query=INSERT", None) == f"cannot reach http://emowatch:{MASK}@clickhouse-0.clickhouse:8123/?query=INSERT"
    assert scrub(f"auth header X-ClickHouse-Key: {PW}", SERVER) == f"auth header X-ClickHouse-Key: {MASK}"
    assert scrub("nothing secret", SERVER) == scrub("nothing secret", None) == "nothing secret"


def _produce(kafka, n_scores: int, n_alerts: int, start: int = 0) -> None:
    t = topics_for(kafka)
    producer = make_producer(kafka)
    scores, alerts = serde_for(kafka, "FrameScores"), serde_for(kafka, "Alert")
    now = int(time.time() * 1000)  # rows older than the tables' TTL would be dropped on insert
    for i in range(start, start + n_scores):
        rec = example_record("FrameScores", call_id=f"c-{i % 7}", seq=i, event_time=now)
        producer.produce(t.scores, key=rec["call_id"].encode(), value=scores.encode(rec, topic=t.scores))
    for i in range(start, start + n_alerts):
        rec = example_record("Alert", call_id=f"c-{i % 7}", alert_id=f"a-{i}", event_time=now)
        producer.produce(t.alerts, key=rec["call_id"].encode(), value=alerts.encode(rec, topic=t.alerts))
    assert producer.flush(30) == 0


def _wait(cond, what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)  # polling interval of a deadline loop


class _Logs:
    def __enter__(self):
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(JsonFormatter())
        self.root = logging.getLogger()
        self.level = self.root.level
        self.root.addHandler(self.handler)
        self.root.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc):
        self.root.removeHandler(self.handler)
        self.root.setLevel(self.level)


def _start(svc) -> tuple[threading.Thread, list]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            svc.run()
        except BaseException as exc:  # noqa: BLE001 - asserted by the tests
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


@pytest.mark.integration
def test_an_outage_pauses_backs_off_resumes_and_loses_nothing(kafka_settings, topics, tmp_path, capfd):
    from emowatch.streams.sink.service import ClickHouseSink

    settings = Settings(kafka=kafka_settings, sink=SinkSettings(data_dir=tmp_path, batch_ms=50, batch_rows=8))
    svc = ClickHouseSink(settings, backoff=Backoff(0.05, 0.4))
    down = threading.Event()
    down.set()
    calls: list[str] = []

    def fault(op: str) -> None:  # a driver error as an HTTP client writes it, URL and password included
        if down.is_set():
            calls.append(op)
            raise ConnectionError(f"HTTP request failed: {SERVER}/?query=INSERT (Connection reset)")

    svc.writer.fault = fault
    _produce(kafka_settings, 30, 6)
    t = topics_for(kafka_settings)
    with _Logs() as logs:
        thread, errors = _start(svc)
        try:
            _wait(lambda: svc.backoff.failures >= 4, "four failed attempts")
            health = svc.health()
            assert health["status"] == "waiting" and health["paused"] and PW not in health["error"]
            _produce(kafka_settings, 20, 4, start=30)  # more arrives during the outage
            assert thread.is_alive() and not errors
            down.clear()
            group = group_name(kafka_settings, settings.sink.group_id)
            _wait(lambda: group_lag(kafka_settings.bootstrap_servers, group, [t.scores, t.alerts])
                  == {t.scores: 0, t.alerts: 0}, "the sink to catch up")
            assert svc.health()["status"] == "ok" and not svc.health()["paused"]
        finally:
            svc.stop_event.set()
            thread.join(60)
    assert not thread.is_alive() and errors == []
    assert calls and set(calls) <= {"recorded", "record", "insert"}
    text = logs.stream.getvalue()
    assert '"msg": "clickhouse write failed: partitions paused"' in text and "Connection reset" in text
    assert '"msg": "clickhouse writes work again: resuming"' in text
    out, err = capfd.readouterr()
    for chunk in (text, out, err):
        assert PW not in chunk
    from emowatch.streams.sink.clickhouse import connect

    client = connect(None, tmp_path, "emowatch")
    try:  # count() without FINAL: every row once
        got = client.query("SELECT count(), uniqExact(call_id, role, seq) FROM emowatch.scores").result_rows
        assert got == [(50, 50)]
        got = client.query("SELECT count(), uniqExact(alert_id, status) FROM emowatch.alerts").result_rows
        assert got == [(10, 10)]
    finally:
        client.close()


@pytest.mark.integration
def test_a_non_retryable_error_stops_the_sink_without_the_password(kafka_settings, topics, tmp_path, capfd):
    from clickhouse_connect.driver.exceptions import DatabaseError

    from emowatch.streams.sink.service import ClickHouseSink

    settings = Settings(kafka=kafka_settings, sink=SinkSettings(data_dir=tmp_path, batch_ms=50), log_level="DEBUG")
    svc = ClickHouseSink(settings, backoff=Backoff(0.05, 0.4))

    def fault(op: str) -> None:
        if op == "insert":
            raise DatabaseError(f"Code: 60. DB::Exception: Table emowatch.scores does not exist ({SERVER}). "
                                "(UNKNOWN_TABLE)")

    svc.writer.fault = fault
    _produce(kafka_settings, 1, 0)
    with _Logs() as logs:
        thread, errors = _start(svc)
        thread.join(120)
        svc.stop_event.set()
        thread.join(30)
    assert not thread.is_alive()
    assert len(errors) == 1 and "not retryable" in str(errors[0]) and "UNKNOWN_TABLE" in str(errors[0])
    assert svc.health()["status"] == "failing"
    text = logs.stream.getvalue()
    assert '"msg": "clickhouse write failed: stopping"' in text
    out, err = capfd.readouterr()
    for chunk in (text, out, err, svc.fatal, str(errors[0])):
        assert PW not in chunk
