"""Embeddings of labelled audio files: each file's mean feature, as the model computes it for the whole file.

A file is scored like :func:`emowatch.models.utterance.score_files` scores it (FunASR's answer for the
waveform; files longer than ``segment_s`` in frame-aligned segments, the embedding the frame-weighted mean of the
segments'), with ``embeddings=True``: one example per file. WAV files, mono, 16-bit PCM, at any of the rates the
gateway accepts (resampled to 16 kHz). A file that cannot be read or scored stops the job with its CSV line.
"""

from __future__ import annotations

import wave
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from emowatch.models.engine import ItemError
from emowatch.models.finetune.examples import Examples
from emowatch.models.loader import EmotionModel
from emowatch.models.quality.errors import QualityError
from emowatch.models.quality.labels import LabelledItem
from emowatch.models.utterance import DEFAULT_SEGMENT_S, score_files
from emowatch.streams.audio.chunking import read_wav
from emowatch.streams.audio.codec import SUPPORTED_RATES, resample

__all__ = ["FILES_PER_PASS", "audio_examples", "read_mono"]

FILES_PER_PASS = 16  #: files handed to the engine at once (progress granularity; bounded memory)


def read_mono(path: Path, where: str) -> np.ndarray:
    """A mono WAV file as float32 16 kHz samples; :class:`QualityError` naming ``where`` otherwise."""
    try:
        samples, rate = read_wav(path)
    except (OSError, EOFError, ValueError, wave.Error) as exc:
        raise QualityError(f"{where}: cannot read {path} as a 16-bit PCM WAV file: {exc}") from None
    if samples.shape[1] != 1:
        raise QualityError(f"{where}: {path} has {samples.shape[1]} channels; label each channel as its own mono "
                           "file")
    if rate not in SUPPORTED_RATES:
        raise QualityError(f"{where}: {path} has sample rate {rate}, not one of {SUPPORTED_RATES}")
    return resample(np.ascontiguousarray(samples[:, 0]), rate)


def audio_examples(model: EmotionModel, items: Sequence[LabelledItem], *, segment_s: float = DEFAULT_SEGMENT_S,
                   progress: Callable[[int, int], None] | None = None) -> Examples:
    """One example per item (each must have ``audio``): the file's embedding, its label, its CSV line as group.

    ``progress(done, total)`` after each pass of :data:`FILES_PER_PASS` files."""
    missing = [it for it in items if it.audio is None]
    if missing:
        raise QualityError(f"line {missing[0].line}: no audio file (rows with a call_id need --from-history)")
    engine = model.engine(max_seconds=segment_s + 2.0)
    rows: list[np.ndarray] = []
    for start in range(0, len(items), FILES_PER_PASS):
        batch = items[start:start + FILES_PER_PASS]
        waves = [read_mono(it.audio, f"line {it.line}") for it in batch]  # type: ignore[arg-type]
        results = score_files(engine, waves, segment_s=segment_s, embeddings=True)
        for it, res in zip(batch, results):
            if isinstance(res, ItemError):  # too short, non-finite, ...
                raise QualityError(f"line {it.line}: {it.audio} cannot be scored: {res.code}: {res.reason}")
            rows.append(np.asarray(res.embedding, dtype=np.float32))
        if progress is not None:
            progress(min(start + FILES_PER_PASS, len(items)), len(items))
    return Examples(np.stack(rows) if rows else np.zeros((0, 0), np.float32), [it.label for it in items],
                    np.array([it.line for it in items], dtype=np.int64), [it.key for it in items])
