"""The ClickHouse sink through a ClickHouse outage (the writer's fault seam on the embedded engine): it pauses,
backs off, resumes and loses nothing; a non-retryable error stops it; no log line shows the password."""
from __future__ import annotations

import io
import logging
import threading
import time

import pytest
from sink_helpers import count_inserted_rows, inserted_rows

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


def _counts(tmp_path, landed: bool = True) -> tuple[list, list, dict | None]:
    from emowatch.streams.sink.clickhouse import connect

    client = connect(None, tmp_path, "emowatch")
    try:
        scores = client.query("SELECT count(), uniqExact(call_id, role, seq) FROM emowatch.scores").result_rows
        alerts = client.query("SELECT count(), uniqExact(alert_id, status) FROM emowatch.alerts").result_rows
        return scores, alerts, inserted_rows(client) if landed else None
    finally:
        client.close()


@pytest.mark.integration
def test_failures_after_the_insert_are_retried_identically_and_land_once(kafka_settings, topics, tmp_path):
    """``EMOWATCH_FAULT_POINTS=sink.after_insert=raise@2~1s``: from the 2nd batch on, for a second, every batch
    is inserted and then fails (a response lost after the server wrote the rows); the sink pauses, backs off,
    retries the same pinned batch - same token, dropped by ClickHouse - and every row is stored once."""
    from emowatch.streams import faults
    from emowatch.streams.sink.service import ClickHouseSink

    count_inserted_rows(tmp_path)
    settings = Settings(kafka=kafka_settings, sink=SinkSettings(data_dir=tmp_path, batch_ms=30, batch_rows=8),
                        fault_points="sink.after_insert=raise@2~1s")
    svc = ClickHouseSink(settings, backoff=Backoff(0.05, 0.2))
    _produce(kafka_settings, 40, 8)
    t = topics_for(kafka_settings)
    group = group_name(kafka_settings, settings.sink.group_id)
    try:
        with _Logs() as logs:
            thread, errors = _start(svc)
            try:
                _wait(lambda: svc.backoff.failures >= 2, "failed attempts")
                health = svc.health()
                assert health["status"] == "waiting" and health["paused"] and "InjectedFault" in health["error"]
                _produce(kafka_settings, 20, 4, start=40)  # more arrives during the outage
                _wait(lambda: group_lag(kafka_settings.bootstrap_servers, group, [t.scores, t.alerts])
                      == {t.scores: 0, t.alerts: 0}, "the sink to catch up")
                assert svc.health()["status"] == "ok" and thread.is_alive() and not errors
            finally:
                svc.stop_event.set()
                thread.join(60)
        assert faults.hits("sink.after_insert") > svc.m_rows._value.get() / 8  # retries went through the point
    finally:
        faults.arm(None)
    assert not thread.is_alive() and errors == []
    text = logs.stream.getvalue()
    assert '"msg": "clickhouse write failed: partitions paused"' in text and "injected fault at" in text
    assert '"msg": "clickhouse writes work again: resuming"' in text
    scores, alerts, landed = _counts(tmp_path)
    assert scores == [(60, 60)] and alerts == [(12, 12)]
    assert landed == {"scores": 60, "alerts": 12}  # no retried batch was stored twice, even for a while


@pytest.mark.integration
def test_start_up_waits_for_clickhouse_reads_nothing_meanwhile_then_writes_everything(kafka_settings, topics,
                                                                                     tmp_path):
    """``sink.connect=raise@1~1.5s``: ClickHouse unreachable at start-up for 1.5 s. The sink serves /health
    (``waiting``), backs off, neither reads nor commits, then connects and writes everything once."""
    import httpx

    from emowatch.streams import faults
    from emowatch.streams.sink.service import ClickHouseSink

    settings = Settings(kafka=kafka_settings, sink=SinkSettings(data_dir=tmp_path, batch_ms=30),
                        fault_points="sink.connect=raise@1~1.5s")
    svc = ClickHouseSink(settings, backoff=Backoff(0.05, 0.3))
    _produce(kafka_settings, 10, 2)
    t = topics_for(kafka_settings)
    group = group_name(kafka_settings, settings.sink.group_id)
    try:
        with _Logs() as logs:
            thread, errors = _start(svc)
            try:
                _wait(lambda: svc.backoff.failures >= 2 and svc.http is not None, "failed connection attempts")
                r = httpx.get(f"http://127.0.0.1:{svc.http.port}/health", timeout=10)
                assert r.status_code == 503 and r.json()["status"] == "waiting", r.text
                assert "injected fault at sink.connect" in r.json()["error"]
                r = httpx.get(f"http://127.0.0.1:{svc.http.port}/v1/history/calls", timeout=10)
                assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable"
                assert svc.metrics.received._value.get() == 0  # nothing read while waiting
                assert group_lag(kafka_settings.bootstrap_servers, group, [t.scores, t.alerts]) == \
                    {t.scores: 10, t.alerts: 2}
                _wait(lambda: group_lag(kafka_settings.bootstrap_servers, group, [t.scores, t.alerts])
                      == {t.scores: 0, t.alerts: 0}, "the sink to connect and catch up")
                assert svc.health()["status"] == "ok"
            finally:
                svc.stop_event.set()
                thread.join(60)
    finally:
        faults.arm(None)
    assert not thread.is_alive() and errors == []
    text = logs.stream.getvalue()
    assert '"msg": "clickhouse unreachable at start-up: waiting"' in text
    assert '"msg": "clickhouse reachable: starting"' in text
    scores, alerts, _landed = _counts(tmp_path, landed=False)
    assert scores == [(10, 10)] and alerts == [(2, 2)]


@pytest.mark.integration
def test_a_schema_error_at_start_up_is_fatal_not_waited_out(kafka_settings, topics, tmp_path):
    """An applied migration whose file changed since (MigrationError): no retry can fix it, the sink stops."""
    from emowatch.streams.sink.clickhouse import apply_schema, connect
    from emowatch.streams.sink.service import ClickHouseSink

    client = connect(None, tmp_path, "emowatch")
    try:
        apply_schema(client, "emowatch")
        client.insert("schema_migrations", [[1, "initial", "0" * 64]], database="emowatch",
                      column_names=["version", "name", "checksum"])
    finally:
        client.close()
    settings = Settings(kafka=kafka_settings, sink=SinkSettings(data_dir=tmp_path))
    svc = ClickHouseSink(settings, backoff=Backoff(0.05, 0.2))
    _produce(kafka_settings, 3, 0)
    with _Logs() as logs:
        thread, errors = _start(svc)
        thread.join(60)
    assert not thread.is_alive()
    assert len(errors) == 1 and "not retryable" in str(errors[0]) and "MigrationError" in str(errors[0])
    assert svc.health()["status"] == "failing" and svc.backoff.failures == 0
    assert '"msg": "clickhouse unusable at start-up: stopping"' in logs.stream.getvalue()
    t = topics_for(kafka_settings)
    group = group_name(kafka_settings, settings.sink.group_id)
    assert group_lag(kafka_settings.bootstrap_servers, group, [t.scores, t.alerts]) == {t.scores: 3, t.alerts: 0}
