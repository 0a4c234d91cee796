"""The rescore's offline scorer without Kafka: the inference agent's pure steps on an event-time clock.

The model is a small deterministic function of the window (frame i's logits = its mean sample and the
window length), enough to see which windows reach the model, with what left context, in what order."""
import numpy as np

from emowatch.models.engine import ItemError, Result
from emowatch.streams.audio.codec import encode_pcm_s16le
from emowatch.streams.rescore.scorer import OfflineScorer

LABELS = ["angry", "neutral"]


def infer(windows):
    out = []
    for w in windows:
        if w.emit_samples < 320 * 10:
            out.append(ItemError(w.key, "too_short", "short"))
            continue
        n = w.emit_samples // 320
        logits = np.array([[float(w.audio[-1]), len(w.audio) / 16000.0]] * n, np.float32)
        out.append(Result(w.key, logits, np.array([0.5, 0.5], np.float32)))
    return out


def chunk(call, seq, *, value=0.1, t0=1_000_000, end=False, seconds=1.0):
    audio = encode_pcm_s16le(np.full(int(16000 * seconds), value, np.float32))
    return {"call_id": call, "role": "CUSTOMER", "seq": seq, "start_ms": seq * 1000, "event_time": t0 + seq * 1000,
            "sample_rate": 16000, "encoding": "PCM_S16LE", "channels": 1, "audio": audio, "business_line": "retail",
            "end_of_call": end, "attributes": {}}


def scorer(max_batch=4, reorder_max=4):
    return OfflineScorer(infer, labels=LABELS, model_name="m2", model_version="v2", frame_ms=20, context_s=2.0,
                         reorder_max=reorder_max, reorder_timeout_s=1.0, max_chunk_s=5.0, stereo_roles=None,
                         max_batch=max_batch)


def run(sc, chunks, emit=lambda c: True):
    out = []
    for i, c in enumerate(chunks):
        out += sc.offer(c, emit=emit(c), partition=0, offset=i)
    return out + sc.finish()


def test_scores_in_batches_in_seq_order_with_the_new_model_and_left_context():
    sc = scorer(max_batch=4)
    calls = [chunk(c, s, value=0.1 * (s + 1), end=s == 5) for s in range(6) for c in ("a", "b")]
    first = []
    for i, c in enumerate(calls[:7]):
        first += sc.offer(c, emit=True, partition=0, offset=i)
    assert len(first) == 4  # one full batch so far; the rest waits for the next batch or finish()
    out = first + run(sc, calls[7:])
    assert [(r["call_id"], r["seq"]) for r in out if r["call_id"] == "a"] == [("a", s) for s in range(6)]
    assert {(r["model"]["name"], r["model"]["version"]) for r in out} == {("m2", "v2")}
    window_s = [r["logits"][1] for r in out if r["call_id"] == "a"]
    assert window_s == [1.0, 2.0, 3.0, 3.0, 3.0, 3.0]  # the chunk + up to context_s (2 s) before it
    assert [r["end_of_call"] for r in out if r["call_id"] == "b"] == [False] * 5 + [True]
    assert sc.counts.scored == 12 and sc.counts.calls == {"a", "b"} and sc.counts.audio_s == 12.0


def test_context_only_chunks_build_left_context_but_are_not_scored():
    sc = scorer()
    out = run(sc, [chunk("a", s) for s in range(5)], emit=lambda c: c["seq"] >= 3)
    assert [r["seq"] for r in out] == [3, 4]
    assert [r["logits"][1] for r in out] == [3.0, 3.0] and not any(r["gap_before"] for r in out)
    assert sc.counts.context_only == 3 and sc.counts.read == 5


def test_a_call_read_from_its_middle_starts_with_a_gap_after_the_event_time_reorder_timeout():
    sc = scorer()
    first = sc.offer(chunk("a", 7), emit=True, partition=0, offset=0)
    assert first == []  # held: seq 0 might still come
    out = first + run(sc, [chunk("a", 8), chunk("a", 9)])  # 1 s of event time later the gap is final
    assert [(r["seq"], r["gap_before"]) for r in out] == [(7, True), (8, False), (9, False)]
    assert out[0]["logits"][1] == 1.0  # no left context across the gap


def test_duplicates_undecodable_chunks_and_engine_errors_are_counted_not_scored():
    sc = scorer()
    bad = dict(chunk("a", 1), encoding="MP3")
    out = run(sc, [chunk("a", 0), chunk("a", 0), bad, chunk("a", 1, seconds=0.1), chunk("a", 2)])
    assert [r["seq"] for r in out] == [0, 2]
    c = sc.counts
    assert (c.duplicates, c.rejected, c.failed, c.scored) == (1, 1, 1, 2)
