"""The scenarios of models/quality/augment.py: SNR, telephone band, determinism, quiet unchanged."""
from __future__ import annotations

import numpy as np
import pytest

from emowatch.models.quality.augment import (
    SCENARIOS,
    augment,
    mix_at_snr,
    office_noise,
    room_impulse,
    scenario_rng,
)
from emowatch.models.quality.errors import QualityError
from emowatch.models.synth import synth_clip
from emowatch.topics.model_io import SAMPLE_RATE


def _clip(cls: str = "angry", seconds: float = 2.0, seed: int = 1) -> np.ndarray:
    return synth_clip(cls, seconds, np.random.default_rng(seed))


def _snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    c = clean.astype(np.float64)
    return float(10 * np.log10(np.mean(c ** 2) / np.mean((noisy.astype(np.float64) - c) ** 2)))


def _share_above(x: np.ndarray, hz: float) -> float:
    power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    return float(power[np.fft.rfftfreq(len(x), 1.0 / SAMPLE_RATE) > hz].sum() / power.sum())


@pytest.mark.parametrize("cls", ["angry", "neutral", "sad", "unknown"])
@pytest.mark.parametrize("snr", [0.0, 10.0, 20.0])
def test_office_noise_is_mixed_at_the_asked_snr(cls, snr):
    clean = _clip(cls)
    noisy = augment(clean, "office", np.random.default_rng(3), snr_db=snr)
    assert noisy.dtype == np.float32 and noisy.shape == clean.shape
    assert abs(_snr_db(clean, noisy) - snr) < 0.5


def test_office_noise_is_babble_pink_and_keyboard_at_unit_rms():
    n = 2 * SAMPLE_RATE
    noise = office_noise(n, np.random.default_rng(0))
    assert noise.shape == (n,) and np.sqrt(np.mean(noise ** 2)) == pytest.approx(1.0, rel=1e-6)
    assert np.std(noise[: n // 2]) > 0 and np.std(noise[n // 2:]) > 0  # noise over the whole clip


@pytest.mark.parametrize("source", ["angry", "white"])
def test_phone_keeps_little_energy_above_4_khz(source):
    x = _clip("angry") if source == "angry" else (np.random.default_rng(5).standard_normal(2 * SAMPLE_RATE) * 0.1
                                                    ).astype(np.float32)
    y = augment(x, "phone", np.random.default_rng(4))
    assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
    assert _share_above(y, 4000.0) < 0.05 * _share_above(x, 4000.0)  # > 13 dB less (measured: 26-29 dB)
    assert np.max(np.abs(y)) == pytest.approx(np.max(np.abs(x)), rel=1e-5)  # the input's peak level


def test_room_impulse_decays_by_rt60():
    rir = room_impulse(np.random.default_rng(0), rt60_s=0.4)
    assert len(rir) == int(0.4 * SAMPLE_RATE) and rir[0] == 1.0
    tail = rir[1:] ** 2
    early, late = tail[: len(tail) // 10].sum(), tail[-len(tail) // 10:].sum()
    assert 10 * np.log10(early / late) > 40  # roughly 60 dB over the response, ~54 dB between its ends
    with pytest.raises(QualityError):
        room_impulse(np.random.default_rng(0), rt60_s=0.0)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_scenario_is_deterministic_for_a_seed(scenario):
    x = _clip("neutral")
    a = augment(x, scenario, scenario_rng(7, "neutral_000.wav", scenario))
    b = augment(x, scenario, scenario_rng(7, "neutral_000.wav", scenario))
    assert np.array_equal(a, b)
    if scenario != "quiet":
        assert not np.array_equal(a, augment(x, scenario, scenario_rng(8, "neutral_000.wav", scenario)))
        assert not np.array_equal(a, augment(x, scenario, scenario_rng(7, "neutral_001.wav", scenario)))


def test_quiet_is_the_clip_unchanged():
    x = _clip("sad")
    y = augment(x, "quiet", np.random.default_rng(0))
    assert np.array_equal(x, y) and y is not x


def test_unknown_scenario_and_silence():
    with pytest.raises(QualityError, match="unknown scenario"):
        augment(_clip(), "car", np.random.default_rng(0))
    silent = np.zeros(SAMPLE_RATE, dtype=np.float32)
    assert np.array_equal(augment(silent, "phone", np.random.default_rng(0)), silent)
    assert np.array_equal(mix_at_snr(silent, np.ones(SAMPLE_RATE), 10.0), silent)
