"""Labelled sets: any label spelling, errors with file and line; the generated test set."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from emowatch.models.quality.errors import QualityError
from emowatch.models.quality.labels import read_labels
from emowatch.models.quality.testset import LABELS_FILE, label_spellings, make_testset
from emowatch.models.synth import CLASSES, write_wav
from emowatch.streams.audio.chunking import read_wav
from emowatch.topics.model_io import SAMPLE_RATE


@pytest.fixture
def wav(tmp_path):
    write_wav(tmp_path / "a.wav", np.zeros(SAMPLE_RATE, dtype=np.float32))
    return tmp_path


def _csv(folder, text: str):
    p = folder / "labels.csv"
    p.write_text(text, encoding="utf-8")
    return p


def test_every_spelling_is_read(wav):
    p = _csv(wav, "audio,label,scenario\na.wav,angry,quiet\na.wav,生气/angry,office\na.wav,生气,phone\n"
                  "a.wav,<unk>,\na.wav, Neutral ,quiet\n")
    items = read_labels(p)
    assert [i.label for i in items] == ["angry", "angry", "angry", "unknown", "neutral"]
    assert [i.scenario for i in items] == ["quiet", "office", "phone", "all", "quiet"]
    assert [i.line for i in items] == [2, 3, 4, 5, 6] and items[0].audio == wav / "a.wav"


@pytest.mark.parametrize("text,where,what", [
    ("audio,label\na.wav,angry\na.wav,furious\n", 3, "unknown label 'furious'"),
    ("audio,label\na.wav,angry\nmissing.wav,sad\n", 3, "not found"),
    ("audio,label\n,angry\n", 2, "neither audio nor call_id"),
    ("call_id,label,start_s,end_s\nC1,angry,2,1\n", 2, "end_s 1 is not after start_s 2"),
    ("call_id,label,start_s\nC1,angry,soon\n", 2, "is not a number of seconds"),
    ("audio,emotion\na.wav,angry\n", 1, "no 'label' column"),
])
def test_bad_rows_name_the_file_and_line(wav, text, where, what):
    p = _csv(wav, text)
    with pytest.raises(QualityError) as exc:
        read_labels(p)
    assert f"{p}:{where}:" in str(exc.value) and what in str(exc.value)


def test_scenario_column_option(wav):
    p = _csv(wav, "audio,label,cond\na.wav,sad,phone\n")
    assert read_labels(p, scenario_column="cond")[0].scenario == "phone"
    assert read_labels(p)[0].scenario == "all"


def test_generated_set_is_reproducible_and_mixes_spellings(tmp_path):
    a = make_testset(tmp_path / "a", n_per_class=3, seed=5, seconds=1.0)
    make_testset(tmp_path / "b", n_per_class=2, seed=5, seconds=1.0)
    assert a.name == LABELS_FILE
    rows = list(csv.DictReader(a.read_text(encoding="utf-8").splitlines()))
    assert len(rows) == 3 * len(CLASSES) and {r["scenario"] for r in rows} == {"quiet"}
    assert {r["label"] for r in rows} >= {"angry", "生气/angry", "<unk>", "unknown"}
    items = read_labels(a)
    assert [i.label for i in items] == [c for c in CLASSES for _ in range(3)]
    for name in ("angry_000.wav", "sad_001.wav", "unknown_001.wav"):  # a smaller set is a prefix of a larger one
        assert (tmp_path / "a" / "clips" / name).read_bytes() == (tmp_path / "b" / "clips" / name).read_bytes()
    samples, rate = read_wav(tmp_path / "a" / "clips" / "angry_000.wav")
    assert rate == SAMPLE_RATE and samples.shape == (SAMPLE_RATE, 1)
    assert label_spellings("unknown") == ["unknown", "<unk>"]


def test_pre_augmented_set(tmp_path):
    p = make_testset(tmp_path, n_per_class=1, seed=0, seconds=1.0, classes=["angry", "sad"],
                     scenarios=["quiet", "phone"])
    items = read_labels(p)
    assert [(i.label, i.scenario, i.audio.parent.name) for i in items] == [
        ("angry", "quiet", "quiet"), ("angry", "phone", "phone"), ("sad", "quiet", "quiet"), ("sad", "phone", "phone")]
    with pytest.raises(QualityError, match="no class"):
        make_testset(tmp_path, n_per_class=1, classes=["happy"])
    with pytest.raises(QualityError, match="unknown scenario"):
        make_testset(tmp_path, n_per_class=1, scenarios=["street"])


def test_make_testset_command(tmp_path):
    from typer.testing import CliRunner

    from emowatch.streams.cli.main import app

    res = CliRunner().invoke(app, ["model", "make-testset", "--out", str(tmp_path / "s"), "--per-class", "1",
                                   "--seconds", "1", "--scenarios", "quiet,office"])
    assert res.exit_code == 0, res.output
    assert [i.scenario for i in read_labels(tmp_path / "s" / LABELS_FILE)] == ["quiet", "office"] * len(CLASSES)
    bad = CliRunner().invoke(app, ["model", "make-testset", "--out", str(tmp_path / "t"), "--scenarios", "tunnel"])
    assert bad.exit_code == 2 and "unknown scenario(s) ['tunnel']" in bad.stderr
