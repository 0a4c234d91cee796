"""A replay of production's window with production's rule set gives production's alerts exactly, from Kafka
and from ClickHouse; the CLI's outputs are byte-identical between runs, and a replay changes nothing
production reads (alerts topic, consumer groups, committed offsets).

One production run for the module (rules worker + ClickHouse sink on the session broker); the tests run
in file order: the first one needs the sink still running (it holds the embedded ClickHouse).
"""
from __future__ import annotations

import json
import time
import uuid
from types import SimpleNamespace

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient
from replay_cases import mixed_calls
from typer.testing import CliRunner

from emowatch.rules.engine import step
from emowatch.rules.loader import load_ruleset
from emowatch.rules.testing import synthetic_call
from emowatch.streams.cli.main import app
from emowatch.streams.kafka.admin import end_offsets
from emowatch.streams.kafka.clients import make_producer, serde_for, topics_for
from emowatch.streams.kafka.replay_source import KafkaWindowReader
from emowatch.streams.kafka.scores_publisher import publish_scores
from emowatch.streams.kafka.tail import TopicTail
from emowatch.streams.local.demo import wait_for_lag_zero
from emowatch.streams.local.stack import LocalStack
from emowatch.streams.replay.clickhouse_source import ClickHouseScores
from emowatch.streams.replay.params import Scope, Window
from emowatch.streams.replay.runner import ReplayRequest, run_replay
from emowatch.streams.resources import default_rules_file
from emowatch.streams.sink.clickhouse import connect
from emowatch.topics.serde import encode_key

pytestmark = pytest.mark.integration
TIMEOUT = 180
DB = "emowatch"


def _canonical(events):
    by_call = {}
    for ev in events:
        by_call.setdefault(ev["call_id"], []).append(ev)
    return [ev for call in sorted(by_call) for ev in by_call[call]]


def _same_fields(replayed, production):
    """Field by field, every field of the replay's events but replay_id."""
    assert len(replayed) == len(production)
    for r, p in zip(replayed, production):
        assert {k: v for k, v in r.items() if k != "replay_id"} == {k: p[k] for k in r if k != "replay_id"}


