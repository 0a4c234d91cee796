"""The walking skeleton on real parts: local broker, inference agent (FunASR-loaded demo model),
Faust rules worker, ClickHouse sink (embedded chDB). One run, several assertions."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest

from emowatch.streams.kafka.audio_publisher import AudioPublisher, call_records
from emowatch.streams.kafka.clients import group_name, topics_for
from emowatch.streams.kafka.tail import TopicTail
from emowatch.streams.local.demo import demo_model_dir, load_calls, query_summary, wait_for_lag_zero
from emowatch.streams.local.stack import LocalStack

pytestmark = pytest.mark.integration
TIMEOUT = 300


@dataclass
class Run:
    calls: list
    expected_chunks: dict
    scores: list[dict]
    alerts: list[dict]
    dlq: list
    rows: dict
    fire: dict
    never: dict


def derive_rules(scores: list[dict]) -> tuple[dict, dict]:
    """A rule that must fire (threshold just under the highest full-chunk probability, placed in a
    gap of the observed values) and one that cannot (above everything observed), from the scores."""
    full = [s for s in scores if s["n_frames"] == 50]
    labels = full[0]["labels"]
    probs = np.array([s["chunk_probs"] for s in full])
    e = int(np.argmax(probs.max(axis=0)))
    values = np.sort(probs[:, e])[::-1]
    gaps = [i for i in range(len(values) - 1) if values[i] - values[i + 1] > 2e-3]
    i = gaps[0] if gaps else len(values) - 1
    threshold = float((values[i] + values[i + 1]) / 2) if i + 1 < len(values) else float(values[i] - 2e-3)
    firing_calls = sorted({s["call_id"] for s, p in zip(full, probs[:, e]) if p > threshold})
    e2 = int(np.argmin(probs.max(axis=0)))
    impossible = float(min(1.0, probs[:, e2].max() + 0.02))
    return ({"emotion": labels[e], "above": round(threshold, 6), "calls": firing_calls},
            {"emotion": labels[e2], "above": round(impossible, 6)})


def rules_yaml(fire: dict, never: dict) -> str:
    return f"""rule_set: skeleton-test
business_line: "*"
defaults: {{window: 1s, hop: 1s, role: any}}
rules:
  - id: derived-fires
    when: {{emotion: {fire['emotion']}, above: {fire['above']}}}
    priority: high
  - id: cannot-hold
    when: {{emotion: {never['emotion']}, above: {never['above']}}}
    for: 1s
"""


@pytest.fixture(scope="module")
def run(broker, tmp_path_factory) -> Run:
    data = tmp_path_factory.mktemp("skeleton")
    prefix = f"sk{np.random.default_rng().integers(1 << 30)}."
    stack = LocalStack(data_dir=data, broker=broker, topic_prefix=prefix).start()
    try:
        kafka = stack.kafka_settings()
        t = topics_for(kafka)
        stack.start_worker("infer", ["infer"], env={"EMOWATCH_MODEL__MODEL": str(demo_model_dir())})
        stack.start_worker("sink", ["sink"])
        calls = load_calls()
        expected = {c.call_id: call_records(c, start_time_ms=0) for c in calls}
        sent = AudioPublisher(kafka).publish_calls(calls)
        assert sent == sum(len(v) for v in expected.values())
        tail = TopicTail(kafka, {t.scores: "FrameScores", t.alerts: "Alert", t.dlq: "DeadLetter"})
        got = tail.collect(lambda o: len(o[t.scores]) >= sent, TIMEOUT, check=stack.check_workers)
        fire, never = derive_rules(got[t.scores])
        rules_file = data / "derived.yaml"
        rules_file.write_text(rules_yaml(fire, never))
        stack.start_worker("rules", ["rules", "--business-line", "*", "--rules-file", str(rules_file)])
        wait_for_lag_zero(stack, f"{prefix}emowatch-rules-all", [t.scores], TIMEOUT)
        tail.catch_up(got, TIMEOUT)
        wait_for_lag_zero(stack, group_name(kafka, "emowatch-sink"), [t.scores, t.alerts], TIMEOUT)
        tail.close()
        stack.stop_worker("sink")
        from emowatch.streams.sink.clickhouse import connect

        client = connect(None, data, "emowatch")
        rows = {
            "scores": client.query(
                "SELECT call_id, role, seq, n_frames, length(logits) FROM emowatch.scores").result_rows,
            "alerts": client.query("SELECT alert_id, status, rule_id, call_id FROM emowatch.alerts").result_rows,
        }
        client.close()
        rows["summary"] = query_summary(data)
        return Run(calls, expected, got[t.scores], [a for a in got[t.alerts]], got[t.dlq], rows, fire, never)
    finally:
        stack.stop()


def test_every_chunk_yields_exactly_one_scores_message_with_50_frames_per_second(run):
    seen = Counter((s["call_id"], s["seq"]) for s in run.scores)
    expected = {(cid, r["seq"]): r for cid, recs in run.expected_chunks.items() for r in recs}
    assert set(seen) == set(expected)
    assert all(n == 1 for n in seen.values())
    for s in run.scores:
        chunk = expected[(s["call_id"], s["seq"])]
        seconds = len(chunk["audio"]) / 2 / chunk["sample_rate"]
        assert s["n_frames"] == round(seconds * 50)
        assert len(s["logits"]) == s["n_frames"] * 9 and len(s["chunk_probs"]) == 9
        assert s["role"] == chunk["role"] and s["start_ms"] == chunk["start_ms"]
        assert abs(sum(s["chunk_probs"]) - 1.0) < 1e-4
    assert run.dlq == []


def test_clickhouse_holds_exactly_the_published_rows(run):
    published = sorted((s["call_id"], s["role"], s["seq"], s["n_frames"], len(s["logits"])) for s in run.scores)
    assert sorted(run.rows["scores"]) == published
    published_alerts = sorted((a["alert_id"], a["status"], a["rule_id"], a["call_id"]) for a in run.alerts)
    assert sorted(run.rows["alerts"]) == published_alerts
    cols, summary = run.rows["summary"]
    by_call = {r[cols.index("call_id")]: r for r in summary}
    assert {cid: by_call[cid][cols.index("chunks")] for cid in by_call} == {
        cid: len(recs) for cid, recs in run.expected_chunks.items()}


def test_derived_rule_fires_and_impossible_rule_does_not(run):
    firing = [a for a in run.alerts if a["status"] == "FIRING"]
    assert {a["rule_id"] for a in firing} == {"derived-fires"}
    assert sorted({a["call_id"] for a in firing}) == run.fire["calls"]
    assert all(a["value"] > run.fire["above"] for a in firing)
    assert len({a["alert_id"] for a in firing}) == len(firing)
