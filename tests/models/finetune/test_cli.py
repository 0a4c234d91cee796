"""`emowatch model finetune-head` through typer's CliRunner: --format json on labelled audio, and fail-fast options."""
from __future__ import annotations

import hashlib
import json

import pytest
from typer.testing import CliRunner

from emowatch.streams.cli.main import app


def _invoke(*args: str):
    return CliRunner().invoke(app, ["model", "finetune-head", *args])


def test_format_json_writes_the_checkpoint_and_prints_its_summary(weak_dir, labels_csv, tmp_path):
    out = tmp_path / "head"
    res = _invoke("--labels", str(labels_csv), "--out", str(out), "--model", str(weak_dir), "--steps", "60",
                  "--holdout", "0.25", "--format", "json")
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)  # stdout is the JSON alone (FunASR's prints go to stderr)
    assert got["out"] == str(out)
    assert got["model_version"] == hashlib.sha256((out / "model.pt").read_bytes()).hexdigest()[:12]
    assert got["options"]["steps"] == 60 and got["training"]["steps_run"] <= 60
    assert got["held_out"]["after"]["macro_f1"] > got["held_out"]["before"]["macro_f1"]
    assert got["command"].startswith("emowatch model finetune-head --labels ") and "--steps 60" in got["command"]
    assert {p.name for p in out.iterdir()} == {"config.yaml", "model.pt", "tokens.txt", "configuration.json",
                                                "MODEL_CARD.md", "finetune.json"}
    assert json.loads((out / "finetune.json").read_text()) == {k: v for k, v in got.items() if k != "out"}


@pytest.mark.parametrize("extra, text", [
    (["--since", "30d"], "--since applies to --from-history only"),
    (["--skip-missing"], "--skip-missing applies to --from-history only"),
    (["--holdout", "1.5"], "--holdout 1.5 must be between 0 and 1"),
    (["--steps", "0"], "invalid training options"),
    (["--format", "yaml"], "--format must be table or json"),
])
def test_bad_options_fail_fast(weak_dir, labels_csv, tmp_path, extra, text):
    res = _invoke("--labels", str(labels_csv), "--out", str(tmp_path / "o"), "--model", str(weak_dir), *extra)
    assert res.exit_code == 2 and text in res.output.replace("\n", " ")
    assert not (tmp_path / "o").exists()


def test_bad_labels_and_out_dirs_fail_fast(weak_dir, labels_csv, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("audio,label\nnothere.wav,angry\n")
    res = _invoke("--labels", str(bad), "--out", str(tmp_path / "o"), "--model", str(weak_dir))
    assert res.exit_code == 2 and "bad.csv:2: audio file" in res.output
    res = _invoke("--labels", str(labels_csv), "--out", str(weak_dir), "--model", str(weak_dir))
    assert res.exit_code == 2 and "is the source model's directory" in res.output
    res = _invoke("--labels", str(labels_csv), "--out", str(tmp_path / "o"), "--model", str(tmp_path / "nope"))
    assert res.exit_code == 3 and "cannot load the model" in res.output
