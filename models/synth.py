"""Seeded synthetic "speech-like" audio with class-dependent prosody (numpy only).

Used to train the pipeline-demo checkpoint (:mod:`emowatch.models.train`) and to write
the bundled sample calls in ``infra/samples/``.  It is not speech: a harmonic voice
source with a pitch contour, shaped by vowel-like formant resonances, cut into
syllables by an amplitude envelope, grouped into phrases separated by pauses, plus
consonant-like noise bursts, breath noise and a room noise floor.

FunASR layer-normalises every window, so loudness alone is invisible to the model; the
styles therefore differ in pitch level and movement, speaking rate, pauses and spectral
tilt as well:

=========  ===========  ================  =============  ===========  =========
style      f0 (Hz)      contour           syllables/s    tilt dB/oct  level
=========  ===========  ================  =============  ===========  =========
angry      210-290      rising, jumpy     6-7.5          -3 (bright)  loud
neutral    120-160      gently falling    3.8-4.8        -9           medium
sad        85-110       falling, flat     2.2-3          -14 (dark)   quiet
unknown    --           noise / hum / near silence, no syllables
=========  ===========  ================  =============  ===========  =========

Everything is driven by one ``numpy.random.Generator`` so output is bit-for-bit
reproducible for a given seed on a given platform.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emowatch.topics.model_io import SAMPLE_RATE

__all__ = ["Style", "STYLES", "CLASSES", "synth_speech", "synth_noise", "synth_clip",
           "synth_call", "to_int16", "wav_bytes", "write_wav"]


@dataclass(frozen=True)
class Style:
    """Prosody of one synthetic speaking style."""

    f0: tuple[float, float]  # phrase base pitch range (Hz)
    accent_st: float  # per-syllable pitch jumps (semitones, +-)
    slope_st: float  # phrase pitch slope (semitones / s; + rising)
    glide_st: float  # within-syllable glide (semitones; + rising)
    rate: tuple[float, float]  # syllables per second
    tilt_db_oct: float  # spectral tilt of the voice source
    level: float  # peak amplitude of the segment
    pause: tuple[float, float]  # pause between phrases (s)
    phrase: tuple[int, int]  # syllables per phrase
    breath: float  # aspiration noise relative to voice
    jitter: float  # random f0 wobble (fraction)


STYLES: dict[str, Style] = {
    "angry": Style((210, 290), 4.0, 5.0, 2.5, (6.0, 7.5), -3.0, 0.85, (0.06, 0.2), (7, 14), 0.06, 0.025),
    "neutral": Style((120, 160), 1.5, -1.5, 0.0, (3.8, 4.8), -9.0, 0.40, (0.25, 0.5), (5, 9), 0.08, 0.01),
    "sad": Style((85, 110), 0.7, -3.0, -1.5, (2.2, 3.0), -14.0, 0.18, (0.45, 0.9), (3, 6), 0.2, 0.008),
}
#: classes the generator can produce (``unknown`` = no speech: noise, hum, near silence)
CLASSES: tuple[str, ...] = ("angry", "neutral", "sad", "unknown")

_VOWELS = np.array([  # F1, F2, F3 (Hz)
    (730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410),
], dtype=np.float64)
_BANDWIDTHS = np.array([90.0, 110.0, 160.0])
_FMAX = 7000.0


def _resonance(f: np.ndarray, formants: np.ndarray) -> np.ndarray:
    """Magnitude of a cascade of 2nd-order resonators at frequencies ``f``."""
    h = np.ones_like(f)
    for F, B in zip(formants, _BANDWIDTHS):
        r = f / F
        h /= np.sqrt((1.0 - r * r) ** 2 + (B * f / (F * F)) ** 2)
    return h


def _smooth_noise(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    x = rng.standard_normal(n + width)
    k = np.hanning(width + 2)[1:-1]
    y = np.convolve(x, k / k.sum(), mode="valid")[:n]
    return y / (np.std(y) + 1e-9)


def _noise_like(rng: np.random.Generator, n: int, tilt_db_oct: float) -> np.ndarray:
    """Unit-scale noise whose brightness follows the style's spectral tilt."""
    if tilt_db_oct > -6.0:  # bright: differentiated (high-passed) noise
        return np.diff(rng.standard_normal(n + 1)) / np.sqrt(2.0)
    if tilt_db_oct > -12.0:
        return rng.standard_normal(n)
    return _smooth_noise(rng, n, 6) * 0.5  # dark: low-passed


