"""The fine-tuned checkpoint runs in the inference agent (real local broker, `emowatch worker infer` process with
EMOWATCH_MODEL__MODEL=<the new directory>): its FrameScores carry the new model version, and each chunk's scores
are the new head applied to the weakened model's own embedding of the same window (the encoder is unchanged)."""
from __future__ import annotations

import uuid

import numpy as np
import pytest
import torch

from emowatch.models.evaluate import stream_windows
from emowatch.models.synth import synth_call
from emowatch.streams.audio.chunking import chunk_records
from emowatch.streams.kafka.audio_publisher import AudioPublisher
from emowatch.streams.kafka.clients import topics_for
from emowatch.streams.kafka.tail import TopicTail
from emowatch.streams.local.stack import LocalStack

pytestmark = pytest.mark.integration
DEADLINE = 180
CALL = [("neutral", 1.0), ("angry", 1.5), ("sad", 1.5)]  # 4 s: four 1 s chunks


def test_the_agent_publishes_the_new_heads_scores_under_the_new_version(broker, finetuned, weak_model,
                                                                          tmp_path):
    call_id = f"ft-{uuid.uuid4().hex[:6]}"
    records = list(chunk_records(synth_call(CALL, seed=3), 16000, call_id=call_id, role="CUSTOMER",
                                 start_time_ms=1_700_000_000_000))
    stack = LocalStack(data_dir=tmp_path, broker=broker, topic_prefix=f"ft{uuid.uuid4().hex[:8]}.").start()
    try:
        stack.start_worker("infer", ["infer"], env={"EMOWATCH_MODEL__MODEL": str(finetuned.out),
                                                    "EMOWATCH_MODEL__EMBEDDINGS": "true",
                                                    "EMOWATCH_INFER__VAD": "off"})
        kafka = stack.kafka_settings()
        scores_topic = topics_for(kafka).scores
        pub = AudioPublisher(kafka)
        for r in records:
            pub.send(r)
        pub.flush()
        tail = TopicTail(kafka, {scores_topic: "FrameScores"})
        try:
            got = tail.collect(lambda out: sum(s["call_id"] == call_id for s in out[scores_topic]) >= len(records),
                               DEADLINE, check=stack.check_workers)[scores_topic]
        finally:
            tail.close()
    finally:
        stack.stop()
    scores = sorted((s for s in got if s["call_id"] == call_id), key=lambda s: s["seq"])
    assert [s["seq"] for s in scores] == list(range(len(records)))
    assert {(s["model"]["name"], s["model"]["version"]) for s in scores} == {(finetuned.out.name, finetuned.version)}
    assert finetuned.version != weak_model.version
    # the same windows through the weakened model, here: the agent's embeddings are the weak encoder's
    audio = np.concatenate([np.frombuffer(r["audio"], dtype="<i2") for r in records]).astype(np.float32) / 32768.0
    local = weak_model.engine().infer_batch(stream_windows(audio), embeddings=True)
    state = torch.load(finetuned.out / "model.pt", map_location="cpu", weights_only=True)
    new_w, new_b = (state[k].numpy().astype(np.float64) for k in ("proj.weight", "proj.bias"))
    published, old_head = [], []
    for s, mine in zip(scores, local):
        emb = np.asarray(s["embedding"], dtype=np.float64)
        np.testing.assert_allclose(emb, mine.embedding, atol=1e-4)
        logits = np.asarray(s["logits"], dtype=np.float64).reshape(s["n_frames"], len(s["labels"]))
        np.testing.assert_allclose(logits.mean(axis=0), emb @ new_w.T + new_b, atol=1e-4)  # the new head
        published.append(logits.mean(axis=0))
        old_head.append(mine.logits.mean(axis=0))
    assert not np.allclose(published, old_head, atol=1e-2)  # not the weakened model's scores
