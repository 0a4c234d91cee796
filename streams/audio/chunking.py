"""Read WAV files and cut a call's audio into AudioChunk records (what a telephony gateway would publish). Pure.

:func:`read_wav` is the one WAV reader of the project (the sample calls, the benchmarks and
the model evaluation read through it); :mod:`emowatch.models.synth` writes them.
"""
from __future__ import annotations

import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from emowatch.streams.audio.codec import encode_pcm_s16le
from emowatch.topics.model_io import SAMPLE_RATE


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """(samples float32 of shape (n, channels), sample_rate) from a 16-bit PCM WAV."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV is supported (got {8 * w.getsampwidth()}-bit)")
        rate, ch = w.getframerate(), w.getnchannels()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    return data.reshape(-1, ch), rate


def read_wav_mono(path: str | Path) -> np.ndarray:
    """A mono 16-bit WAV at the model rate (``SAMPLE_RATE``) as float32 in [-1, 1], shape (n,).

    ValueError for any other rate or channel count (no resampling or downmix here)."""
    samples, rate = read_wav(Path(path))
    if rate != SAMPLE_RATE or samples.shape[1] != 1:
        raise ValueError(f"{path}: expected {SAMPLE_RATE // 1000} kHz mono 16-bit PCM, "
                         f"got {rate} Hz x {samples.shape[1]} channels")
    return samples[:, 0]


def chunk_records(samples: np.ndarray, rate: int, *, call_id: str, role: str = "MIXED", business_line: str = "default",
                  start_time_ms: int, chunk_ms: int = 1000, attributes: dict[str, str] | None = None
                  ) -> Iterator[dict]:
    """AudioChunk records of ``chunk_ms`` (the last one shorter, flagged end_of_call)."""
    if samples.ndim == 1:
        samples = samples[:, None]
    step = rate * chunk_ms // 1000
    n = len(samples)
    starts = list(range(0, n, step))
    for seq, s in enumerate(starts):
        part = samples[s:s + step]
        yield {
            "call_id": call_id, "role": role, "seq": seq, "start_ms": s * 1000 // rate,
            "event_time": start_time_ms + s * 1000 // rate, "sample_rate": rate, "encoding": "PCM_S16LE",
            "channels": samples.shape[1], "audio": encode_pcm_s16le(part.reshape(-1)),
            "business_line": business_line, "end_of_call": seq == len(starts) - 1,
            "attributes": dict(attributes or {}),
        }
