"""`emowatch silence` and `emowatch alert ack` against the real local broker (unique topic prefix per test)."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from emowatch.streams.cli.main import app
from emowatch.streams.kafka.notify_control import read_acks, read_silences

pytestmark = pytest.mark.integration


@pytest.fixture
def env(kafka_settings, topics) -> dict[str, str]:
    return {"EMOWATCH_KAFKA__BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
            "EMOWATCH_KAFKA__TOPIC_PREFIX": kafka_settings.topic_prefix, "EMOWATCH_KAFKA__PARTITIONS": "4"}


def cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    return res.exit_code, res.output


def listed(env: dict[str, str], *extra: str) -> dict[str, dict]:
    code, out = cli(env, "silence", "list", "--format", "json", *extra)
    assert code == 0, out
    return {r["id"]: r for r in json.loads(out)}


def test_add_list_expire(env, kafka_settings):
    code, out = cli(env, "silence", "add", "--match", "business_line=collections", "--match",
                    'priority=~"HIGH|CRITICAL"', "--for", "1h", "--comment", "dialler maintenance", "--author", "li")
    assert code == 0, out
    sid = out.strip()
    code, out = cli(env, "silence", "add", "-m", "team=vip", "--for", "2h", "-c", "other", "-a", "wang")
    assert code == 0, out
    other = out.strip()

    active = listed(env)
    assert set(active) == {sid, other}
    assert active[sid]["state"] == "active" and active[sid]["created_by"] == "li"
    assert active[sid]["matchers"] == ['business_line="collections"', 'priority=~"HIGH|CRITICAL"']
    assert listed(env, "--expired") == {}
    code, out = cli(env, "silence", "list")
    assert code == 0 and sid in out and "dialler" in out and "vip" in out

    code, out = cli(env, "silence", "expire", sid, "--author", "zhao")
    assert code == 0 and f"expired {sid}" in out
    assert set(listed(env)) == {other}
    gone = listed(env, "--expired")
    assert set(gone) == {sid} and gone[sid]["expired_by"] == "zhao" and gone[sid]["state"] == "expired"
    code, out = cli(env, "silence", "list", "--expired")
    assert code == 0 and sid in out and "zhao" in out and other not in out

    code, out = cli(env, "silence", "expire", sid, "--author", "zhao")
    assert code == 2 and "already expired" in out
    code, out = cli(env, "silence", "expire", "no-such-id", "--author", "zhao")
    assert code == 2 and "no silence" in out
    # the topic is the store: both versions of the expired silence were written, the latest wins
    assert read_silences(kafka_settings)[sid]["expired_at"] is not None


def test_alert_ack_is_readable(env, kafka_settings):
    assert read_acks(kafka_settings) == {}
    code, out = cli(env, "alert", "ack", "a-1", "--by", "li", "--comment", "calling back", "--call-id", "c-7")
    assert code == 0, out
    code, out = cli(env, "alert", "ack", "a-2", "--by", "wang")
    assert code == 0, out
    acks = read_acks(kafka_settings)
    assert set(acks) == {"a-1", "a-2"}
    assert (acks["a-1"]["by"], acks["a-1"]["comment"], acks["a-1"]["call_id"]) == ("li", "calling back", "c-7")
    assert acks["a-2"]["call_id"] is None and acks["a-2"]["at"] > 0


def test_missing_topic_is_a_clear_error(broker):
    env = {"EMOWATCH_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers, "EMOWATCH_KAFKA__TOPIC_PREFIX": "nothing."}
    code, out = cli(env, "silence", "list")
    assert code == 3 and "does not exist" in out
