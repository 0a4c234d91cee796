"""load_model: labels, versions, devices and clear errors."""

from __future__ import annotations

import hashlib
import shutil

import pytest
import torch

from emowatch.models.loader import (
    ModelLoadError,
    load_model,
    parse_label,
    resolve_device,
    resolve_precision,
)
from emowatch.streams.resources import demo_model_dir

DEMO_MODEL_DIR = demo_model_dir()


def test_labels_version_and_metadata(demo_dir, demo_model):
    m = demo_model
    assert m.labels == ["angry", "disgusted", "fearful", "happy", "neutral", "other", "sad",
                        "surprised", "unknown"]
    assert m.version == hashlib.sha256((demo_dir / "model.pt").read_bytes()).hexdigest()[:12]
    assert (m.sample_rate, m.frame_ms, m.device, m.dtype) == (16000, 20, "cpu", torch.float32)
    assert m.masked == [] and m.n_labels == 9
    assert m.automodel.model is m.module


def test_parse_label():
    assert parse_label("生气/angry") == "angry"
    assert parse_label("<unk>") == "unknown"
    assert parse_label("neutral") == "neutral"


def test_missing_directory_names_the_setting(tmp_path):
    with pytest.raises(ModelLoadError) as e:
        load_model(str(tmp_path / "nope"))
    msg = str(e.value)
    assert "EMOWATCH_MODEL" in msg and "models/demo" in msg and "nope" in msg


def test_missing_weights(tmp_path, demo_dir):
    d = tmp_path / "partial"
    shutil.copytree(demo_dir, d)
    (d / "model.pt").unlink()
    with pytest.raises(ModelLoadError, match="missing model.pt"):
        load_model(str(d))


def test_wrong_model_class(tmp_path, demo_dir):
    d = tmp_path / "other"
    shutil.copytree(demo_dir, d)
    cfg = (d / "config.yaml").read_text(encoding="utf-8").replace("model: Emotion2vec", "model: Paraformer")
    (d / "config.yaml").write_text(cfg, encoding="utf-8")
    with pytest.raises(ModelLoadError, match="expected 'Emotion2vec'"):
        load_model(str(d))


def test_hub_id_offline_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelLoadError) as e:
        load_model("iic/emotion2vec_plus_large", offline=True)
    assert "EMOWATCH_MODEL" in str(e.value) and "iic/emotion2vec_plus_large" in str(e.value)


def test_hub_id_found_in_local_cache(monkeypatch, tmp_path, demo_dir):
    snap = tmp_path / "hub" / "models--emotion2vec--emotion2vec_plus_base" / "snapshots" / "abc123"
    shutil.copytree(demo_dir, snap)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "ms"))
    m = load_model("emotion2vec/emotion2vec_plus_base", offline=True, device="cpu")
    assert m.name == "emotion2vec/emotion2vec_plus_base"
    assert m.version == "emotion2vec/emotion2vec_plus_base@abc123"


def test_relative_demo_path_resolves_from_any_cwd(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    if not (DEMO_MODEL_DIR / "model.pt").exists():
        pytest.skip("committed demo checkpoint missing")
    assert load_model("models/demo", device="cpu").path == DEMO_MODEL_DIR


def test_device_and_precision_choices():
    assert resolve_device("cpu") == "cpu"
    assert resolve_precision("auto", "cpu") == torch.float32
    with pytest.raises(ModelLoadError, match="only supported on CUDA"):
        resolve_precision("bf16", "cpu")
    with pytest.raises(ModelLoadError, match="unknown precision"):
        resolve_precision("int3", "cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == "cpu"
        with pytest.raises(ModelLoadError, match="CUDA is not available"):
            resolve_device("cuda")
    else:
        assert resolve_precision("auto", "cuda") in (torch.bfloat16, torch.float16)


def test_threads_sets_torch_intra_op_threads_and_a_negative_count_is_refused(demo_dir):
    before = torch.get_num_threads()
    try:
        load_model(str(demo_dir), device="cpu", threads=1)
        assert torch.get_num_threads() == 1
        torch.set_num_threads(before)
        load_model(str(demo_dir), device="cpu")  # 0, the default: torch's own count stays
        assert torch.get_num_threads() == before
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ModelLoadError, match="threads"):
        load_model(str(demo_dir), device="cpu", threads=-1)
