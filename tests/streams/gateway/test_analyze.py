"""The upload page's whole-file analysis (streams/gateway/analyze.py) on the bundled demo model."""
from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest

from emowatch.models.engine import n_frames
from emowatch.models.synth import synth_call
from emowatch.models.timeline import EMOJI, segments, step_probs, summary
from emowatch.streams.gateway.analyze import AnalysisError, Analyzer
from emowatch.streams.resources import demo_model_dir
from emowatch.streams.settings import ModelSettings

TOL = 1e-4
SETTINGS = ModelSettings(model=str(demo_model_dir()), device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer(SETTINGS)


def _call(seed: int, parts=(("neutral", 1.6), ("angry", 2.7))) -> np.ndarray:
    return synth_call(list(parts), seed=seed)[: int(sum(s for _, s in parts) * 16000) - 77]


def _funasr(analyzer: Analyzer, audio: np.ndarray):
    gen = analyzer.model().automodel.generate
    utt = gen(input=audio, granularity="utterance", extract_embedding=True, disable_pbar=True)[0]
    frm = gen(input=audio, granularity="frame", extract_embedding=True, disable_pbar=True)[0]
    proj = analyzer.model().module.proj
    logits = frm["feats"] @ proj.weight.detach().numpy().T + proj.bias.detach().numpy()
    return np.asarray(utt["scores"]), logits, np.asarray(frm["feats"]), np.asarray(utt["feats"])


def _check_channel(body: dict, analyzer: Analyzer, audio: np.ndarray) -> None:
    probs, logits, _, _ = _funasr(analyzer, audio)
    np.testing.assert_allclose(body["utterance"]["probs"], probs, atol=TOL)
    labels = analyzer.model().labels
    k = int(np.argmax(probs))
    assert body["utterance"]["top"] == labels[k] and body["utterance"]["emoji"] == EMOJI[labels[k]]
    assert abs(body["utterance"]["confidence"] - probs[k]) < TOL
    steps = step_probs(logits)
    assert body["timeline"]["step_ms"] == 200 and len(body["timeline"]["probs"]) == -(-len(logits) // 10)
    np.testing.assert_allclose(body["timeline"]["probs"], steps, atol=TOL)
    segs = segments(np.asarray(body["timeline"]["probs"]), labels=tuple(labels))
    assert [s["emotion"] for s in body["segments"]] == [s.emotion for s in segs]
    assert body["segments"][0]["start_ms"] == 0
    duration_ms = round(1000 * len(audio) / 16000)
    assert segs[-1].end_ms > duration_ms == body["segments"][-1]["end_ms"]  # clamped to the audio
    segs[-1] = dataclasses.replace(segs[-1], end_ms=duration_ms)
    assert body["segments"] == [s.as_dict() for s in segs] and body["summary"] == summary(segs)


def test_model_loads_lazily_once_across_threads():
    a = Analyzer(SETTINGS)
    assert not a.loaded
    got = []
    threads = [threading.Thread(target=lambda: got.append(a.model())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert a.loaded and len(got) == 3 and all(m is got[0] for m in got)


def test_mono_utterance_is_funasr_answer_for_the_file(analyzer):
    audio = _call(1)
    res = analyzer.analyze(audio[:, None], 16000, granularity="utterance", embeddings=False, roles=["CUSTOMER"])
    b = res.body
    assert res.embedding is None and "channels" not in b
    assert b["duration_ms"] == round(1000 * len(audio) / 16000) and b["granularity"] == "utterance"
    assert b["labels"] == analyzer.model().labels
    assert b["model"] == {"name": "emowatch-demo-e2v", "version": analyzer.model().version}
    _check_channel(b, analyzer, audio)


def test_frame_granularity_embeddings_are_funasr_frame_features(analyzer):
    audio = _call(2)
    res = analyzer.analyze(audio, 16000, granularity="frame", embeddings=True, roles=["MIXED"])
    _, _, feats, _ = _funasr(analyzer, audio)
    assert res.embedding.shape == feats.shape == (n_frames(len(audio)), 96) and res.embedding.dtype == np.float32
    np.testing.assert_allclose(res.embedding, feats, atol=TOL)
    assert res.body["granularity"] == "frame"
    utt = analyzer.analyze(audio, 16000, granularity="utterance", embeddings=True, roles=["MIXED"])
    np.testing.assert_allclose(utt.embedding, feats.mean(0), atol=TOL)


def test_stereo_is_analysed_per_channel(analyzer):
    left, right = _call(3), _call(4, (("sad", 2.0), ("angry", 2.3)))
    stereo = np.stack([left, right], axis=1)
    res = analyzer.analyze(stereo, 16000, granularity="utterance", embeddings=True, roles=["CUSTOMER", "AGENT"])
    b = res.body
    assert "utterance" not in b and [c["role"] for c in b["channels"]] == ["CUSTOMER", "AGENT"]
    for ch, audio in zip(b["channels"], (left, right)):
        _check_channel(ch, analyzer, audio)
    assert res.embedding.shape == (2, 96)
    np.testing.assert_allclose(res.embedding[1], _funasr(analyzer, right)[3], atol=TOL)
    frames = analyzer.analyze(stereo, 16000, granularity="frame", embeddings=True, roles=["CUSTOMER", "AGENT"])
    assert frames.embedding.shape == (2, n_frames(len(left)), 96)
    np.testing.assert_allclose(frames.embedding[0], _funasr(analyzer, left)[2], atol=TOL)


def test_other_rates_are_resampled_to_16k(analyzer):
    from emowatch.streams.audio.codec import resample

    audio8k = _call(5)[::2].copy()
    res = analyzer.analyze(audio8k, 8000, granularity="utterance", embeddings=False, roles=["MIXED"])
    _check_channel(res.body, analyzer, resample(audio8k, 8000))
    assert res.body["duration_ms"] == round(1000 * len(audio8k) / 8000)


def test_long_files_use_frame_aligned_segments():
    a = Analyzer(SETTINGS, segment_s=2.0)
    audio = _call(6, (("neutral", 3.0), ("angry", 3.0)))
    res = a.analyze(audio, 16000, granularity="frame", embeddings=True, roles=["MIXED"])
    assert res.embedding.shape[0] == n_frames(len(audio))
    assert len(res.body["timeline"]["probs"]) == -(-n_frames(len(audio)) // 10)
    assert sum(res.body["utterance"]["probs"]) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("kwargs,code,status", [
    ({"samples": np.zeros((300, 1), np.float32)}, "too_short", 422),
    ({"samples": np.full((16000, 1), np.nan, np.float32)}, "non_finite", 422),
    ({"samples": np.zeros((16000, 3), np.float32), "roles": ["A", "B", "C"]}, "unsupported_channels", 422),
    ({"samples": np.zeros((16000, 2), np.float32)}, "bad_parameter", 400),
    ({"samples": np.zeros((16000, 1), np.int16)}, "bad_audio", 422),
    ({"rate": 12345}, "unsupported_rate", 422),
    ({"granularity": "word"}, "bad_parameter", 400),
    ({"samples": np.zeros((16000 * 4, 1), np.float32)}, "too_long", 422),
])
def test_bad_input_raises_coded_errors(kwargs, code, status):
    a = Analyzer(SETTINGS, max_seconds=3.0)
    args = {"samples": np.zeros((16000, 1), np.float32), "rate": 16000, "granularity": "utterance", **kwargs}
    with pytest.raises(AnalysisError) as e:
        a.analyze(args.pop("samples"), args.pop("rate"), embeddings=False, roles=args.pop("roles", ["MIXED"]),
                  **args)
    assert e.value.code == code and e.value.status == status
    assert not a.loaded  # input checks come before the model is loaded