@pytest.fixture(scope="module")
def prod(broker, tmp_path_factory):
    data = tmp_path_factory.mktemp("replay")
    prefix = f"rp{uuid.uuid4().hex[:8]}."
    stack = LocalStack(data_dir=data, broker=broker, topic_prefix=prefix).start()
    try:
        kafka = stack.kafka_settings()
        t = topics_for(kafka)
        start = (int(time.time() * 1000) // 1000 - 900) * 1000  # event times 15 min ago: a window in the past
        # a call that started before the window, produced back then (message timestamps = its event times):
        # tansu's answer for --from (its partition's earliest offset) is then wrong, and detected
        early = synthetic_call("early", [(4000, {"angry": 0.95}), (1000, {"neutral": 0.9})],
                               event_time=start - 120_000)
        producer, serde = make_producer(kafka), serde_for(kafka, "FrameScores")
        for m in early:
            producer.produce(t.scores, key=encode_key("early"), value=serde.encode(m, topic=t.scores),
                             timestamp=m["event_time"])
        assert producer.flush(30) == 0
        messages = early + mixed_calls(start, n=12)
        publish_scores(kafka, messages[len(early):])
        rules_file = default_rules_file()
        rs = load_ruleset(rules_file)
        states, oracle = {}, []
        for m in messages:
            states[m["call_id"]], out = step(states.get(m["call_id"]), m, rs)
            oracle += out
        stack.start_worker("rules", ["rules", "--business-line", "*", "--rules-file", str(rules_file)])
        stack.start_worker("sink", ["sink"])
        wait_for_lag_zero(stack, f"{prefix}emowatch-rules-all", [t.scores], TIMEOUT)
        tail = TopicTail(kafka, {t.alerts: "Alert"})
        alerts = tail.collect(lambda o: len(o[t.alerts]) >= len(oracle), TIMEOUT, check=stack.check_workers)
        tail.catch_up(alerts, TIMEOUT)
        tail.close()
        wait_for_lag_zero(stack, f"{prefix}emowatch-sink", [t.scores, t.alerts], TIMEOUT)
        production = alerts[t.alerts]
        assert len(production) == len(oracle) and any(e["call_id"] == "early" for e in production)
        yield SimpleNamespace(stack=stack, kafka=kafka, topics=t, start=start, rs=rs, rules_file=rules_file,
                              data=data, production=production, prefix=prefix,
                              env={k: v for k, v in stack.env().items() if k.startswith("EMOWATCH_")})
    finally:
        stack.stop()


def _replay_cli(prod, *args):
    return CliRunner().invoke(app, ["replay", "--from", str(prod.start), "--rules", str(prod.rules_file), *args],
                              env=prod.env, catch_exceptions=False)


def test_a_replay_says_so_when_the_sink_holds_the_embedded_clickhouse(prod):
    assert prod.stack.workers["sink"].alive()
    res = _replay_cli(prod, "--source", "kafka", "--no-progress")
    assert res.exit_code == 3, res.output
    said = " ".join(res.output.split())
    assert "Only one process may open it" in said and "sink (`emowatch worker sink`) is running, stop it" in said
    assert "--clickhouse-url" in said


def _expected(prod):
    return _canonical([e for e in prod.production if e["call_id"] != "early"])


def test_kafka_replay_reproduces_production_and_falls_back_on_tansu(prod):
    reader = KafkaWindowReader(prod.kafka, prod.topics.scores, "FrameScores", from_ms=prod.start)
    try:
        assert reader.fallback is True  # tansu answers offsets by time wrongly: detected, scanned from the start
        out = run_replay(ReplayRequest(prod.rs, "default.yaml", Window(prod.start), Scope("*"), "kafka"),
                         (r for batch in reader.batches() for r in batch))
    finally:
        reader.close()
    assert reader.skipped_early == 5  # the early call's messages: older than --from, skipped before decoding
    assert "early" not in out.totals.calls and len(out.totals.calls) == 12
    _same_fields(out.events, _expected(prod))


def test_clickhouse_replay_reproduces_production(prod):
    prod.stack.stop_worker("sink")  # releases the embedded ClickHouse
    client = connect(None, prod.data, DB)
    try:
        scores = ClickHouseScores(client, DB, Window(prod.start), Scope("*"), page_calls=5)
        out = run_replay(ReplayRequest(prod.rs, "default.yaml", Window(prod.start), Scope("*"), "clickhouse"), scores)
        assert scores.pages == 3 and scores.count_calls() == 12
    finally:
        client.close()
    _same_fields(out.events, _expected(prod))


def _production_view(prod):
    """What production reads: the alerts topic's end offsets, the consumer groups, their committed offsets."""
    ends = end_offsets(prod.kafka.bootstrap_servers, [prod.topics.alerts, prod.topics.scores])
    admin = AdminClient({"bootstrap.servers": prod.kafka.bootstrap_servers})
    groups = sorted(g.group_id for g in admin.list_consumer_groups().result().valid)
    ours = [g for g in groups if g.startswith(prod.prefix)]
    committed = {}
    for g in ours:
        res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)])[g].result()
        committed[g] = sorted((tp.topic, tp.partition, tp.offset) for tp in res.topic_partitions)
    return ends, groups, committed


