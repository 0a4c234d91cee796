"""A deliberately weakened demo model, a labelled set of synthetic clips, and one fine-tune of it (session scope).

The weakened head is the bundled demo model's with the rows (weights and bias) of ``angry`` and ``sad`` swapped:
angry clips come out sad and sad ones angry, neutral and unknown stay right (held-out macro-F1 0.5). The labelled
set is :data:`PER_CLASS` seeded clips of :data:`SECONDS` per synthetic class (small: fine-tuning a head is
cheap, the clips' embeddings are most of the time).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from emowatch.models.checkpoint import write_checkpoint
from emowatch.models.finetune.run import finetune_head
from emowatch.models.loader import EmotionModel, load_model
from emowatch.models.synth import CLASSES, synth_clip, write_wav
from emowatch.streams.resources import demo_model_dir
from emowatch.topics.model_io import EMOTIONS

PER_CLASS = 8
SECONDS = 2.0
SWAPPED = ("angry", "sad")


def weakened_state() -> dict[str, torch.Tensor]:
    """The bundled demo state dict with the head rows of :data:`SWAPPED` exchanged."""
    state = torch.load(demo_model_dir() / "model.pt", map_location="cpu", weights_only=True)
    a, b = (EMOTIONS.index(c) for c in SWAPPED)
    for key in ("proj.weight", "proj.bias"):
        t = state[key].clone()
        t[[a, b]] = state[key][[b, a]]
        state[key] = t
    return state


def write_labelled_set(folder: Path, per_class: int, seconds: float, seed: int) -> Path:
    """``per_class`` WAV clips per synthetic class and ``labels.csv`` (audio,label,scenario) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = ["audio,label,scenario"]
    for cls in CLASSES:
        for i in range(per_class):
            write_wav(folder / f"{cls}_{i:02d}.wav", synth_clip(cls, seconds, rng))
            rows.append(f"{cls}_{i:02d}.wav,{cls},synthetic")
    path = folder / "labels.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def weak_dir(tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("weak") / "weak", weakened_state(), shape="demo")


@pytest.fixture(scope="session")
def weak_model(weak_dir) -> EmotionModel:
    return load_model(str(weak_dir), device="cpu", precision="fp32")


@pytest.fixture(scope="session")
def labels_csv(tmp_path_factory) -> Path:
    return write_labelled_set(tmp_path_factory.mktemp("labelled"), PER_CLASS, SECONDS, seed=16)


@pytest.fixture(scope="session")
def finetuned(weak_model, labels_csv, tmp_path_factory):
    """The Outcome of fine-tuning the weakened head on the labelled set (default options)."""
    return finetune_head(weak_model, labels_csv, tmp_path_factory.mktemp("finetuned") / "head")
