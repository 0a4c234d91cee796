"""The notifier service against the real local broker and a real local HTTP receiver (WebhookReceiver,
HMAC-signed): grouping, silences, acks, retries, dead letters, and commits only after delivery."""
from __future__ import annotations

import pytest
from notify_helpers import Running, alert, publish, settings, verified, wait_until, write_config
from receiver_helpers import HttpSink
from typer.testing import CliRunner

from emowatch.streams.cli.main import app
from emowatch.streams.kafka.admin import group_lag
from emowatch.streams.kafka.clients import group_name
from emowatch.streams.kafka.notify_io import read_log
from emowatch.streams.kafka.tail import TopicTail

pytestmark = pytest.mark.integration


@pytest.fixture
def sink():
    s = HttpSink().start()
    yield s
    s.stop()


def _env(kafka) -> dict[str, str]:
    return {"EMOWATCH_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "EMOWATCH_KAFKA__TOPIC_PREFIX": kafka.topic_prefix, "EMOWATCH_KAFKA__PARTITIONS": "4"}


def _cli(kafka, *args: str) -> str:
    res = CliRunner().invoke(app, list(args), env=_env(kafka), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output.strip()


def _bodies(sink, call_id: str) -> list[dict]:
    return [verified(r) for r in list(sink.requests) if verified(r)["group_labels"].get("call_id") == call_id]


def _lag(kafka, topics, gid: str) -> int:
    return group_lag(kafka.bootstrap_servers, group_name(kafka, gid), [topics.alerts])[topics.alerts]


def test_one_signed_message_per_group_and_commits_after_delivery(kafka_settings, topics, tmp_path, sink):
    cfg, secrets = write_config(tmp_path, sink.port, group_wait="1s")
    group = [alert("call-A") for _ in range(3)]
    publish(kafka_settings, [*group, alert("call-B"), alert("call-R", replay_id="replay-1")],
            raw=[("call-bad", b"\x00not avro")])
    run = Running(settings(kafka_settings, secrets, "n1"), cfg)
    try:
        run.wait_ready()
        wait_until(lambda: _bodies(sink, "call-A") and _bodies(sink, "call-B"), what="both groups")
        (a,) = _bodies(sink, "call-A")
        assert sorted(x["alert_id"] for x in a["alerts"]) == sorted(x["alert_id"] for x in group)
        assert a["status"] == "FIRING" and a["repeat"] == 0
        wait_until(lambda: _lag(kafka_settings, topics, "n1") == 0, what="lag 0")
        assert not _bodies(sink, "call-R")  # replays never notify
        tail = TopicTail(kafka_settings, {topics.dlq: "DeadLetter"})
        try:
            out = tail.collect(lambda o: len(o[topics.dlq]) >= 1, 30)
        finally:
            tail.close()
        assert out[topics.dlq][0]["stage"] == "DECODE" and out[topics.dlq][0]["value"] == b"\x00not avro"
        # the RESOLVED of one alert goes out as an update of the group
        publish(kafka_settings, [dict(group[0], status="RESOLVED")])
        wait_until(lambda: len(_bodies(sink, "call-A")) == 2, what="update")
        logged = wait_until(lambda: [e for e in read_log(kafka_settings) if "call-A" in e.group_key], what="log")
        assert {e.status for e in logged} == {"FIRING"} and max(e.repeat for e in logged) == 0
        headers = {r.headers["Idempotency-Key"] for r in sink.requests}
        assert len(headers) == len(sink.requests) == 3
    finally:
        run.stop()


def test_offsets_wait_for_retried_delivery(kafka_settings, topics, tmp_path, sink):
    cfg, secrets = write_config(tmp_path, sink.port, group_wait="0s", max_attempts=20, max_backoff="200ms")
    sink.replies = [(500, b"busy", {}), (500, b"busy", {})]  # twice 500, then 200
    run = Running(settings(kafka_settings, secrets, "n2"), cfg)
    try:
        run.wait_ready()
        publish(kafka_settings, [alert("call-R")])
        wait_until(lambda: _bodies(sink, "call-R"), what="first attempt")
        wait_until(lambda: _lag(kafka_settings, topics, "n2") == 0, what="lag 0")
        keys = [r.headers["Idempotency-Key"] for r in sink.requests]
        assert len(keys) == 3 and len(set(keys)) == 1  # 2 failures + 1 success, one notification

        sink.default = (503, b"down", {})  # the receiver is down: the alert's offset must stay uncommitted
        publish(kafka_settings, [alert("call-S")])
        wait_until(lambda: len(_bodies(sink, "call-S")) >= 3, what="retries")
        assert _lag(kafka_settings, topics, "n2") == 1
        sink.default = (200, b"ok", {})
        wait_until(lambda: _lag(kafka_settings, topics, "n2") == 0, what="commit after delivery")
    finally:
        run.stop()


def test_permanent_failure_is_dead_lettered(kafka_settings, topics, tmp_path, sink):
    cfg, secrets = write_config(tmp_path, sink.port, group_wait="0s")
    sink.default = (400, b"bad request", {})
    run = Running(settings(kafka_settings, secrets, "n3"), cfg)
    try:
        run.wait_ready()
        a = alert("call-P")
        publish(kafka_settings, [a])
        tail = TopicTail(kafka_settings, {topics.dlq: "DeadLetter", topics.alerts: "Alert"})
        try:
            out = tail.collect(lambda o: len(o[topics.dlq]) >= 1, 30)
        finally:
            tail.close()
        dead = out[topics.dlq][0]
        assert dead["stage"] == "SEND" and "HTTP 400" in dead["reason"]
        assert dead["value"] is not None and dead["source_topic"] == topics.alerts
        wait_until(lambda: _lag(kafka_settings, topics, "n3") == 0, what="dead-lettered alert committed")
        # permanent: no retry, each delivery one attempt (a delivery repeated after a redelivery of the alert, which
        # at-least-once allows under load, is another delivery of one attempt under the same Idempotency-Key)
        nm = run.notifier.nm
        attempts = sum(x.value for x in nm.failed_attempts.collect()[0].samples if x.name.endswith("_total"))
        permanent = sum(x.value for x in nm.deliveries.collect()[0].samples
                        if x.name.endswith("_total") and x.labels["outcome"] == "permanent")
        requests = [r for r in list(sink.requests) if verified(r)["group_labels"].get("call_id") == "call-P"]
        assert len(requests) == permanent == attempts >= 1, (len(requests), permanent, attempts)
        assert len({r.headers["Idempotency-Key"] for r in requests}) == 1
    finally:
        run.stop()


def test_silence_suppresses_and_ack_stops_reminders(kafka_settings, topics, tmp_path, sink):
    cfg, secrets = write_config(tmp_path, sink.port, group_wait="0s", group_interval="500ms",
                                repeat_interval="1s")
    _cli(kafka_settings, "silence", "add", "-m", "call_id=call-Q", "--for", "1h", "-c", "quiet", "-a", "li")
    run = Running(settings(kafka_settings, secrets, "n4"), cfg)
    try:
        run.wait_ready()
        k1 = alert("call-K")
        publish(kafka_settings, [alert("call-Q"), k1])
        wait_until(lambda: len(_bodies(sink, "call-K")) >= 2, what="a reminder")
        assert any(b["repeat"] >= 1 for b in _bodies(sink, "call-K"))
        _cli(kafka_settings, "alert", "ack", k1["alert_id"], "--by", "wang")
        wait_until(lambda: run.notifier.acks_applied >= 1, what="ack applied")
        k2 = alert("call-K")
        publish(kafka_settings, [k2])
        first_without = wait_until(lambda: next((i for i, b in enumerate(_bodies(sink, "call-K"))
                                                  if [x["alert_id"] for x in b["alerts"]] == [k2["alert_id"]]), None)
                                   is not None, what="update without the acked alert")
        assert first_without
        later = [b for b in _bodies(sink, "call-K") if k2["alert_id"] in {x["alert_id"] for x in b["alerts"]}]
        assert all(k1["alert_id"] not in {x["alert_id"] for x in b["alerts"]} for b in later)
        wait_until(lambda: _lag(kafka_settings, topics, "n4") == 0, what="lag 0")
        assert not _bodies(sink, "call-Q")  # silenced
        text = run.notifier.metrics.registry.get_sample_value("emowatch_notify_suppressed_total",
                                                               {"reason": "silenced"})
        assert text and text >= 1
    finally:
        run.stop()
