"""`emowatch rescore` on the real local broker against a real inference agent (demo model).

The agent scores three calls into production's scores topic; a rescore with the SAME model must
reproduce production's FrameScores (logits within float tolerance, identical seq/start_ms/flags),
also from the middle of a call (left context read before --from); a rescore with another model
writes that model's name/version, to its own topic and to ClickHouse's scores_rescored table only.
Production's scores topic and the agent's consumer group are the same before and after.
"""
from __future__ import annotations

import json
import time
import uuid

import numpy as np
import pytest
from typer.testing import CliRunner

from emowatch.models.checkpoint import build_checkpoint
from emowatch.models.loader import load_model
from emowatch.streams.audio.chunking import chunk_records, read_wav
from emowatch.streams.kafka.admin import end_offsets, group_lag
from emowatch.streams.kafka.audio_publisher import AudioPublisher
from emowatch.streams.kafka.clients import topics_for
from emowatch.streams.kafka.tail import TopicTail
from emowatch.streams.local.demo import demo_model_dir, samples_dir
from emowatch.streams.local.stack import LocalStack
from emowatch.streams.rescore.errors import RescoreError
from emowatch.streams.rescore.runner import Rescore
from emowatch.streams.rescore.selection import Selection, warmup_ms
from emowatch.streams.settings import Settings
from emowatch.streams.sink.clickhouse import connect

