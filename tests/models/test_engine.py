"""Batched engine == FunASR's single-utterance inference (fp32, CPU)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emowatch.models.engine import ItemError, Result, Window, model_input, n_frames
from emowatch.models.loader import load_model

TOL = 1e-4


def _proj(model, feats: np.ndarray) -> np.ndarray:
    w = model.module.proj.weight.detach().numpy()
    b = model.module.proj.bias.detach().numpy()
    return feats @ w.T + b


def _check_single(model, funasr_scores, audio, emit=None):
    emit = len(audio) if emit is None else emit
    res = model.engine().infer_batch([Window("k", audio, emit)], embeddings=True)[0]
    assert isinstance(res, Result), res
    probs, feats = funasr_scores(model, audio, emit)
    assert res.logits.shape == (emit // 320, model.n_labels) and res.logits.dtype == np.float32
    if emit == len(audio):  # FunASR pools over the whole input
        np.testing.assert_allclose(res.probs, probs, atol=TOL)
    frames = feats[-(emit // 320):]
    np.testing.assert_allclose(res.logits, _proj(model, frames), atol=TOL)
    np.testing.assert_allclose(res.embedding, frames.mean(0), atol=TOL)
    assert abs(float(res.probs.sum()) - 1.0) < 1e-5
    return res


@pytest.mark.parametrize("n", [16000, 17003, 40000])
def test_single_window_matches_funasr(demo_model, funasr_scores, noise, n):
    _check_single(demo_model, funasr_scores, noise(n, n))


def test_one_second_chunk_gives_exactly_50_frames(demo_model, noise):
    eng = demo_model.engine()
    out = eng.infer_batch([
        Window("bare", noise(1, 16000), 16000),
        Window("ctx2s", noise(2, 48000), 16000),
        Window("odd_ctx", noise(3, 16000 + 12345), 16000),
    ])
    assert [r.logits.shape for r in out] == [(50, 9)] * 3


def test_context_window_frames_are_the_trailing_frames(demo_model, funasr_scores, noise):
    audio = noise(4, 16000 * 3 + 111)  # odd context: 111 samples trimmed from the left
    res = _check_single(demo_model, funasr_scores, audio, emit=16000)
    _, feats = funasr_scores(demo_model, audio, 16000)
    assert feats.shape[0] == n_frames(len(model_input(audio, 16000))) == 150
    # chunk probs are softmax(mean of the chunk's own frame logits)
    lg = res.logits.mean(0)
    np.testing.assert_allclose(res.probs, np.exp(lg) / np.exp(lg).sum(), atol=1e-6)


def _mixed_windows(noise):
    return [
        Window("a", noise(10, 16000), 16000),
        Window("b", noise(11, 48000), 16000),
        Window("c", noise(12, 16000 + 7000), 16000 + 7000),
        Window("d", noise(13, 48000), 16000),
        Window("e", noise(14, 30001), 8000),
        Window("f", noise(15, 640), 320),
    ]


def _assert_batch_equals_singles(model, windows, **opts):
    eng = model.engine(**opts)
    batch = eng.infer_batch(windows, embeddings=True)
    assert [r.key for r in batch] == [w.key for w in windows]
    for w, b in zip(windows, batch):
        s = eng.infer_batch([w], embeddings=True)[0]
        assert isinstance(b, Result) and isinstance(s, Result)
        np.testing.assert_allclose(b.probs, s.probs, atol=TOL)
        np.testing.assert_allclose(b.logits, s.logits, atol=TOL)
        np.testing.assert_allclose(b.embedding, s.embedding, atol=TOL)


def test_mixed_lengths_in_one_padded_pass(demo_model, noise):
    # bucket_s=10 forces every length into one padded forward pass
    eng = demo_model.engine(bucket_s=10)
    items = [eng._prepare(i, w) for i, w in enumerate(_mixed_windows(noise))]
    assert len(eng._plan(items)) == 1
    _assert_batch_equals_singles(demo_model, _mixed_windows(noise), bucket_s=10)


def test_mixed_lengths_default_buckets_and_small_batches(demo_model, noise):
    _assert_batch_equals_singles(demo_model, _mixed_windows(noise), max_batch=2)


def test_naive_padding_would_differ(demo_model, noise):
    """The trap the engine avoids: FunASR's positional conv sees padded frames."""
    ws = [Window("s", noise(20, 16000), 16000), Window("l", noise(21, 48000), 48000)]
    single = demo_model.engine().infer_batch(ws[:1])[0]
    xs = [F.layer_norm(torch.from_numpy(model_input(w.audio, w.emit_samples)), (len(w.audio) + 80,))
          for w in ws]
    src = torch.zeros(2, len(xs[1]))
    pm = torch.ones(2, len(xs[1]), dtype=torch.bool)
    for i, x in enumerate(xs):
        src[i, : len(x)] = x
        pm[i, : len(x)] = False
    with torch.inference_mode():
        lg = demo_model.module.proj(demo_model.module.extract_features(src, padding_mask=pm)["x"])
    naive = lg[0, :50].numpy()
    assert np.abs(naive - single.logits).max() > 1e-2  # plain padding is wrong...
    _assert_batch_equals_singles(demo_model, ws, bucket_s=10)  # ...the engine is not


