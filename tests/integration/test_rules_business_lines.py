"""Two business lines, two rules workers (one consumer group each), one scores topic.

Synthetic FrameScores go straight to the scores topic (no model). Each worker must publish
exactly the alerts its own rule set gives for its own line's calls - the pure engine run
over the same messages is the oracle - answer /calls/<id>, and dead-letter a bad message.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import Counter

import pytest

from emowatch.rules import load_ruleset, step
from emowatch.rules.loader import bundled_rule_files
from emowatch.rules.testing import interleave, synthetic_call
from emowatch.streams.kafka.clients import make_producer
from emowatch.streams.kafka.scores_publisher import publish_scores
from emowatch.streams.kafka.tail import TopicTail
from emowatch.streams.local.demo import wait_for_lag_zero
from emowatch.streams.local.stack import LocalStack

pytestmark = pytest.mark.integration
TIMEOUT = 240
FILES = {p.stem: p for p in bundled_rule_files()}


def _calls() -> list[list[dict]]:
    fear = [(1000, {"neutral": 0.8}), (3000, {"fearful": 0.75}), (2000, {"neutral": 0.8})]
    anger = [(4000, {"angry": 0.9}), (3000, {"neutral": 0.9})]
    resigned = [(6000, {"sad": 0.5, "neutral": 0.4}), (1000, {"happy": 0.8})]
    return [
        synthetic_call("vip-fear", fear, business_line="vip"),
        synthetic_call("vip-anger", anger, business_line="vip", noise=0.2, seed=1),
        synthetic_call("vip-open", [(3000, {"fearful": 0.8})], business_line="vip", end_of_call=False),
        synthetic_call("as-resigned", resigned, business_line="aftersales"),
        synthetic_call("as-anger", anger, business_line="aftersales", noise=0.2, seed=2),
        synthetic_call("retail-anger", anger, business_line="retail"),  # no worker serves it
    ]


def _oracle(line: str, messages: list[dict]) -> list[dict]:
    rs = load_ruleset(FILES[line])
    states: dict = {}
    events: list[dict] = []
    for m in messages:
        if m["business_line"] == line:
            states[m["call_id"]], out = step(states.get(m["call_id"]), m, rs)
            events += out
    return events


def _key(a: dict) -> tuple:
    return (a["alert_id"], a["status"], a["rule_set"], a["rule_id"], a["rule_version"], a["call_id"],
            a["started_ms"], a["fired_ms"])


def _get(port: int, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_each_line_alerts_with_its_own_rule_set_from_the_same_scores(broker, tmp_path, unique):
    prefix = f"bl{unique}."
    stack = LocalStack(data_dir=tmp_path, broker=broker, topic_prefix=prefix).start()
    try:
        kafka = stack.kafka_settings()
        from emowatch.streams.kafka.clients import topics_for

        t = topics_for(kafka)
        messages = interleave(_calls())
        publish_scores(kafka, messages)
        producer = make_producer(kafka)  # one undecodable message: each worker dead-letters it
        producer.produce(t.scores, key=b"garbage", value=b"not avro")
        producer.flush(10)
        workers = {line: stack.start_worker(line, ["rules", "--business-line", line, "--rules-file",
                                                   str(FILES[line])]) for line in ("vip", "aftersales")}
        expected = {line: _oracle(line, messages) for line in workers}
        assert expected["vip"] and expected["aftersales"]  # the scenario exercises both sets
        for line in workers:
            wait_for_lag_zero(stack, f"{prefix}emowatch-rules-{line}", [t.scores], TIMEOUT)
        tail = TopicTail(kafka, {t.alerts: "Alert", t.dlq: "DeadLetter"})
        want = sum(len(v) for v in expected.values())
        got = tail.collect(lambda o: len(o[t.alerts]) >= want and len(o[t.dlq]) >= 2, TIMEOUT,
                           check=stack.check_workers)
        tail.catch_up(got, TIMEOUT)
        tail.close()

        alerts = got[t.alerts]
        by_set = {line: sorted(_key(a) for a in alerts if a["rule_set"] == line) for line in workers}
        for line in workers:
            assert by_set[line] == sorted(_key(e) for e in expected[line]), line
        assert len(alerts) == want  # nothing else: no duplicates, no alerts for the retail call
        assert {a["call_id"].split("-")[0] for a in alerts if a["rule_set"] == "vip"} == {"vip"}
        assert {a["call_id"].split("-")[0] for a in alerts if a["rule_set"] == "aftersales"} == {"as"}
        rules_fired = Counter((a["rule_set"], a["rule_id"]) for a in alerts if a["status"] == "FIRING")
        assert rules_fired[("vip", "vip-fearful")] >= 2 and rules_fired[("aftersales", "aftersales-disappointed")] == 1
        assert {a["rule_version"] for a in alerts if a["rule_set"] == "vip"} == {load_ruleset(FILES["vip"]).version}
        dlq = got[t.dlq]
        assert len(dlq) == 2 and {d["stage"] for d in dlq} == {"DECODE"}
        assert {d["service"] for d in dlq} == {f"{prefix}emowatch-rules-vip", f"{prefix}emowatch-rules-aftersales"}

        vip_port = workers["vip"].http_port
        status, doc = _get(vip_port, "/calls/vip-open")
        assert status == 200 and doc["found"] and not doc["finished"]
        [active] = doc["active_alerts"]
        assert active["rule_id"] == "vip-fearful" and active["phase"] == "firing" and active["emitted"]
        assert active["alert_id"] in {a["alert_id"] for a in alerts if a["call_id"] == "vip-open"}
        assert "FIRING vip-fearful" in doc["summary"] and doc["state_bytes"] > 0
        status, doc = _get(vip_port, "/calls/as-anger")
        assert status == 404 and doc["found"] is False  # another line's call: not in this worker's table
        status, health = _get(vip_port, "/health")
        assert status == 200 and health["rule_set"] == "vip" and health["rules_ready"] is True
    finally:
        stack.stop()