pytestmark = pytest.mark.integration
T0 = (int(time.time()) // 60 - 60) * 60_000  # an hour ago: the ClickHouse tables' TTL keeps 400 days
DEADLINE = 180
CALLS = {"rs-a": ("escalating_01.wav", "retail", T0), "rs-b": ("agitated_01.wav", "collections", T0 + 2_000),
         "rs-c": ("calm_01.wav", "retail", T0 + 60_000)}


def _records() -> list[dict]:
    out: list[dict] = []
    for call_id, (name, line, start) in CALLS.items():
        samples, rate = read_wav(samples_dir() / name)
        out += chunk_records(samples, rate, call_id=call_id, role="CUSTOMER", business_line=line, start_time_ms=start)
    return sorted(out, key=lambda r: (r["event_time"], r["call_id"]))  # interleaved like live calls


def _read(kafka, topic: str, n: int) -> list[dict]:
    tail = TopicTail(kafka, {topic: "FrameScores"})
    try:
        return tail.collect(lambda out: len(out[topic]) >= n, DEADLINE)[topic]
    finally:
        tail.close()


@pytest.fixture(scope="module")
def production(broker, tmp_path_factory):
    """An inference agent (demo model) that has scored the three calls; its settings, scores and the model."""
    data = tmp_path_factory.mktemp("rescore")
    stack = LocalStack(data_dir=data, broker=broker, topic_prefix=f"rs{uuid.uuid4().hex[:8]}.").start()
    try:
        stack.start_worker("infer", ["infer"], env={"EMOWATCH_MODEL__MODEL": str(demo_model_dir())})
        kafka = stack.kafka_settings()
        records = _records()
        pub = AudioPublisher(kafka)
        for r in records:
            pub.send(r)
        pub.flush()
        model = load_model(str(demo_model_dir()), device="cpu", precision="fp32")  # while the agent scores
        scores = _read(kafka, topics_for(kafka).scores, len(records))
        settings = Settings(kafka=kafka).with_overrides(sink={"data_dir": str(data)})
        yield settings, scores, model, stack, data
    finally:
        stack.stop()


def _key(s: dict) -> tuple:
    return s["call_id"], s["role"], s["seq"]


def _production_state(settings) -> tuple:
    t = topics_for(settings.kafka)
    ends = end_offsets(settings.kafka.bootstrap_servers, [t.scores, t.audio])
    lag = group_lag(settings.kafka.bootstrap_servers, f"{settings.kafka.topic_prefix}emowatch-infer", [t.audio])
    return ends, lag


def _assert_same_scores(got: list[dict], want: list[dict]) -> None:
    assert sorted(map(_key, got)) == sorted(map(_key, want))
    ref = {_key(s): s for s in want}
    for s in got:
        p = ref[_key(s)]
        for field in ("start_ms", "event_time", "n_frames", "frame_ms", "gap_before", "end_of_call", "business_line",
                      "labels", "model"):
            assert s[field] == p[field], (field, _key(s))
        np.testing.assert_allclose(s["logits"], p["logits"], atol=2e-4, rtol=1e-4)
        np.testing.assert_allclose(s["chunk_probs"], p["chunk_probs"], atol=2e-5)


def test_a_rescore_with_the_production_model_reproduces_production_scores(production):
    settings, scores, model, _stack, _data = production
    target = f"{settings.kafka.topic_prefix}emowatch.scores.same.v1"
    before = _production_state(settings)
    summary = Rescore(settings, Selection(T0 - 1), model=model, target=target).run()
    assert (summary.chunks, summary.calls, summary.model_version) == (len(scores), 3, model.version)
    _assert_same_scores(_read(settings.kafka, target, len(scores)), scores)
    # from the middle of call a, only calls a and b, until before call c: the chunks scored from 5 s on get
    # production's left context (read before --from), so they equal production too
    inf = settings.infer
    sel = Selection(T0 + 5_000, T0 + 30_000, None, frozenset({"rs-a", "rs-c"}),
                    warmup_ms(inf.context_s, inf.max_chunk_s, inf.reorder_timeout_s))
    mid = f"{settings.kafka.topic_prefix}emowatch.scores.mid.v1"
    part = Rescore(settings, sel, model=model, target=mid).run()
    want = [s for s in scores if s["call_id"] == "rs-a" and T0 + 5_000 <= s["event_time"]]
    assert want and part.chunks == len(want) and part.context_chunks > 0
    _assert_same_scores(_read(settings.kafka, mid, len(want)), want)
    assert _production_state(settings) == before  # production's scores topic and the agent's group untouched


def test_another_model_goes_to_its_own_topic_and_table_with_its_version(production, tmp_path):
    settings, scores, model, _stack, data = production
    other = build_checkpoint(tmp_path / "other", shape="demo", seed=7)
    target = f"{settings.kafka.topic_prefix}emowatch.scores.other.v1"
    env = {"EMOWATCH_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
           "EMOWATCH_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix, "EMOWATCH_KAFKA__PARTITIONS": "4",
           "EMOWATCH_SINK__DATA_DIR": str(data),
           "EMOWATCH_MODEL__DEVICE": "cpu"}
    from emowatch.streams.cli.main import app

    n_b = sum(s["call_id"] == "rs-b" for s in scores)
    args = ["rescore", f"--from={T0}", "--model", str(other), "--scores-topic", target, "--business-line",
            "collections", "--store", "--json", str(tmp_path / "summary.json")]
    res = CliRunner().invoke(app, args, env=env)
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    version = load_model(str(other), device="cpu").version
    assert version != model.version and summary["model_version"] == version
    assert (summary["chunks"], summary["calls"], summary["stored_rows"]) == (n_b, 1, n_b)
    assert "real-time factor" in res.output
    got = _read(settings.kafka, target, n_b)
    assert {s["call_id"] for s in got} == {"rs-b"} and {s["model"]["version"] for s in got} == {version}
    ref = {_key(s): s for s in scores}
    assert not np.allclose(got[0]["logits"], ref[_key(got[0])]["logits"], atol=1e-3)  # really another model
    again = CliRunner().invoke(app, args, env=env)  # a rerun: the same rows, deduplicated in ClickHouse
    assert again.exit_code == 0, again.output
    ch = connect(None, data, "emowatch")
    try:
        rows = ch.query("SELECT model_version, call_id, count() FROM emowatch.scores_rescored FINAL "
                        "GROUP BY model_version, call_id").result_rows
        assert rows == [(version, "rs-b", n_b)]
        assert ch.query("SELECT count() FROM emowatch.scores_rescored").result_rows[0][0] == n_b
        assert ch.query("SELECT count() FROM emowatch.scores").result_rows[0][0] == 0  # production's table untouched
    finally:
        ch.close()


def test_the_production_scores_topic_is_refused_before_anything_runs(production):
    settings, _scores, model, _stack, _data = production
    before = _production_state(settings)
    with pytest.raises(RescoreError, match="scores topic"):
        Rescore(settings, Selection(T0), model=model, target=topics_for(settings.kafka).scores)
    assert _production_state(settings) == before
