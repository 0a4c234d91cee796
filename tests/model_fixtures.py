"""Model fixtures shared by tests/models and tests/bench: random-weight checkpoints built in tmp dirs.

Imported by those folders' conftest.py (``tests`` is on pytest's ``pythonpath``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emowatch.models.checkpoint import build_checkpoint
from emowatch.models.engine import model_input
from emowatch.models.loader import EmotionModel, load_model
from emowatch.streams.resources import demo_model_dir


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight demo-shape checkpoint (seed 0)."""
    return build_checkpoint(tmp_path_factory.mktemp("demo_random"), shape="demo", seed=0)


@pytest.fixture(scope="session")
def demo_model(demo_dir: Path) -> EmotionModel:
    return load_model(str(demo_dir), device="cpu", precision="fp32")


@pytest.fixture(scope="session")
def bundled_model() -> EmotionModel:
    """The committed (trained) pipeline-demo checkpoint, fp32 on CPU."""
    return load_model(str(demo_model_dir()), device="cpu", precision="fp32")


@pytest.fixture(scope="session")
def base_model(tmp_path_factory: pytest.TempPathFactory) -> EmotionModel:
    """A random-weight emotion2vec-base-shaped model (768-dim, 4 + 8 blocks)."""
    d = build_checkpoint(tmp_path_factory.mktemp("base_random"), shape="base", seed=1)
    return load_model(str(d), device="cpu", precision="fp32")


def _funasr_scores(model: EmotionModel, audio: np.ndarray, emit: int) -> tuple[np.ndarray, np.ndarray]:
    """FunASR's own (utterance probs, frame features) for the engine's model input."""
    wav = model_input(audio, emit)
    utt = model.automodel.generate(
        input=wav, granularity="utterance", extract_embedding=False, disable_pbar=True
    )[0]
    frm = model.automodel.generate(
        input=wav, granularity="frame", extract_embedding=True, disable_pbar=True
    )[0]
    return np.asarray(utt["scores"], dtype=np.float64), np.asarray(frm["feats"])


def _noise(seed: int, n: int, scale: float = 0.1) -> np.ndarray:
    """Seeded float32 test audio."""
    return (np.random.default_rng(seed).standard_normal(n) * scale).astype(np.float32)


@pytest.fixture(scope="session")
def funasr_scores():
    """``f(model, audio, emit) -> (utterance probs, frame feats)`` computed by FunASR."""
    return _funasr_scores


@pytest.fixture(scope="session")
def noise():
    """``f(seed, n, scale=0.1) -> float32 array``."""
    return _noise
