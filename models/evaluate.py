"""Score the bundled sample calls the way the streaming pipeline does (for tests and docs).

``evaluate_samples(model)`` runs every WAV in ``infra/samples`` through the engine twice:
once as one utterance (the whole file) and once as 1 s chunks each with up to 2 s of left
context, and reports the expected class's probability for both.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from emowatch.models.engine import Result, Window
from emowatch.models.loader import EmotionModel, load_model
from emowatch.streams.audio.chunking import read_wav_mono
from emowatch.streams.resources import sample_manifest
from emowatch.topics.model_io import SAMPLE_RATE, SAMPLES_PER_FRAME

__all__ = ["stream_windows", "evaluate_samples", "format_results"]


def stream_windows(audio: np.ndarray, *, chunk_s: float = 1.0, context_s: float = 2.0,
                   sr: int = SAMPLE_RATE, key_prefix: str = "") -> list[Window]:
    """Cut ``audio`` into chunks, each a :class:`Window` with up to ``context_s`` left context.

    A trailing partial chunk shorter than one frame is dropped.
    """
    chunk, ctx = int(chunk_s * sr), int(context_s * sr)
    out = []
    for i, start in enumerate(range(0, len(audio), chunk)):
        end = min(start + chunk, len(audio))
        if end - start < SAMPLES_PER_FRAME:
            break
        lo = max(0, start - ctx)
        out.append(Window(f"{key_prefix}{i}", audio[lo:end], end - start))
    return out


def evaluate_samples(model: str | EmotionModel, samples_dir: str | None = None) -> list[dict[str, Any]]:
    """Per sample: utterance probs over the whole file and per-chunk streaming probs."""
    m = load_model(model, device="cpu", precision="fp32") if isinstance(model, str) else model
    eng = m.engine(max_seconds=600)
    rows = []
    for e in sample_manifest(samples_dir):
        audio = read_wav_mono(e["path"])
        want = m.labels.index(e["expected_mood"])
        utt = eng.infer_batch([Window("utt", audio, len(audio))])[0]
        chunks = eng.infer_batch(stream_windows(audio))
        assert isinstance(utt, Result) and all(isinstance(c, Result) for c in chunks)
        cp = np.stack([c.probs for c in chunks])
        rows.append({
            "file": e["file"],
            "expected": e["expected_mood"],
            "utterance_top": m.labels[int(utt.probs.argmax())],
            "utterance_prob": float(utt.probs[want]),
            "chunk_tops": [m.labels[int(i)] for i in cp.argmax(axis=1)],
            "chunk_probs": [round(float(p), 4) for p in cp[:, want]],
        })
    return rows


def format_results(rows: list[dict[str, Any]]) -> str:
    """Markdown table of :func:`evaluate_samples` output."""
    lines = ["| sample | expected | utterance top-1 (p expected) | 1 s chunks with expected top-1 |",
             "|---|---|---|---|"]
    for r in rows:
        hits = sum(t == r["expected"] for t in r["chunk_tops"])
        lines.append(f"| {r['file']} | {r['expected']} | {r['utterance_top']} ({r['utterance_prob']:.3f}) "
                     f"| {hits}/{len(r['chunk_tops'])} |")
    return "\n".join(lines)
