"""The checkpoint builder writes directories FunASR's AutoModel loads as Emotion2vec."""

from __future__ import annotations

import numpy as np
import torch
import yaml

from emowatch.models.checkpoint import TOKENS, build_checkpoint, instantiate, model_config
from emowatch.models.engine import n_frames
from emowatch.models.loader import parse_label
from emowatch.topics.model_io import EMOTIONS


def test_demo_checkpoint_layout_and_size(demo_dir):
    assert (demo_dir / "tokens.txt").read_text(encoding="utf-8").split() == list(TOKENS)
    cfg = yaml.safe_load((demo_dir / "config.yaml").read_text(encoding="utf-8"))
    assert cfg["model"] == "Emotion2vec" and cfg["model_conf"]["normalize"] is True
    assert (demo_dir / "model.pt").stat().st_size < 5_000_000
    assert [parse_label(t) for t in TOKENS] == list(EMOTIONS)  # tokens.txt order is the contract's class order


def test_automodel_loads_the_stored_weights(demo_dir, demo_model):
    stored = torch.load(demo_dir / "model.pt", map_location="cpu")
    live = demo_model.module.state_dict()
    assert set(stored) == set(live)
    for k, v in live.items():
        assert torch.equal(v, stored[k]), k
    assert type(demo_model.module).__name__ == "Emotion2vec"


def test_feature_encoder_stride_is_20ms(demo_model, funasr_scores):
    # 16000 + 80 samples -> 50 frames: total stride 320, receptive field 400.
    _, feats = funasr_scores(demo_model, np.zeros(16000, np.float32) + 0.01, 16000)
    assert feats.shape[0] == 50 == n_frames(16080)
    assert n_frames(16000) == 49


def test_seeded_builds_are_identical_and_seed_matters():
    a, b, c = (instantiate("demo", seed=s).state_dict() for s in (3, 3, 4))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_base_shape_geometry():
    mc = model_config("base")["model_conf"]
    assert mc["embed_dim"] == 768 and mc["depth"] == 8
    assert mc["modalities"]["audio"]["prenet_depth"] == 4


def test_state_dict_round_trip(tmp_path, demo_model):
    sd = {k: v + 1 if v.is_floating_point() else v for k, v in demo_model.module.state_dict().items()}
    d = build_checkpoint(tmp_path / "x", shape="demo", state_dict=sd)
    back = torch.load(d / "model.pt")
    k = "proj.weight"
    assert torch.equal(back[k], sd[k])