def _syllable(rng: np.random.Generator, st: Style, f0_start: float, dur: float) -> np.ndarray:
    n = max(int(dur * SAMPLE_RATE), 64)
    out = np.zeros(n)
    onset = 0
    if rng.random() < 0.6:  # consonant-like noise burst
        onset = min(int(rng.uniform(0.02, 0.06) * SAMPLE_RATE), n // 3)
        out[:onset] += 0.25 * _noise_like(rng, onset, st.tilt_db_oct) * np.hanning(onset)
    m = n - onset
    t = np.arange(m) / SAMPLE_RATE
    glide = st.glide_st * (t / max(t[-1], 1e-3))
    f0 = f0_start * 2.0 ** (glide / 12.0)
    f0 *= 1.0 + st.jitter * _smooth_noise(rng, m, 160)
    phase = 2.0 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    formants = _VOWELS[rng.integers(len(_VOWELS))] * rng.uniform(0.93, 1.07, 3)
    # harmonic amplitudes from the source tilt x formant envelope at the mean pitch;
    # harmonics 60 dB below the strongest one are dropped (speed)
    k = np.arange(1, int(_FMAX // f0.max()) + 1, dtype=np.float64)
    fk = k * float(f0.mean())
    amp = 10.0 ** (st.tilt_db_oct * np.log2(np.maximum(fk, 50.0) / 100.0) / 20.0)
    amp *= _resonance(fk, formants)
    keep = amp > 1e-3 * amp.max()
    voice = amp[keep] @ np.sin(k[keep, None] * phase[None, :])
    voice /= np.max(np.abs(voice)) + 1e-9
    att, rel = max(int(0.15 * m), 8), max(int(0.3 * m), 8)
    env = np.ones(m)
    env[:att] = np.sin(0.5 * np.pi * np.arange(att) / att) ** 2
    env[-rel:] = np.cos(0.5 * np.pi * np.arange(rel) / rel) ** 2
    breath = st.breath * _noise_like(rng, m, st.tilt_db_oct)
    out[onset:] += (voice + breath) * env
    return out


def synth_speech(style: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Speech-like float64 audio of one style, exactly ``seconds`` long, peak = style level."""
    st = STYLES[style]
    n_total = int(round(seconds * SAMPLE_RATE))
    parts: list[np.ndarray] = []
    n = 0
    speaker = rng.uniform(0.93, 1.07)
    while n < n_total:
        base = rng.uniform(*st.f0) * speaker
        rate = rng.uniform(*st.rate)
        t_phrase = 0.0
        for _ in range(int(rng.integers(st.phrase[0], st.phrase[1] + 1))):
            dur = rng.uniform(0.7, 1.3) / rate
            accent = rng.uniform(-st.accent_st, st.accent_st)
            f0 = base * 2.0 ** ((st.slope_st * t_phrase + accent) / 12.0)
            syl = _syllable(rng, st, float(np.clip(f0, 60.0, 500.0)), dur)
            parts.append(syl)
            n += len(syl)
            t_phrase += dur
        gap = np.zeros(int(rng.uniform(*st.pause) * SAMPLE_RATE))
        parts.append(gap)
        n += len(gap)
    x = np.concatenate(parts)[:n_total]
    return st.level * x / (np.max(np.abs(x)) + 1e-9)


def synth_noise(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Non-speech audio for the ``unknown`` class: coloured noise, mains hum or near silence."""
    n = int(round(seconds * SAMPLE_RATE))
    kind = int(rng.integers(3))
    white = rng.standard_normal(n)
    if kind == 0:  # coloured noise (1/f^alpha spectrum) with a slow level drift
        alpha = rng.uniform(0.0, 2.0)
        spec = np.fft.rfft(white)
        f = np.maximum(np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE), 20.0)
        x = np.fft.irfft(spec * f ** (-alpha / 2.0), n)
        x *= 1.0 + 0.3 * _smooth_noise(rng, n, 4000)
        level = rng.uniform(0.02, 0.3)
    elif kind == 1:  # mains hum + hiss
        t = np.arange(n) / SAMPLE_RATE
        hz = 50.0 if rng.random() < 0.5 else 60.0
        x = sum(np.sin(2 * np.pi * hz * h * t + rng.uniform(0, 6.28)) / h for h in (1, 2, 3, 5))
        x = x + rng.uniform(0.05, 0.5) * white
        level = rng.uniform(0.01, 0.1)
    else:  # near silence: faint hiss
        x = white
        level = rng.uniform(0.001, 0.01)
    return level * x / (np.max(np.abs(x)) + 1e-9)


def synth_clip(cls: str, seconds: float, rng: np.random.Generator, *, floor: float = 0.002) -> np.ndarray:
    """A float32 clip of class ``cls`` (see :data:`CLASSES`) with a room noise floor."""
    if cls == "unknown":
        x = synth_noise(seconds, rng)
    else:
        lead = rng.uniform(0.0, 0.5)  # start anywhere in the flow, not always at a syllable
        x = synth_speech(cls, seconds + lead, rng)[int(lead * SAMPLE_RATE):][: int(round(seconds * SAMPLE_RATE))]
    x = x + floor * rng.standard_normal(len(x))
    return x.astype(np.float32)


def synth_call(segments: Sequence[tuple[str, float]], seed: int) -> np.ndarray:
    """A call made of consecutive ``(class, seconds)`` segments, float32, seeded."""
    rng = np.random.default_rng(seed)
    return np.concatenate([synth_clip(c, s, rng) for c, s in segments]).astype(np.float32)


def to_int16(x: np.ndarray) -> np.ndarray:
    """Float [-1, 1] -> int16 PCM (rounded, clipped)."""
    return np.clip(np.round(np.asarray(x, np.float64) * 32767.0), -32768, 32767).astype("<i2")


def wav_bytes(x: np.ndarray) -> bytes:
    """16 kHz mono 16-bit WAV file bytes (stdlib ``wave``: no metadata, deterministic)."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(to_int16(x).tobytes())
    return buf.getvalue()


def write_wav(path: str | Path, x: np.ndarray) -> Path:
    """Write ``x`` as a 16 kHz mono 16-bit WAV file."""
    p = Path(path)
    p.write_bytes(wav_bytes(x))
    return p
