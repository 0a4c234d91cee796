"""Recording scenarios built from clean audio (the seed's three test conditions), seeded and deterministic.

The seed measured its model in three scenarios: A quiet recordings, B an office background (keyboard, air
conditioning), C a phone played on its loudspeaker and recorded (low quality, echo). ``augment(audio,
scenario, rng)`` turns a clean 16 kHz mono clip into each of them, so that the degradation from quiet to
phone can be measured on any labelled set:

``quiet``
    the clip unchanged.
``office``
    additive office noise mixed at ``snr_db`` (default :data:`DEFAULT_SNR_DB`, 10 dB; SNR = mean power of the
    clip over mean power of the added noise, both over the whole clip). The noise (:func:`office_noise`) is
    babble of :data:`BABBLE_TALKERS` synthetic talkers (:func:`emowatch.models.synth.synth_speech`, styles
    drawn at random, each at unit RMS and a random offset), pink noise (1/f power: air conditioning and
    room hum) and keyboard clicks (5-15 ms decaying noise bursts in typing bursts), mixed at the power shares
    of :data:`OFFICE_MIX`.
``phone``
    the far end's voice through a telephone channel, played by a phone loudspeaker into a room and
    recorded there (:func:`phone`): (1) band-limited to :data:`PHONE_BAND_HZ` (300-3400 Hz, Butterworth of
    order :data:`PHONE_ORDER` per edge, causal ``sosfilt``); (2) the loudspeaker as a Hammerstein model: a
    static non-linearity (peak-normalised, then soft-clipped: ``tanh(drive x) / tanh(drive)`` with ``drive``
    :data:`SPEAKER_DRIVE`) followed by the speaker's frequency response (a small phone speaker reproduces
    little outside the telephone band: the same band-pass again, which also removes most of the clipping's
    harmonics above 3.4 kHz); (3) room echo:
    convolved (``fftconvolve``, output cut to the input's length) with a seeded synthetic room impulse
    response (:func:`room_impulse`: a direct path plus an exponentially decaying Gaussian-noise tail whose
    energy falls 60 dB in ``rt60_s``, default :data:`RT60_S` 0.4 s, at a direct-to-reverberant ratio of
    ``drr_db``, default :data:`DRR_DB`); the result is scaled back to the input's peak level.

Every random draw comes from the ``numpy.random.Generator`` passed in, so a scenario is bit-for-bit
reproducible for a seed; the evaluation and the test-set writer seed one generator per item and scenario
with :func:`scenario_rng`. FunASR layer-normalises
every waveform, so the absolute level of the output does not matter to the model; only its shape does.
"""

from __future__ import annotations

import zlib

import numpy as np
from scipy.signal import butter, fftconvolve, sosfilt

from emowatch.models.quality.errors import QualityError
from emowatch.models.synth import STYLES, synth_speech
from emowatch.topics.model_io import SAMPLE_RATE

__all__ = ["BABBLE_TALKERS", "DEFAULT_SNR_DB", "DRR_DB", "OFFICE_MIX", "PHONE_BAND_HZ", "PHONE_ORDER", "RT60_S",
           "SCENARIOS", "SPEAKER_DRIVE", "augment", "check_scenarios", "mix_at_snr", "office_noise", "phone",
           "pink_noise", "room_impulse", "scenario_rng"]

SCENARIOS = ("quiet", "office", "phone")
"""The seed's scenarios, in order of increasing difficulty."""
DEFAULT_SNR_DB = 10.0
"""Clip-to-office-noise power ratio (dB) of the ``office`` scenario."""
BABBLE_TALKERS = 5
"""Synthetic talkers in the office babble."""
OFFICE_MIX = {"babble": 0.5, "pink": 0.35, "keyboard": 0.15}
"""Power shares of the office noise's components."""
PHONE_BAND_HZ = (300.0, 3400.0)
"""Telephone channel pass band (Hz)."""
PHONE_ORDER = 4
"""Butterworth order per band edge of the telephone channel."""
SPEAKER_DRIVE = 3.0
"""Loudspeaker soft-clipping drive: ``tanh(drive x) / tanh(drive)`` on the peak-normalised signal."""
RT60_S = 0.4
"""Reverberation time of the synthetic room (s): the impulse response's energy decays 60 dB in this time."""
DRR_DB = 0.0
"""Direct-to-reverberant energy ratio of the synthetic room impulse response (dB)."""
_EPS = 1e-12


def check_scenarios(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``names`` if each is a known scenario and none repeats; :class:`QualityError` otherwise."""
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise QualityError(f"unknown scenario(s) {unknown}: choose from {', '.join(SCENARIOS)}")
    if len(set(names)) != len(names) or not names:
        raise QualityError(f"scenarios must be distinct and at least one: {list(names)}")
    return tuple(names)


def scenario_rng(seed: int, key: str, scenario: str) -> np.random.Generator:
    """The generator of one item's ``scenario``: ``default_rng([seed, crc32(key), index of the scenario])``
    (``key``: the item's identity, e.g. its file name), the same wherever the item is augmented."""
    return np.random.default_rng([seed, zlib.crc32(key.encode("utf-8")), SCENARIOS.index(scenario)])


def _power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64))) if len(x) else 0.0


