"""Audio payload handling: PCM decoding, channel split, resampling to 16 kHz. Pure (numpy/scipy)."""
from __future__ import annotations

from dataclasses import dataclass
from math import gcd

import numpy as np

from emowatch.topics.errors import DeadLetterError
from emowatch.topics.model_io import SAMPLE_RATE

SUPPORTED_RATES = (8_000, 11_025, SAMPLE_RATE, 22_050, 24_000, 32_000, 44_100, 48_000)
_DTYPES = {"PCM_S16LE": np.dtype("<i2"), "PCM_F32LE": np.dtype("<f4")}


class AudioError(DeadLetterError, ValueError):
    """An AudioChunk that cannot be handled (dead-lettered at stage DECODE); ``code`` is a stable
    machine-readable reason (``unknown_encoding``, ``empty``, ``empty_call_id``, ...), ``reason`` the explanation."""

    def __init__(self, code: str, reason: str):
        super().__init__("DECODE", reason)
        self.code = code

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"

    @property
    def dead_letter_reason(self) -> str:
        return str(self)


@dataclass(frozen=True)
class Decoded:
    channels: list[np.ndarray]  # float32 mono signals at SAMPLE_RATE, one per channel
    duration_ms: int


def check_format(encoding: str, sample_rate: int, channels: int) -> np.dtype:
    """The sample dtype of ``encoding`` (``PCM_S16LE``/``PCM_F32LE``); :class:`AudioError` ``unknown_encoding``,
    ``unsupported_rate`` or ``unsupported_channels`` otherwise (the gateway checks uploads with it too)."""
    dtype = _DTYPES.get(encoding)
    if dtype is None:
        raise AudioError("unknown_encoding", f"encoding {encoding!r} is not one of {sorted(_DTYPES)}")
    if sample_rate not in SUPPORTED_RATES:
        raise AudioError("unsupported_rate", f"sample_rate {sample_rate} is not one of {SUPPORTED_RATES}")
    if channels not in (1, 2):
        raise AudioError("unsupported_channels", f"channels={channels}; only mono or stereo is supported")
    return dtype


def decode_pcm(audio: bytes, *, encoding: str, sample_rate: int, channels: int, max_seconds: float) -> Decoded:
    """Decode interleaved little-endian PCM into float32 channels resampled to 16 kHz.

    Raises :class:`AudioError` for an unknown encoding or rate, empty audio, a
    byte count that is not a whole number of frames, NaN/inf samples, or audio
    longer than ``max_seconds``.
    """
    dtype = check_format(encoding, sample_rate, channels)
    if not audio:
        raise AudioError("empty", "audio is empty")
    frame_bytes = dtype.itemsize * channels
    if len(audio) % frame_bytes:
        raise AudioError("truncated", f"{len(audio)} bytes is not a whole number of {frame_bytes}-byte frames")
    n = len(audio) // frame_bytes
    if n / sample_rate > max_seconds:
        raise AudioError("too_long", f"chunk is {n / sample_rate:.2f}s, longer than the maximum {max_seconds}s")
    samples = np.frombuffer(audio, dtype=dtype).reshape(n, channels)
    if dtype.kind == "i":
        data = samples.astype(np.float32) / 32768.0
    else:
        data = samples.astype(np.float32)
        if not np.isfinite(data).all():
            raise AudioError("non_finite", "audio contains NaN or infinite samples")
    out = [resample(np.ascontiguousarray(data[:, c]), sample_rate) for c in range(channels)]
    return Decoded(out, int(round(1000 * n / sample_rate)))


def resample(x: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling to ``target`` Hz (identity when rates match)."""
    if rate == target:
        return x.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    g = gcd(rate, target)
    return resample_poly(x, target // g, rate // g).astype(np.float32)


def encode_pcm_s16le(x: np.ndarray) -> bytes:
    """float32 [-1, 1] mono/interleaved samples -> PCM_S16LE bytes (used by producers and tests)."""
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
