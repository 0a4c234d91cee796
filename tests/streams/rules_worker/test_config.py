"""Rules worker start-up checks and client settings (no broker needed)."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest

from emowatch.rules.loader import bundled_rule_files
from emowatch.streams.kafka.security import aiokafka_security
from emowatch.streams.rules_worker.config import app_id, faust_config
from emowatch.streams.rules_worker.service import RulesWorker, RulesWorkerError
from emowatch.streams.settings import KafkaSettings, Settings

FILES = {p.stem: p for p in bundled_rule_files()}


def test_app_id_is_namespaced_by_prefix_and_line():
    s = Settings(kafka=KafkaSettings(topic_prefix="t1."))
    assert app_id(s, "vip") == "t1.emowatch-rules-vip"
    assert app_id(s, "*") == "t1.emowatch-rules-all"


def test_worker_refuses_a_file_for_another_line(tmp_path):
    with pytest.raises(RulesWorkerError, match="serves business line 'aftersales'"):
        RulesWorker(Settings(), business_line="vip", rules_file=FILES["aftersales"])


def test_worker_refuses_an_invalid_file_with_its_line(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rule_set: x\nbusiness_line: vip\nrules:\n  - id: a\n    when: {emotion: angy, above: 0.5}\n")
    with pytest.raises(RulesWorkerError, match=r"bad.yaml:5: .*unknown emotion 'angy'"):
        RulesWorker(Settings(), business_line="vip", rules_file=bad)


def test_worker_refuses_a_file_whose_examples_fail(tmp_path: Path):
    bad = tmp_path / "ex.yaml"
    bad.write_text("rule_set: x\nbusiness_line: '*'\nrules:\n  - id: a\n    when: {emotion: angry, above: 0.5}\n"
                   "    examples:\n      - name: quiet\n        scores:\n          - {for: 3s, probs: {angry: 0.9}}\n"
                   "        expect: []\n")
    with pytest.raises(RulesWorkerError, match="example 'quiet'"):
        RulesWorker(Settings(), business_line="*", rules_file=bad)


def test_security_settings_reach_faust_and_the_rules_reader():
    k = KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512", sasl_username="u",
                      sasl_password="p")
    conf = aiokafka_security(k)
    assert conf["security_protocol"] == "SASL_PLAINTEXT" and conf["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (conf["sasl_plain_username"], conf["sasl_plain_password"]) == ("u", "p")
    assert "ssl_context" not in conf
    creds = faust_config(k, 6066)["broker_credentials"]
    assert creds.username == "u" and creds.mechanism.value == "SCRAM-SHA-512"
    assert faust_config(KafkaSettings(), 6066)["broker_credentials"] is None


def test_web_server_binds_and_advertises_as_configured():
    local = faust_config(KafkaSettings(), 6066)
    assert (local["web_bind"], local["canonical_url"]) == ("127.0.0.1", "http://127.0.0.1:6066")
    wild = faust_config(KafkaSettings(), 7000, bind="0.0.0.0")
    assert wild["web_bind"] == "0.0.0.0"
    assert wild["canonical_url"] == f"http://{socket.gethostname()}:7000"  # never a wildcard address
    pod = faust_config(KafkaSettings(), 7000, bind="0.0.0.0", advertised="http://rules-1.rules:7000/")
    assert pod["canonical_url"] == "http://rules-1.rules:7000" and pod["web_host"] == "rules-1.rules"


def test_advertised_url_must_be_http():
    from emowatch.streams.settings import RulesSettings

    with pytest.raises(ValueError, match="advertised_url"):
        RulesSettings(advertised_url="rules-1:7000")


def test_a_partition_whose_commit_is_stuck_is_sought_back_to_its_committed_offset():
    """The worker's watchdog reads Faust's consumer bookkeeping as faust#681 leaves it. The race
    cannot be provoked on demand, so the consumer here is a stand-in holding that bookkeeping;
    the decision itself is tested in test_commit_stall.py."""
    import asyncio

    from faust.types import TP

    from emowatch.streams.kafka.clients import topics_for

    settings = Settings(kafka=KafkaSettings(topic_prefix="cs."))
    worker = RulesWorker(settings, business_line="*", rules_file=FILES["default"])
    scores = topics_for(settings.kafka).scores

    class StuckConsumer:
        def __init__(self) -> None:
            self._acked = {TP(scores, 0): [14, 15], TP(scores, 1): [3, 4], TP("cs.other", 0): [9, 10]}
            self._committed_offset = {TP(scores, 0): 10, TP(scores, 1): 3, TP("cs.other", 0): 1}
            self.seeks: list[tuple[TP, int]] = []

        async def seek(self, tp: TP, offset: int) -> None:
            self.seeks.append((tp, offset))

    worker.app.consumer = consumer = StuckConsumer()
    check = worker.release_stuck_commits
    asyncio.run(check())
    assert consumer.seeks == []  # first sighting: could be in flight
    asyncio.run(check())
    assert consumer.seeks == [(TP(scores, 0), 10)]  # only the stuck scores partition


def test_static_membership_reaches_the_consumer():
    assert faust_config(KafkaSettings(), 6066, instance_id="rules-0")["consumer_group_instance_id"] == "rules-0"
    assert faust_config(KafkaSettings(), 6066)["consumer_group_instance_id"] is None