def _unit_rms(x: np.ndarray) -> np.ndarray:
    return x / (np.sqrt(_power(x)) + _EPS)


def mix_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``signal + g * noise`` (float64) with ``g`` such that ``power(signal) / power(g * noise)`` is ``snr_db``.
    A silent signal is returned unchanged (no SNR is defined)."""
    s = np.asarray(signal, dtype=np.float64)
    n = np.asarray(noise, dtype=np.float64)[: len(s)]
    if len(n) != len(s):
        raise QualityError(f"noise has {len(n)} samples, the signal {len(s)}")
    ps, pn = _power(s), _power(n)
    if ps <= 0.0 or pn <= 0.0:
        return s.copy()
    return s + np.sqrt(ps / (pn * 10.0 ** (snr_db / 10.0))) * n


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise with a 1/f power spectrum (20 Hz up), shaped in the frequency domain."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE), 20.0)
    return _unit_rms(np.fft.irfft(spec / np.sqrt(f), n))


def _babble(n: int, rng: np.random.Generator, talkers: int) -> np.ndarray:
    styles = sorted(STYLES)
    out = np.zeros(n)
    for _ in range(talkers):
        lead = int(rng.integers(0, SAMPLE_RATE))  # each talker starts anywhere in its flow
        voice = synth_speech(styles[int(rng.integers(len(styles)))], (n + lead) / SAMPLE_RATE, rng)[lead:lead + n]
        out[: len(voice)] += _unit_rms(voice)
    return _unit_rms(out)


def _keyboard(n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    t = 0
    while t < n:
        t += int(rng.uniform(0.3, 2.0) * SAMPLE_RATE)  # pause before a typing burst
        for _ in range(int(rng.integers(3, 15))):  # keystrokes of the burst, 5-12 per second
            if t >= n:
                break
            k = int(rng.uniform(0.005, 0.015) * SAMPLE_RATE)
            click = rng.standard_normal(k) * np.exp(-np.arange(k) / (0.2 * k)) * rng.uniform(0.5, 1.0)
            out[t:t + k] += click[: n - t]
            t += int(rng.uniform(1 / 12, 1 / 5) * SAMPLE_RATE)
    return _unit_rms(out) if _power(out) > 0 else out


def office_noise(n: int, rng: np.random.Generator, *, talkers: int = BABBLE_TALKERS) -> np.ndarray:
    """``n`` samples of unit-RMS office noise: babble + pink noise + keyboard (shares :data:`OFFICE_MIX`)."""
    parts = {"babble": _babble(n, rng, talkers), "pink": pink_noise(n, rng), "keyboard": _keyboard(n, rng)}
    return _unit_rms(sum(np.sqrt(OFFICE_MIX[k]) * parts[k] for k in OFFICE_MIX))


def room_impulse(rng: np.random.Generator, *, rt60_s: float = RT60_S, drr_db: float = DRR_DB) -> np.ndarray:
    """A synthetic room impulse response, ``rt60_s`` long: 1 at t = 0 (direct path), then after a 1-5 ms
    pre-delay a Gaussian-noise tail with amplitude ``exp(-6.908 t / rt60_s)`` (-60 dB of energy at
    ``rt60_s``), scaled to ``drr_db`` direct-to-reverberant energy ratio."""
    if rt60_s <= 0:
        raise QualityError(f"rt60_s must be > 0, not {rt60_s}")
    n = max(2, int(rt60_s * SAMPLE_RATE))
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * np.exp(-np.log(1000.0) * t / rt60_s)
    tail[: int(rng.uniform(0.001, 0.005) * SAMPLE_RATE) + 1] = 0.0
    tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / (np.sum(tail ** 2) + _EPS))
    tail[0] = 1.0
    return tail


def phone(audio: np.ndarray, rng: np.random.Generator, *, band_hz: tuple[float, float] = PHONE_BAND_HZ,
          order: int = PHONE_ORDER, drive: float = SPEAKER_DRIVE, rt60_s: float = RT60_S,
          drr_db: float = DRR_DB) -> np.ndarray:
    """A clip as heard from a phone's loudspeaker in a room (see the module's text), float64."""
    x = np.asarray(audio, dtype=np.float64)
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak <= 0.0:
        return x.copy()
    sos = butter(order, band_hz, btype="bandpass", fs=SAMPLE_RATE, output="sos")
    y = sosfilt(sos, x)
    y = sosfilt(sos, np.tanh(drive * y / (np.max(np.abs(y)) + _EPS)) / np.tanh(drive))
    y = fftconvolve(y, room_impulse(rng, rt60_s=rt60_s, drr_db=drr_db))[: len(x)]
    return y * (peak / (np.max(np.abs(y)) + _EPS))


def augment(audio: np.ndarray, scenario: str, rng: np.random.Generator, *,
            snr_db: float = DEFAULT_SNR_DB) -> np.ndarray:
    """``audio`` (clean, mono, 16 kHz) as recorded in ``scenario`` (one of :data:`SCENARIOS`), float32."""
    check_scenarios([scenario])
    x = np.asarray(audio, dtype=np.float32)
    if scenario == "quiet":
        return x.copy()
    if scenario == "office":
        return mix_at_snr(x, office_noise(len(x), rng), snr_db).astype(np.float32)
    return phone(x, rng).astype(np.float32)
