"""Fine-tuning a head (emowatch.models.finetune) on labelled audio: a weakened head gets better on held-out rows
(checked independently: the held-out files scored again through the engine, macro-F1 by scikit-learn), and the new
checkpoint is the source with only the head replaced (same encoder bit for bit, logits = embedding @ W.T + b)."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from emowatch.models.finetune.examples import Examples, split_groups
from emowatch.models.finetune.head import Head, class_weights, train_head
from emowatch.models.finetune.output import COPIED, SUMMARY_FILE
from emowatch.models.finetune.run import finetune_head
from emowatch.models.loader import load_model
from emowatch.models.quality.errors import QualityError
from emowatch.models.quality.labels import read_labels
from emowatch.models.utterance import score_files
from emowatch.streams.audio.chunking import read_wav_mono

from .conftest import PER_CLASS, SWAPPED


@pytest.fixture(scope="module")
def new_model(finetuned):
    return load_model(str(finetuned.out), device="cpu", precision="fp32")


def _held_out(finetuned, labels_csv):
    lines = set(finetuned.summary["split"]["held_out_lines"])
    return [it for it in read_labels(labels_csv) if it.line in lines]


def _predictions(model, waves) -> list[str]:
    return [model.labels[int(np.argmax(r.probs))] for r in score_files(model.engine(), waves)]


def test_the_held_out_macro_f1_of_a_weakened_head_improves(finetuned, weak_model, new_model, labels_csv):
    s = finetuned.summary
    held = _held_out(finetuned, labels_csv)
    train_lines = set(s["split"]["train_lines"])
    assert held and not train_lines & {it.line for it in held}
    assert {c: sum(it.label == c for it in held) for c in {it.label for it in held}} == \
        {c: round(PER_CLASS * 0.25) for c in ("angry", "neutral", "sad", "unknown")}  # stratified, 25 %
    waves = [read_wav_mono(it.audio) for it in held]
    truth = [it.label for it in held]
    present = sorted(set(truth))
    before = f1_score(truth, _predictions(weak_model, waves), labels=present, average="macro", zero_division=0)
    after = f1_score(truth, _predictions(new_model, waves), labels=present, average="macro", zero_division=0)
    assert after > before
    assert before == pytest.approx(0.5) and after == pytest.approx(1.0)  # the swap: angry and sad all wrong
    assert (s["held_out"]["before"]["macro_f1"], s["held_out"]["after"]["macro_f1"]) == \
        (pytest.approx(before), pytest.approx(after))  # the report says what the models do
    assert s["train"]["after"]["macro_f1"] > s["train"]["before"]["macro_f1"]
    card = (finetuned.out / "MODEL_CARD.md").read_text()
    assert finetuned.version in card and "| macro-F1 | 0.500 | 1.000 |" in card and s["command"] in card
    assert json.loads((finetuned.out / SUMMARY_FILE).read_text()) == s


def test_the_checkpoint_is_the_source_with_only_the_head_replaced(finetuned, weak_dir, weak_model, new_model):
    assert new_model.version == finetuned.version == hashlib.sha256(
        (finetuned.out / "model.pt").read_bytes()).hexdigest()[:12]
    assert new_model.version != weak_model.version and new_model.labels == weak_model.labels
    for name in COPIED:
        assert (finetuned.out / name).read_bytes() == (weak_dir / name).read_bytes()
    old = torch.load(weak_dir / "model.pt", weights_only=True)
    new = torch.load(finetuned.out / "model.pt", weights_only=True)
    assert old.keys() == new.keys()
    changed = [k for k in old if not torch.equal(old[k], new[k])]
    assert changed == ["proj.weight", "proj.bias"]
    trained = [weak_model.labels.index(c) for c in ("angry", "neutral", "sad", "unknown")]
    untouched = [i for i in range(len(weak_model.labels)) if i not in trained]  # no labels: the source's rows
    assert torch.equal(new["proj.weight"][untouched], old["proj.weight"][untouched])
    assert torch.equal(new["proj.bias"][untouched], old["proj.bias"][untouched])
    assert finetuned.summary["frozen_classes"] == [weak_model.labels[i] for i in untouched]


def test_scores_differ_only_through_the_head(finetuned, weak_model, new_model, labels_csv):
    waves = [read_wav_mono(it.audio) for it in read_labels(labels_csv)[:: PER_CLASS // 2]]
    weak = score_files(weak_model.engine(), waves, embeddings="frames")
    new = score_files(new_model.engine(), waves, embeddings="frames")
    w = new_model.module.proj.weight.detach().numpy().astype(np.float64)
    b = new_model.module.proj.bias.detach().numpy().astype(np.float64)
    for r_weak, r_new in zip(weak, new):
        assert np.array_equal(r_weak.embedding, r_new.embedding)  # the same encoder, bit for bit
        assert not np.allclose(r_weak.logits, r_new.logits)
        np.testing.assert_allclose(r_new.logits, r_new.embedding.astype(np.float64) @ w.T + b, atol=2e-5)
        mean = r_new.embedding.astype(np.float64).mean(axis=0) @ w.T + b  # the utterance: the head on the mean
        np.testing.assert_allclose(r_new.probs, np.exp(mean) / np.exp(mean).sum(), atol=1e-5)
    swapped = [new_model.labels.index(c) for c in SWAPPED]
    assert not np.allclose(new_model.module.proj.weight.detach()[swapped],
                           weak_model.module.proj.weight.detach()[swapped])


def test_the_same_data_and_options_give_the_same_checkpoint(finetuned, weak_model, labels_csv, tmp_path):
    again = finetune_head(weak_model, labels_csv, tmp_path / "again")
    assert again.version == finetuned.version
    assert (tmp_path / "again" / "model.pt").read_bytes() == (finetuned.out / "model.pt").read_bytes()


def test_refuses_to_overwrite_anything_but_an_earlier_output(finetuned, weak_model, weak_dir, labels_csv, tmp_path):
    with pytest.raises(QualityError, match="source model's directory"):
        finetune_head(weak_model, labels_csv, weak_dir, force=True)
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(QualityError, match="not empty and holds no finetune.json"):
        finetune_head(weak_model, labels_csv, tmp_path, force=True)
    with pytest.raises(QualityError, match="use --force"):
        finetune_head(weak_model, labels_csv, finetuned.out)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_class_weights_are_inverse_frequencies_with_mean_one_per_example():
    labels = ["angry"] * 6 + ["sad"] * 2
    w = class_weights(labels, ["angry", "neutral", "sad"])
    assert w.tolist() == pytest.approx([8 / (2 * 6), 0.0, 8 / (2 * 2)])
    assert np.mean([w[0]] * 6 + [w[2]] * 2) == pytest.approx(1.0)


def test_the_split_keeps_rows_together_and_is_stratified_and_seeded():
    labels = ["a"] * 8 + ["b"] * 4 + ["c"]  # rows: a has 4 rows of 2 chunks, b 4 rows of 1, c one row
    groups = [1, 1, 2, 2, 3, 3, 4, 4, 5, 6, 7, 8, 9]
    ex = Examples(np.zeros((13, 2)), labels, groups)
    train, held = split_groups(ex, 0.25, seed=3)
    held_rows = set(ex.groups[held].tolist())
    assert not held_rows & set(ex.groups[train].tolist())
    assert sorted(ex.labels[i] for i in held) == ["a", "a", "b"]  # one row of a (2 chunks), one of b, no c
    assert split_groups(ex, 0.25, seed=3)[1].tolist() == held.tolist()
    with pytest.raises(QualityError, match="between 0 and 1"):
        split_groups(ex, 1.0, seed=0)
    with pytest.raises(QualityError, match="nothing to hold out"):
        split_groups(Examples(np.zeros((2, 2)), ["a", "b"], [1, 2]), 0.25, seed=0)


def test_the_original_head_is_kept_when_training_does_not_beat_it():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3)).astype(np.float32)
    init = Head(np.eye(2, 3, dtype=np.float32) * 5, np.zeros(2, np.float32))
    labels = ["a" if v == 0 else "b" for v in init.predict(x)]  # the initial head is already perfect
    ex = Examples(x, labels, np.arange(40))
    trained = train_head(ex.take(np.arange(30)), ex.take(np.arange(30, 40)), init, ["a", "b"], steps=0)
    assert trained.best_step == 0
    assert np.array_equal(trained.head.weight, init.weight) and np.array_equal(trained.head.bias, init.bias)


def test_mini_batches_are_seeded_and_classes_without_labels_keep_their_rows():
    rng = np.random.default_rng(1)
    centres = np.array([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0]])
    labels = ["a", "b"] * 30
    x = (centres[[0, 1] * 30] + rng.standard_normal((60, 3)) * 0.5).astype(np.float32) * 40 + 7  # any scale
    ex = Examples(x, labels, np.arange(60))
    init = Head((rng.standard_normal((3, 3)) / 40).astype(np.float32), np.array([0.0, 0.0, 3.0], np.float32))
    train, held = ex.take(np.arange(40)), ex.take(np.arange(40, 60))
    runs = [train_head(train, held, init, ["a", "b", "c"], steps=120, batch_size=8, seed=s) for s in (4, 4, 5)]
    assert np.array_equal(runs[0].head.weight, runs[1].head.weight)  # same seed, same head
    assert not np.array_equal(runs[0].head.weight, runs[2].head.weight)  # another batch order
    for r in runs:
        assert np.array_equal(r.head.weight[2], init.weight[2]) and r.head.bias[2] == init.bias[2]
        assert r.weights == {"a": 1.0, "b": 1.0, "c": 0.0}
        pred = ["abc"[i] for i in r.head.predict(held.x)]
        assert f1_score(held.labels, pred, labels=["a", "b"], average="macro") == 1.0
    before = ["abc"[i] for i in init.predict(held.x)]
    assert f1_score(held.labels, before, labels=["a", "b"], average="macro", zero_division=0) < 1.0
