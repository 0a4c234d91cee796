"""Voice activity in the agent's pure steps: the same values whatever order chunks arrive in, and the
FrameScores v3 fields built by ``frame_scores_record`` / ``score_batch``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emowatch.streams.audio.codec import encode_pcm_s16le
from emowatch.streams.infer.context import ContextStore
from emowatch.streams.infer.scoring import admit_chunk, frame_scores_record, score_batch
from emowatch.streams.infer.vad import Activity, make_frame_activity
from emowatch.streams.resources import samples_dir
from emowatch.topics.serde import AvroSerde

LABELS = [f"l{i}" for i in range(9)]


@pytest.fixture(scope="module")
def silero():
    return make_frame_activity("silero", context_ms=256, max_context_s=2.0)


def chunk(seq: int, audio: np.ndarray) -> dict:
    pcm = encode_pcm_s16le(audio[seq * 16000:(seq + 1) * 16000])
    return {"call_id": "c1", "role": "CUSTOMER", "seq": seq, "start_ms": seq * 1000, "event_time": 1000 + seq,
            "sample_rate": 16000, "encoding": "PCM_S16LE", "channels": 1, "audio": pcm, "business_line": "b",
            "end_of_call": False, "attributes": {}}


def speech_by_seq(order: list[int], activity) -> dict[int, np.ndarray]:
    audio, _rate = sf.read(Path(samples_dir()) / "calm_01.wav", dtype="float32")
    ctx, refs = ContextStore(2.0, reorder_max=4, reorder_timeout_s=5.0), []
    for seq in order:
        refs += admit_chunk(chunk(seq, audio), None, ctx, max_chunk_s=5, stereo_roles=None, now=0.0).refs
    assert sorted(r.seq for r in refs) == sorted(order)
    acts = activity.annotate([(r.window, r.emit_samples) for r in refs])
    return {r.seq: a.speech for r, a in zip(refs, acts)}


def test_same_speech_whatever_order_the_chunks_arrive_in(silero) -> None:
    in_order = speech_by_seq([0, 1, 2, 3, 4], silero)
    shuffled = speech_by_seq([0, 2, 4, 3, 1], silero)  # held in the reorder buffer, released when 1 arrives
    assert all(np.array_equal(in_order[s], shuffled[s]) for s in range(5))
    assert in_order[3].max() > 0.5  # speech, not an all-zero comparison


def test_frame_scores_record_carries_the_activity_and_encodes_as_v3(silero) -> None:
    audio, _rate = sf.read(Path(samples_dir()) / "calm_01.wav", dtype="float32")
    ref = admit_chunk(chunk(0, audio), None, ContextStore(), max_chunk_s=5, stereo_roles=None, now=0.0).refs[0]

    def engine(windows):
        from emowatch.models.engine import Result

        return [Result(w.key, np.zeros((w.emit_samples // 320, 9), np.float32), np.full(9, 1 / 9, np.float32))
                for w in windows]

    ((res, act),) = score_batch(engine, silero, [ref])
    rec = frame_scores_record(ref, res.logits, res.probs, None, labels=LABELS, model_name="m", model_version="v",
                              frame_ms=20, activity=act)
    assert rec["n_frames"] == 50 and len(rec["speech"]) == len(rec["energy_db"]) == 50
    assert rec["vad"] == silero.name
    out = AvroSerde("FrameScores").decode(AvroSerde("FrameScores").encode(rec, topic="t"), topic="t")
    assert out["speech"] == act.speech.tolist() and out["energy_db"] == act.energy_db.tolist()
    assert out["vad"].startswith("silero-vad ")
    bare = frame_scores_record(ref, res.logits, res.probs, None, labels=LABELS, model_name="m", model_version="v",
                               frame_ms=20)
    assert (bare["speech"], bare["energy_db"], bare["vad"]) == (None, None, None)
    ((_res, off),) = score_batch(engine, make_frame_activity("off", context_ms=0), [ref])
    rec_off = frame_scores_record(ref, res.logits, res.probs, None, labels=LABELS, model_name="m",
                                  model_version="v", frame_ms=20, activity=off)
    assert rec_off["speech"] is None and rec_off["vad"] is None and len(rec_off["energy_db"]) == 50
    with pytest.raises(ValueError, match="voice activity of 49 frames for 50 logit frames"):
        frame_scores_record(ref, res.logits, res.probs, None, labels=LABELS, model_name="m", model_version="v",
                            frame_ms=20, activity=Activity(act.speech[:49], act.energy_db[:49], act.vad))
