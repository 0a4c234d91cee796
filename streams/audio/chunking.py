"""Cut a call's audio into AudioChunk records (what a telephony gateway would publish). Pure."""
from __future__ import annotations

import wave
from pathlib import Path
from typing import Iterator

import numpy as np

from emowatch.streams.audio.codec import encode_pcm_s16le


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """(samples float32 of shape (n, channels), sample_rate) from a 16-bit PCM WAV."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV is supported (got {8 * w.getsampwidth()}-bit)")
        rate, ch = w.getframerate(), w.getnchannels()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    return data.reshape(-1, ch), rate


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