def test_cli_replays_are_byte_identical_stored_published_and_leave_production_alone(prod, tmp_path):
    prod.stack.stop_worker("sink")
    before = _production_view(prod)
    assert f"{prod.prefix}emowatch-rules-all" in before[1] and before[2][f"{prod.prefix}emowatch-rules-all"]
    outs = []
    for name in ("a.json", "b.json"):
        res = _replay_cli(prod, "--to-topic", "--out", str(tmp_path / name))  # --source auto: kafka holds it
        assert res.exit_code == 0, res.output
        said = " ".join(res.output.split())
        assert "source: kafka" in said and "offsets for --from" in said  # the fallback is said
        outs.append((tmp_path / name).read_bytes())
    assert outs[0] == outs[1]
    doc = json.loads(outs[0])
    rid, events = doc["replay"]["replay_id"], doc["events"]
    assert doc["replay"]["source_stats"]["offsets_fallback"] is True and doc["replay"]["calls"] == 12
    _same_fields(events, _expected(prod))
    assert _production_view(prod) == before  # nothing written to production's topic or groups

    tail = TopicTail(prod.kafka, {prod.topics.alerts_replay: "Alert"})
    published = tail.collect(lambda o: len(o[prod.topics.alerts_replay]) >= 2 * len(events), TIMEOUT)
    tail.close()
    assert {e["replay_id"] for e in published[prod.topics.alerts_replay]} == {rid}
    client = connect(None, prod.data, DB)
    try:
        stored = client.query(f"SELECT count() FROM {DB}.alerts FINAL WHERE replay_id = {{r:String}}",
                              parameters={"r": rid}).result_rows[0][0]
        row = client.query(f"SELECT source, messages, calls, alerts, events, offsets_fallback, rule_set "
                           f"FROM {DB}.replays FINAL WHERE replay_id = {{r:String}}", parameters={"r": rid}).result_rows
    finally:
        client.close()
    assert stored == len(events)  # twice inserted, once stored (dedup token, natural key)
    alerts = sum(e["status"] == "FIRING" for e in events)
    assert row == [("kafka", doc["replay"]["messages"], 12, alerts, len(events), True, "default")]


def test_cli_diff_from_clickhouse_and_kafka(prod, tmp_path):
    prod.stack.stop_worker("sink")
    same = _replay_cli(prod, "--source", "clickhouse", "--diff", "--no-store", "--no-progress",
                       "--out", str(tmp_path / "same.json"))
    assert same.exit_code == 0, same.output
    totals = json.loads((tmp_path / "same.json").read_text())["diff"]["totals"]
    fired = sum(e["status"] == "FIRING" for e in _expected(prod))
    assert totals["production"] == totals["replay"] == totals["same"] == fired > 0
    stricter = tmp_path / "strict.yaml"
    stricter.write_text(prod.rules_file.read_text().replace("when: {emotion: angry, above: 0.75}\n    for: 2s",
                                                            "when: {emotion: angry, above: 0.97}\n    for: 2s"))
    res = _replay_cli(prod, "--source", "clickhouse", "--diff", "--no-store", "--no-progress",
                      "--rules", str(stricter), "--out", str(tmp_path / "strict.csv"))
    assert res.exit_code == 0, res.output
    assert "diff against production" in res.output and "angry-sust" in res.output
    rows = (tmp_path / "strict.csv").read_text().splitlines()
    assert rows[0].startswith("kind,rule_id,business_line,call_id") and len(rows) > 1
    assert all(r.split(",")[1] == "angry-sustained" for r in rows[1:])
    # without ClickHouse (--no-store, Kafka source) production's alerts come from the alerts topic
    res = _replay_cli(prod, "--source", "kafka", "--diff", "--no-store", "--no-progress",
                      "--out", str(tmp_path / "kafka.json"))
    assert res.exit_code == 0, res.output
    assert "Kafka" in res.output and json.loads((tmp_path / "kafka.json").read_text())["diff"]["totals"] == totals


def test_cli_sweep_from_kafka(prod, tmp_path):
    res = _replay_cli(prod, "--source", "kafka", "--no-store", "--no-progress", "--sweep",
                      "angry-sustained.for=1s:3s:1s", "--out", str(tmp_path / "sweep.json"))
    assert res.exit_code == 0, res.output
    said = " ".join(res.output.split())
    # angry-sustained mutes the review rule (default.yaml's inhibit): one state per value, in the same pass
    assert "angry-sustained.for=1s:3s:1s (separate pass: 'angry-sustained' is an inhibition source)" in said
    sweep = json.loads((tmp_path / "sweep.json").read_text())["sweep"]
    counts = [v["alerts"] for v in sweep["values"]]
    assert [v["label"] for v in sweep["values"]] == ["1s", "2s", "3s"]
    prod_count = sum(e["status"] == "FIRING" and e["rule_id"] == "angry-sustained" for e in _expected(prod))
    assert counts[1] == prod_count and counts[0] >= counts[1] >= counts[2]  # 2s is production's own value
