"""`emowatch model evaluate` end to end on a tiny generated set with the bundled demo model.

The JSON's metrics are recomputed here with scikit-learn from the per-item predictions the JSON lists, the
predictions from the listed probabilities, and the quiet and phone scenarios' probabilities by scoring the
audio again outside the evaluation (the WAV as is; the WAV through ``augment`` with the documented seed)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)
from typer.testing import CliRunner

from emowatch.models.quality.augment import augment, scenario_rng
from emowatch.models.quality.errors import QualityError
from emowatch.models.quality.evaluate import evaluate, parse_weights
from emowatch.models.quality.labels import read_labels
from emowatch.models.quality.testset import make_testset
from emowatch.models.utterance import score_files
from emowatch.streams.audio.chunking import read_wav_mono
from emowatch.streams.cli.main import app
from emowatch.streams.resources import demo_model_dir

ENV = {"EMOWATCH_MODEL__DEVICE": "cpu", "EMOWATCH_MODEL__PRECISION": "fp32"}
WEIGHTS = {"quiet": 0.5, "office": 0.3, "phone": 0.2}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_testset(tmp_path_factory.mktemp("tiny") / "set", n_per_class=2, seed=0, seconds=2.0)


@pytest.fixture(scope="module")
def run(tiny):
    out = tiny.parent / "out"
    res = CliRunner().invoke(app, ["model", "evaluate", "--labels", str(tiny), "--model", str(demo_model_dir()),
                                   "--augment", "quiet,office,phone", "--weights", "quiet=0.5,office=0.3,phone=0.2",
                                   "--format", "json", "--out", str(out)], env=ENV)
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout), out


@pytest.mark.filterwarnings("ignore")  # sklearn warns about classes absent from y_true
def test_json_metrics_equal_sklearn_on_the_listed_predictions(run):
    result, _ = run
    classes = result["classes"]
    assert result["prediction"] == "argmax over all the model's classes" and len(classes) == 9
    assert list(result["scenarios"]) == ["quiet", "office", "phone"] and result["errors"] == []
    assert len(result["items"]) == 3 * 8 and result["n_items"] == 8
    for scenario, rep in result["scenarios"].items():
        rows = [r for r in result["items"] if r["scenario"] == scenario]
        y_true, y_pred = [r["label"] for r in rows], [r["pred"] for r in rows]
        present = sorted(set(y_true))
        assert rep["n"] == len(rows) == 8
        assert rep["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
        assert rep["ua"] == pytest.approx(balanced_accuracy_score(y_true, y_pred), abs=1e-12)
        assert rep["macro_f1"] == pytest.approx(
            f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0), abs=1e-12)
        p, r, _f, s = precision_recall_fscore_support(y_true, y_pred, labels=classes, zero_division=0)
        assert [rep["per_class"][c]["precision"] for c in classes] == pytest.approx(list(p))
        assert [rep["per_class"][c]["recall"] for c in classes] == pytest.approx(list(r))
        assert [rep["per_class"][c]["support"] for c in classes] == list(s)
        assert rep["confusion"] == confusion_matrix(y_true, y_pred, labels=classes).tolist()
    w = result["weighted"]
    assert w["weights"] == pytest.approx(WEIGHTS)
    for key in ("accuracy", "ua", "macro_f1"):
        assert w[key] == pytest.approx(sum(WEIGHTS[s] * result["scenarios"][s][key] for s in WEIGHTS))


def test_each_prediction_is_the_argmax_of_its_probabilities(run):
    result, _ = run
    for row in result["items"]:
        probs = np.asarray(row["probs"])
        assert row["pred"] == result["classes"][int(np.argmax(probs))]
        assert row["p_pred"] == pytest.approx(probs.max()) and probs.sum() == pytest.approx(1.0, abs=1e-4)
        assert row["p_label"] == pytest.approx(probs[result["classes"].index(row["label"])])


def test_probabilities_equal_scoring_the_audio_outside_the_evaluation(run, tiny, bundled_model):
    result, _ = run
    items = read_labels(tiny)
    engine = bundled_model.engine(max_seconds=62)
    for scenario in ("quiet", "phone"):
        waves = [augment(read_wav_mono(it.audio), scenario, scenario_rng(0, it.key, scenario)) for it in items]
        want = [r.probs for r in score_files(engine, waves)]
        got = [r["probs"] for r in result["items"] if r["scenario"] == scenario]
        assert np.allclose(np.asarray(got), np.asarray(want), atol=1e-5)


def test_pictures_and_report_file(run):
    result, out = run
    for scenario in ("quiet", "office", "phone"):
        png = out / f"confusion_{scenario}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and result["pngs"][scenario] == str(png)
    on_disk = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert on_disk["scenarios"] == result["scenarios"] and on_disk["items"] == result["items"]


def test_table_output(tiny):
    res = CliRunner().invoke(app, ["model", "evaluate", "--labels", str(tiny), "--model", str(demo_model_dir()),
                                   "--batch", "3"], env=ENV)
    assert res.exit_code == 0, res.stderr
    assert "weighted (shares)" in res.stdout and "quiet: confusion" in res.stdout and "macro-F1" in res.stdout


@pytest.mark.parametrize("args,message", [
    (["--weights", "quiet=abc"], "is not SCENARIO=WEIGHT"),
    (["--weights", "quiet=0.5,quiet=0.5"], "given twice"),
    (["--augment", "quiet,street"], "unknown scenario(s) ['street']"),
    (["--augment", "quiet,phone", "--weights", "quiet=1,office=1"], "--weights names ['office']"),
    (["--weights", "office=1"], "--weights names ['office'], but the scenarios are ['quiet']"),
    (["--format", "xml"], "--format must be one of table, json"),
])
def test_bad_options_fail_fast(tiny, args, message):
    res = CliRunner().invoke(app, ["model", "evaluate", "--labels", str(tiny), "--model", "no/such-model", *args],
                             env=ENV)
    assert res.exit_code == 2, res.output
    assert message in res.stderr.replace("\n", "")


def test_a_bad_labels_file_names_its_line(tiny):
    bad = tiny.parent / "bad.csv"
    bad.write_text("audio,label\nclips/angry_000.wav,angry\nclips/sad_000.wav,melancholy\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["model", "evaluate", "--labels", str(bad), "--model", "models/demo"], env=ENV)
    assert res.exit_code == 2 and f"{bad}:3: unknown label 'melancholy'" in res.stderr.replace("\n", "")


def test_pre_augmented_set_scores_like_augment(tmp_path, bundled_model):
    """A set written with its scenarios scores (up to 16-bit rounding) like --augment on the clean set."""
    pre = read_labels(make_testset(tmp_path / "pre", n_per_class=1, seconds=2.0, scenarios=["quiet", "phone"]))
    clean = read_labels(make_testset(tmp_path / "clean", n_per_class=1, seconds=2.0))
    a = evaluate(pre, bundled_model)
    b = evaluate(clean, bundled_model, augment_with=["quiet", "phone"])
    assert list(a["scenarios"]) == list(b["scenarios"]) == ["quiet", "phone"]
    key = lambda r: (r["scenario"], r["key"])  # noqa: E731
    for x, y in zip(sorted(a["items"], key=key), sorted(b["items"], key=key)):
        assert key(x) == key(y) and x["pred"] == y["pred"]
        assert np.allclose(x["probs"], y["probs"], atol=5e-3)
    assert a["weighted"]["weights"] == pytest.approx({"quiet": 0.5, "phone": 0.5})  # default: shares


def test_call_rows_need_the_audio_topic(tmp_path, bundled_model):
    p = tmp_path / "calls.csv"
    p.write_text("call_id,label,start_s,end_s\nC1,angry,0,3\n", encoding="utf-8")
    with pytest.raises(QualityError, match=r"calls.csv:2: call_id rows need the audio topic"):
        evaluate(read_labels(p), bundled_model, source=p)
    assert parse_weights("quiet=1, phone=3") == {"quiet": 1.0, "phone": 3.0}


def test_file_audio_is_cut_downmixed_and_resampled(tmp_path):
    import wave

    from emowatch.models.quality.evaluate import item_audio
    from emowatch.models.quality.labels import LabelledItem

    t = np.arange(8000 * 2) / 8000.0
    left, right = 0.5 * np.sin(2 * np.pi * 440 * t), 0.1 * np.sin(2 * np.pi * 440 * t)
    with wave.open(str(tmp_path / "st.wav"), "wb") as w:  # 2 s stereo at 8 kHz
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes((np.stack([left, right], axis=1) * 32767).astype("<i2").tobytes())
    whole = item_audio(LabelledItem(line=2, label="angry", audio=tmp_path / "st.wav"))
    assert whole.dtype == np.float32 and len(whole) == 2 * 16000
    assert np.max(np.abs(whole[1000:-1000])) == pytest.approx(0.3, abs=0.01)  # the channels' mean
    span = item_audio(LabelledItem(line=3, label="angry", audio=tmp_path / "st.wav", start_s=0.5, end_s=1.5))
    assert np.array_equal(span, whole[8000:24000])
    with pytest.raises(QualityError, match=r"set.csv:4: start_s 5 is past the end"):
        item_audio(LabelledItem(line=4, label="angry", audio=tmp_path / "st.wav", start_s=5.0), "set.csv")
