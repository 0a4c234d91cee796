"""The committed pipeline-demo checkpoint classifies the bundled samples as intended."""

from __future__ import annotations

import hashlib

import pytest

from emowatch.models.evaluate import evaluate_samples, stream_windows
from emowatch.models.loader import load_model
from emowatch.models.train import train_demo
from emowatch.streams.resources import demo_model_dir

DEMO_MODEL_DIR = demo_model_dir()


@pytest.fixture(scope="module")
def results():
    m = load_model(str(DEMO_MODEL_DIR), device="cpu", precision="fp32")
    assert m.labels[0] == "angry" and m.name == "emowatch-demo-e2v"
    return {r["file"]: r for r in evaluate_samples(m)}


def test_agitated_is_angry_overall_and_per_chunk(results):
    r = results["agitated_01.wav"]
    assert r["utterance_top"] == "angry" and r["utterance_prob"] >= 0.75
    confident = [p >= 0.75 for p in r["chunk_probs"]]
    assert sum(confident) >= 0.8 * len(confident), r["chunk_probs"]


@pytest.mark.parametrize("file,label", [("calm_01.wav", "neutral"), ("sad_01.wav", "sad"),
                                        ("quiet_01.wav", "unknown")])
def test_top1(results, file, label):
    assert results[file]["utterance_top"] == label


def test_escalation_shows_in_the_chunk_timeline(results):
    tops = results["escalating_01.wav"]["chunk_tops"]  # neutral 0-7 s, angry 7-14 s
    assert len(tops) == 14
    assert all(t != "angry" for t in tops[:6]) and all(t == "angry" for t in tops[8:]), tops


def test_model_card_says_demo_only():
    card = (DEMO_MODEL_DIR / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "NOT an emotion model" in card and "EMOWATCH_MODEL__MODEL=iic/emotion2vec_plus_large" in card
    assert (DEMO_MODEL_DIR / "model.pt").stat().st_size < 5_000_000


def test_stream_windows_context_and_chunks():
    import numpy as np

    ws = stream_windows(np.zeros(16000 * 3 + 500, np.float32))
    assert [len(w.audio) for w in ws] == [16000, 32000, 48000, 32500]
    assert [w.emit_samples for w in ws] == [16000, 16000, 16000, 500]


def test_training_is_deterministic(tmp_path):
    digests = []
    for d in ("a", "b"):
        train_demo(tmp_path / d, steps=2, per_class=1, batch=4, progress=False, evaluate=False)
        digests.append(hashlib.sha256((tmp_path / d / "model.pt").read_bytes()).hexdigest())
    assert digests[0] == digests[1]
