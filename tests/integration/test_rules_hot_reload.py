"""Hot reload: `emowatch rules publish` changes what every worker of a group does, without restart.

Two workers of the vip group start with rules/vip.yaml. A published rule set B (adds a
happiness rule, drops the fear rule) must reach both; scores produced afterwards follow B
and carry B's rule_version. A rejected publication (invalid YAML written straight to the
topic, and an invalid file refused by the CLI) never replaces B. A restarted worker takes
B from the topic although its rules file says otherwise.
"""
from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emowatch.rules import load_ruleset
from emowatch.rules.loader import bundled_rule_files
from emowatch.rules.testing import interleave, synthetic_call
from emowatch.streams.cli.main import app as cli
from emowatch.streams.kafka.admin import end_offsets
from emowatch.streams.kafka.clients import make_producer, serde_for, topics_for
from emowatch.streams.kafka.scores_publisher import publish_scores
from emowatch.streams.kafka.tail import TopicTail
from emowatch.streams.local.demo import wait_for_lag_zero
from emowatch.streams.local.stack import LocalStack
from emowatch.streams.settings import KafkaSettings

pytestmark = pytest.mark.integration
TIMEOUT = 240
VIP = next(p for p in bundled_rule_files() if p.stem == "vip")

RULES_B = """\
rule_set: vip
business_line: vip
description: version B - cheerful VIP customers are worth a note; fear is no longer watched
defaults: {window: 1s, hop: 200ms, role: customer}
rules:
  - id: vip-happy
    when: {emotion: happy, above: 0.7}
    for: 1s
    priority: low
  - id: angry-sustained
    when: {emotion: angry, above: 0.75}
    for: 2s
    priority: high
"""


def _batch(tag: str) -> list[dict]:
    mood = [(1000, {"neutral": 0.8}), (3000, {"fearful": 0.8}), (3000, {"happy": 0.85}), (1000, {"neutral": 0.8})]
    return interleave([synthetic_call(f"{tag}-{i}", mood, business_line="vip", noise=0.1, seed=i) for i in range(4)])


def _get_json(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read())


def _health(port: int) -> dict:
    return _get_json(port, "/health")


def _wait_version(stack: LocalStack, ports: list[int], version: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while True:
        stack.check_workers()
        try:
            seen = [_health(p)["rule_version"] for p in ports]
        except OSError:  # web server not up yet
            seen = []
        if seen and all(v == version for v in seen):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"workers report rule versions {seen}, expected {version}")
        time.sleep(0.2)


def _publish_cli(kafka: KafkaSettings, path: Path) -> tuple[int, str]:
    env = {"EMOWATCH_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
           "EMOWATCH_KAFKA__TOPIC_PREFIX": kafka.topic_prefix, "EMOWATCH_KAFKA__PARTITIONS": str(kafka.partitions)}
    res = CliRunner().invoke(cli, ["rules", "publish", str(path)], env=env)
    return res.exit_code, res.output


def test_publish_swaps_every_worker_without_restart_and_rejects_bad_sets(broker, tmp_path, unique):
    prefix = f"hr{unique}."
    stack = LocalStack(data_dir=tmp_path, broker=broker, topic_prefix=prefix).start()
    try:
        kafka = stack.kafka_settings()
        t = topics_for(kafka)
        group = f"{prefix}emowatch-rules-vip"
        version_a = load_ruleset(VIP).version
        args = ["rules", "--business-line", "vip", "--rules-file", str(VIP)]
        workers = [stack.start_worker(f"vip{i}", args) for i in range(2)]
        ports = [w.http_port for w in workers]
        tail = TopicTail(kafka, {t.alerts: "Alert", t.dlq: "DeadLetter"})
        alerts: list[dict] = []

        def run_batch(tag: str) -> list[dict]:
            publish_scores(kafka, _batch(tag))
            wait_for_lag_zero(stack, group, [t.scores], TIMEOUT)
            got = tail.catch_up({t.alerts: [], t.dlq: []}, TIMEOUT)
            alerts.extend(got[t.alerts])
            return [a for a in got[t.alerts] if a["call_id"].startswith(tag)]

        # phase 1: rule set A from the file
        a1 = run_batch("a")
        assert {a["rule_id"] for a in a1 if a["status"] == "FIRING"} == {"vip-fearful"}
        assert {a["rule_version"] for a in a1} == {version_a}

        # phase 2: publish B with the CLI; both workers swap, no restart
        b_file = tmp_path / "vip-b.yaml"
        b_file.write_text(RULES_B)
        version_b = load_ruleset(b_file).version
        code, out = _publish_cli(kafka, b_file)
        assert code == 0, out
        assert f"version {version_b}" in out
        _wait_version(stack, ports, version_b)
        b1 = run_batch("b")
        assert {a["rule_id"] for a in b1 if a["status"] == "FIRING"} == {"vip-happy"}
        assert {a["rule_version"] for a in b1} == {version_b}
        assert len({a["call_id"] for a in b1}) == 4
        # interactive query: each worker answers for every call (the owner directly, the other by forwarding)
        docs = [_get_json(p, "/calls/b-1") for p in ports]
        assert docs[0] == docs[1] and docs[0]["found"] and docs[0]["finished"]
        assert docs[0]["rule_version"] == version_b and docs[0]["roles"]["CUSTOMER"]["ended"]

        # phase 3: an invalid file is refused by the CLI (nothing written) ...
        before = end_offsets(kafka.bootstrap_servers, [t.rules])
        bad_file = tmp_path / "vip-bad.yaml"
        bad_file.write_text(RULES_B.replace("emotion: happy", "emotion: hapy"))
        code, out = _publish_cli(kafka, bad_file)
        assert code == 1 and "unknown emotion 'hapy'" in out
        assert end_offsets(kafka.bootstrap_servers, [t.rules]) == before
        # ... and an invalid record written past the CLI is rejected by every worker
        serde = serde_for(kafka, "RuleSet")
        bad = {"rule_set": "vip", "version": "0badc0ffee00", "business_line": "vip",
               "source_yaml": RULES_B.replace("emotion: happy", "emotion: hapy"), "source_name": "forged.yaml",
               "published_at": 0, "trace_id": None}
        producer = make_producer(kafka)
        producer.produce(t.rules, key=b"vip", value=serde.encode(bad, topic=t.rules))
        producer.flush(10)
        dlq = tail.collect(lambda o: len(o[t.dlq]) >= 2, TIMEOUT, check=stack.check_workers)[t.dlq]
        assert {(d["source_topic"], d["stage"]) for d in dlq} == {(t.rules, "DECODE")}
        assert all("unknown emotion 'hapy'" in d["reason"] for d in dlq)
        assert [_health(p)["rule_version"] for p in ports] == [version_b, version_b]
        b2 = run_batch("c")
        assert {a["rule_version"] for a in b2} == {version_b} and b2

        # phase 4: a restarted worker takes B from the topic, not A from its file
        assert stack.stop_worker("vip1") == 0  # SIGTERM: a clean stop
        stack.start_worker("vip1-again", args)
        # ready = the rules topic read to its end (the forged record after B included), so
        # the version reported then is final; before that, B may show while the worker
        # still reads the topic
        health = stack.wait_healthy("vip1-again", TIMEOUT, ready=lambda h: h.get("rules_ready"))
        assert health["rule_version"] == version_b
        assert health["rules_source"].startswith(f"topic:{t.rules}@")
        tail.close()
    finally:
        stack.stop()
