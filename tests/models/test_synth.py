"""Synthetic speech generator and the bundled sample calls."""

from __future__ import annotations

import json
import wave

import numpy as np
import pytest

from emowatch.models.samples import SAMPLES, write_samples
from emowatch.models.synth import CLASSES, synth_call, synth_clip, wav_bytes
from emowatch.streams.audio.chunking import read_wav_mono as read_wav
from emowatch.streams.resources import sample_manifest, samples_dir
from emowatch.topics.model_io import SAMPLE_RATE as SR

SAMPLES_DIR = samples_dir()


def test_bundled_samples_regenerate_bit_for_bit(tmp_path):
    manifest = write_samples(tmp_path)
    for spec in SAMPLES:
        assert (tmp_path / spec.file).read_bytes() == (SAMPLES_DIR / spec.file).read_bytes(), spec.file
    assert (tmp_path / "manifest.json").read_bytes() == (SAMPLES_DIR / "manifest.json").read_bytes()
    assert [e["file"] for e in manifest] == [s.file for s in SAMPLES]


def test_manifest_and_wav_format():
    entries = sample_manifest()
    assert {e["expected_mood"] for e in entries} >= {"angry", "neutral", "sad"}
    for e in entries:
        assert set(e) >= {"call_id", "file", "business_line", "role", "expected_mood", "segments", "path"}
        with wave.open(e["path"], "rb") as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, SR)
            secs = w.getnframes() / SR
        assert 5.0 <= secs <= 15.0 and secs == pytest.approx(e["duration_s"])
        assert e["segments"][-1]["end_s"] == pytest.approx(secs)
    assert len({e["call_id"] for e in entries}) == len(entries)
    json.loads((SAMPLES_DIR / "manifest.json").read_text(encoding="utf-8"))


def test_seeded_and_exact_length():
    a = synth_call([("neutral", 1.5), ("angry", 1.0)], seed=7)
    b = synth_call([("neutral", 1.5), ("angry", 1.0)], seed=7)
    c = synth_call([("neutral", 1.5), ("angry", 1.0)], seed=8)
    assert a.dtype == np.float32 and len(a) == int(2.5 * SR)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert wav_bytes(a) == wav_bytes(b)


def test_wav_round_trip(tmp_path):
    x = synth_clip("sad", 0.5, np.random.default_rng(0))
    p = tmp_path / "x.wav"
    p.write_bytes(wav_bytes(x))
    np.testing.assert_allclose(read_wav(p), x, atol=1.0 / 32767)


def _pitch(x: np.ndarray) -> float:
    """Median autocorrelation pitch over voiced 64 ms frames."""
    f0s = []
    for i in range(0, len(x) - 1024, 512):
        fr = x[i : i + 1024] - x[i : i + 1024].mean()
        if np.sqrt((fr**2).mean()) < 0.3 * np.sqrt((x**2).mean()):
            continue
        ac = np.correlate(fr, fr, "full")[1023:]
        lo, hi = SR // 400, SR // 60
        f0s.append(SR / (lo + int(np.argmax(ac[lo:hi]))))
    return float(np.median(f0s))


def _centroid(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return float((spec * f).sum() / spec.sum())


def test_classes_differ_in_pitch_and_brightness():
    rng = np.random.default_rng(0)
    clips = {c: np.concatenate([synth_clip(c, 2.0, rng) for _ in range(3)]) for c in CLASSES}
    assert _pitch(clips["angry"]) > 1.5 * _pitch(clips["neutral"])
    assert _pitch(clips["neutral"]) > 1.2 * _pitch(clips["sad"])
    assert _centroid(clips["angry"]) > _centroid(clips["neutral"]) > _centroid(clips["sad"])
    peak = {c: np.abs(v).max() for c, v in clips.items()}
    assert peak["angry"] > peak["neutral"] > peak["sad"] > peak["unknown"]