def test_per_item_errors_do_not_fail_the_batch(demo_model, noise):
    eng = demo_model.engine(max_seconds=5)
    bad_nan = noise(30, 16000)
    bad_nan[100] = np.nan
    ws = [
        Window("short", noise(31, 399), 399),
        Window("no_frame", noise(32, 16000), 319),
        Window("nan", bad_nan, 16000),
        Window("ok", noise(33, 16000), 16000),
        Window("long", noise(34, 16000 * 6), 16000),
        Window("2d", np.zeros((2, 16000), np.float32), 16000),
        Window("int", np.zeros(16000, np.int16), 16000),
        Window("emit>len", noise(35, 1000), 2000),
        Window("huge", np.full(16000, 1e39, np.float64), 16000),
    ]
    out = eng.infer_batch(ws)
    codes = [r.code if isinstance(r, ItemError) else "ok" for r in out]
    assert codes == ["too_short", "too_short", "non_finite", "ok", "too_long", "bad_shape",
                     "bad_dtype", "bad_shape", "non_finite"]
    assert [r.key for r in out] == [w.key for w in ws]
    assert eng.infer_batch([]) == []


def test_silence_is_finite(demo_model):
    res = demo_model.engine().infer_batch([Window(0, np.zeros(16000, np.float32), 16000)])[0]
    assert isinstance(res, Result) and np.isfinite(res.logits).all()


def test_unuse_classes_are_masked(tmp_path, demo_dir, funasr_scores, noise):
    d = tmp_path / "unuse"
    shutil.copytree(demo_dir, d)
    toks = (d / "tokens.txt").read_text(encoding="utf-8").split()
    toks[5] = "unuse_5"
    (d / "tokens.txt").write_text("\n".join(toks) + "\n", encoding="utf-8")
    m = load_model(str(d), device="cpu")
    assert m.masked == [5] and m.labels[5] == "unuse_5"
    audio = noise(40, 20000)
    res = m.engine().infer_batch([Window(0, audio, len(audio))])[0]
    assert res.probs[5] == 0.0
    probs, _ = funasr_scores(m, audio, len(audio))  # FunASR drops unuse labels
    np.testing.assert_allclose(np.delete(res.probs, 5), probs, atol=TOL)


@pytest.mark.parametrize("n", [16000, 40000])
def test_base_shape_single_matches_funasr(base_model, funasr_scores, noise, n):
    _check_single(base_model, funasr_scores, noise(100 + n, n))


def test_base_shape_mixed_batch(base_model, noise):
    ws = [Window("a", noise(50, 16000), 16000), Window("b", noise(51, 48000), 16000),
          Window("c", noise(52, 24000), 24000)]
    _assert_batch_equals_singles(base_model, ws, bucket_s=10)


def test_oom_splits_the_pass_and_failures_stay_per_item(demo_model, noise, monkeypatch):
    eng = demo_model.engine()
    real = eng._forward
    calls = []

    def flaky(group, embeddings):
        calls.append(len(group))
        if len(group) > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        if group[0].key == "boom":
            raise ValueError("kaput")
        return real(group, embeddings)

    monkeypatch.setattr(eng, "_forward", flaky)
    ws = [Window(k, noise(60 + i, 16000), 16000) for i, k in enumerate(["a", "boom", "c"])]
    out = eng.infer_batch(ws)
    assert calls == [3, 1, 2, 1, 1]  # halve until single windows
    assert isinstance(out[0], Result) and isinstance(out[2], Result)
    assert isinstance(out[1], ItemError) and out[1].code == "internal" and "kaput" in out[1].reason
