"""Whole files scored by models/utterance.py == FunASR's AutoModel.generate on the same waveform."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import full_only

from emowatch.models.engine import ItemError, Result, Window, n_frames
from emowatch.models.loader import load_model
from emowatch.models.synth import synth_call
from emowatch.models.timeline import softmax
from emowatch.models.utterance import score_files, segment_bounds
from emowatch.streams.audio.chunking import read_wav_mono
from emowatch.streams.resources import sample_manifest

TOL = 1e-4


def _funasr(model, audio):
    """FunASR's (utterance scores, frame features, utterance feature) for ``audio`` as given."""
    gen = model.automodel.generate
    utt = gen(input=audio, granularity="utterance", extract_embedding=True, disable_pbar=True)[0]
    frm = gen(input=audio, granularity="frame", extract_embedding=True, disable_pbar=True)[0]
    return np.asarray(utt["scores"]), np.asarray(frm["feats"]), np.asarray(utt["feats"])


def _synth(seconds: float, seed: int) -> np.ndarray:
    n = int(seconds * 16000) + 131  # never a multiple of 320
    assert n % 320
    return synth_call([("angry", seconds / 2 + 0.1), ("sad", seconds / 2 + 0.1)], seed=seed)[:n]


def _check(model, audio, *, segment_s=60.0):
    eng = model.engine(max_seconds=62)
    frames, mean = score_files(eng, [audio, audio], segment_s=segment_s, embeddings="frames"), \
        score_files(eng, [audio], segment_s=segment_s, embeddings=True)[0]
    probs, feats, utt_feat = _funasr(model, audio)
    for r in (*frames, mean):
        assert isinstance(r, Result), r
        assert r.logits.shape == (n_frames(len(audio)), model.n_labels) == (len(feats), model.n_labels)
        np.testing.assert_allclose(r.probs, probs, atol=TOL)
    np.testing.assert_allclose(frames[0].embedding, feats, atol=TOL)
    np.testing.assert_allclose(frames[1].embedding, feats, atol=TOL)
    np.testing.assert_allclose(mean.embedding, utt_feat, atol=TOL)
    w, b = model.module.proj.weight.detach().numpy(), model.module.proj.bias.detach().numpy()
    np.testing.assert_allclose(frames[0].logits, feats @ w.T + b, atol=TOL)
    return frames[0]


@pytest.mark.parametrize("seconds,seed", [(0.5, 1), (1.7, 2), (4.3, 3), (12.9, 4), (30.0, 5)])
def test_synthetic_speech_equals_funasr(bundled_model, seconds, seed):
    _check(bundled_model, _synth(seconds, seed))


@pytest.mark.parametrize("entry", sample_manifest(), ids=lambda e: e["file"])
def test_bundled_samples_equal_funasr(bundled_model, entry):
    audio = read_wav_mono(entry["path"])[:-37]  # not a multiple of 320 samples
    _check(bundled_model, audio)


LONG_BASE = full_only("(17 s of CPU) the demo shape covers long inputs, tests/models/test_engine.py the base shape")


@pytest.mark.parametrize("seconds", [0.5, pytest.param(7.3, marks=LONG_BASE)])
def test_base_shape_equals_funasr(base_model, seconds):
    _check(base_model, _synth(seconds, 9))


def test_stream_framing_would_differ(bundled_model):
    """The trap the whole-file path avoids: trim + 80-sample pad changes a 1 s window's answer."""
    audio = _synth(1.0, 11)[:16000]
    framed = bundled_model.engine().infer_batch([Window("w", audio, len(audio))])[0]
    whole = score_files(bundled_model.engine(max_seconds=62), [audio])[0]
    probs, _, _ = _funasr(bundled_model, audio)
    assert framed.logits.shape[0] == 50 and whole.logits.shape[0] == 49
    assert np.abs(framed.probs - probs).max() > 10 * TOL
    np.testing.assert_allclose(whole.probs, probs, atol=TOL)


def test_long_files_are_scored_in_segments_on_the_file_frame_grid(bundled_model):
    audio = _synth(5.0, 12)  # segments of 2 s: [0, 2.005), [2, 4.005), [4, 5.008) s
    res = score_files(bundled_model.engine(max_seconds=62), [audio], segment_s=2.0, embeddings="frames")[0]
    assert isinstance(res, Result) and res.logits.shape[0] == n_frames(len(audio))
    bounds = segment_bounds(len(audio), 32000)
    assert bounds == [(0, 32080), (32000, 64080), (64000, len(audio))]
    for s, e in bounds:  # every segment is FunASR's answer for that segment, frames in place
        _, feats, _ = _funasr(bundled_model, audio[s:e])
        np.testing.assert_allclose(res.embedding[s // 320 : s // 320 + len(feats)], feats, atol=TOL)
    np.testing.assert_allclose(res.probs, softmax(res.logits.mean(0)), atol=1e-6)


@pytest.mark.parametrize("n", [400, 719, 32000, 32079, 32080, 32399, 32400, 48000, 48399, 48400, 96001, 100_000])
def test_segments_cover_every_frame_once(n):
    bounds = segment_bounds(n, 32000)
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    firsts = [s // 320 for s, _ in bounds]
    counts = [n_frames(e - s) for s, e in bounds]
    assert all(c > 0 for c in counts)
    assert [f + c for f, c in zip(firsts, counts)][:-1] == firsts[1:]  # contiguous, no overlap
    assert sum(counts) == n_frames(n)
    assert all(e - s >= 16000 for s, e in bounds[1:])  # a short tail joined the segment before it


def test_segment_bounds_rejects_off_grid_segments():
    with pytest.raises(ValueError):
        segment_bounds(1000, 321)


def test_errors_are_per_file(bundled_model):
    eng = bundled_model.engine(max_seconds=62)
    nan = _synth(1.0, 13)
    nan[5] = np.nan
    out = score_files(eng, [np.zeros(399, np.float32), nan, _synth(1.0, 14)])
    assert [r.code if isinstance(r, ItemError) else "ok" for r in out] == ["too_short", "non_finite", "ok"]
    with pytest.raises(ValueError):  # the engine cannot hold a segment
        score_files(bundled_model.engine(max_seconds=5), [nan], segment_s=60)


def test_unuse_classes_are_masked(tmp_path, demo_dir):
    d = tmp_path / "unuse"
    shutil.copytree(demo_dir, d)
    toks = (d / "tokens.txt").read_text(encoding="utf-8").split()
    toks[2] = "unuse_2"
    (d / "tokens.txt").write_text("\n".join(toks) + "\n", encoding="utf-8")
    m = load_model(str(d), device="cpu")
    audio = _synth(2.1, 15)
    one, seg = (score_files(m.engine(max_seconds=62), [audio], segment_s=s)[0] for s in (60, 1.0))
    probs, _, _ = _funasr(m, audio)  # FunASR drops unuse labels
    for r in (one, seg):
        assert r.probs[2] == 0.0
    np.testing.assert_allclose(np.delete(one.probs, 2), probs, atol=TOL)
