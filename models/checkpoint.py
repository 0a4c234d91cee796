"""Build Emotion2vec-architecture checkpoint directories that FunASR's ``AutoModel`` loads.

No model hub is reachable from CI or the demo stack, so emowatch ships its own small
checkpoint with exactly the layout of the published emotion2vec+ models::

    <dir>/config.yaml          model: Emotion2vec, model_conf, tokenizer: CharTokenizer
    <dir>/model.pt             a plain state_dict of funasr's Emotion2vec module
    <dir>/tokens.txt           the 9 emotion2vec+ labels in model order
    <dir>/configuration.json   ModelScope-style metadata (informational)

``funasr.AutoModel(model=<dir>)`` instantiates the real ``Emotion2vec`` class from it.
Three shapes exist: ``demo`` (tiny, < 5 MB, used by the bundled demo model), ``base``
(the emotion2vec base geometry: 768-dim, 4 prenet + 8 main blocks) and ``large`` (the
emotion2vec+ large geometry: 1024-dim, 16 heads, 8 prenet + 16 main blocks, ~313 M
parameters, a 1.25 GB ``model.pt``).  ``base`` and ``large`` carry random weights and are
for tests and benchmarks only, never committed.

Where the large geometry comes from: emotion2vec+ large is a data2vec 2.0 *large* audio
model (1024-dim features).  Its depth and heads were taken from fairseq's data2vec 2.0
large audio recipe (``examples/data2vec/config/v2/large_audio_only_task.yaml``:
``embed_dim 1024, num_heads 16, depth 16, prenet_depth 8``, same conv feature encoder and
positional convolution as base).  The published emotion2vec+ large ``config.yaml`` itself
could not be consulted offline; ``num_extra_tokens`` (10) is assumed equal to the
emotion2vec base config.  Check ``SHAPES["large"]`` against a downloaded
``iic/emotion2vec_plus_large/config.yaml`` if the exact geometry matters.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

__all__ = [
    "TOKENS",
    "SHAPES",
    "model_config",
    "build_checkpoint",
    "instantiate",
    "write_checkpoint",
]

#: emotion2vec+ class tokens in model output order (tokens.txt, one per line); emowatch's
#: English labels, in the same order, are :data:`emowatch.topics.model_io.EMOTIONS`.
TOKENS: tuple[str, ...] = (
    "生气/angry",
    "厌恶/disgusted",
    "恐惧/fearful",
    "开心/happy",
    "中立/neutral",
    "其他/other",
    "难过/sad",
    "吃惊/surprised",
    "<unk>",
)

# Standard wav2vec2 / data2vec feature encoder: receptive field 400 samples, stride 320
# (20 ms at 16 kHz).  The demo shape keeps the geometry and shrinks the channels.
_BASE_SPEC = "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] + [(512,2,2)]"
_DEMO_SPEC = "[(32, 10, 5)] + [(64, 3, 2)] * 4 + [(64,2,2)] + [(64,2,2)]"

SHAPES: dict[str, dict[str, Any]] = {
    "base": {
        "embed_dim": 768,
        "num_heads": 12,
        "depth": 8,
        "prenet_depth": 4,
        "mlp_ratio": 4.0,
        "num_extra_tokens": 10,
        "feature_encoder_spec": _BASE_SPEC,
        "conv_pos_width": 95,
        "conv_pos_depth": 5,
        "conv_pos_groups": 16,
    },
    "demo": {
        "embed_dim": 96,
        "num_heads": 4,
        "depth": 2,
        "prenet_depth": 2,
        "mlp_ratio": 2.0,
        "num_extra_tokens": 4,
        "feature_encoder_spec": _DEMO_SPEC,
        "conv_pos_width": 95,
        "conv_pos_depth": 5,
        "conv_pos_groups": 16,
    },
}
# Large differs from base only in width and depth (data2vec 2.0 large audio recipe).
SHAPES["large"] = {**SHAPES["base"], "embed_dim": 1024, "num_heads": 16, "depth": 16, "prenet_depth": 8}


def model_config(shape: str = "demo") -> dict[str, Any]:
    """Return the full ``config.yaml`` content (as a dict) for a checkpoint shape.

    The keys mirror the published emotion2vec configs (data2vec 2.0 audio settings);
    every key FunASR's ``Emotion2vec``/``AudioEncoder`` reads is present.
    """
    if shape not in SHAPES:
        raise ValueError(f"unknown checkpoint shape {shape!r}; expected one of {sorted(SHAPES)}")
    s = SHAPES[shape]
    audio = {
        "type": "AUDIO",
        "prenet_depth": s["prenet_depth"],
        "prenet_layerdrop": 0.0,
        "prenet_dropout": 0.1,
        "start_drop_path_rate": 0.0,
        "end_drop_path_rate": 0.0,
        "num_extra_tokens": s["num_extra_tokens"],
        "init_extra_token_zero": False,
        "mask_noise_std": 0.01,
        "mask_prob_min": None,
        "mask_prob": 0.5,
        "inverse_mask": False,
        "mask_prob_adjust": 0.05,
        "keep_masked_pct": 0.0,
        "mask_length": 5,
        "add_masks": False,
        "remove_masks": False,
        "mask_dropout": 0.0,
        "encoder_zero_mask": True,
        "mask_channel_prob": 0.0,
        "mask_channel_length": 64,
        "ema_local_encoder": False,
        "local_grad_mult": 1.0,
        "use_alibi_encoder": True,
        "alibi_scale": 1.0,
        "learned_alibi": False,
        "alibi_max_pos": None,
        "learned_alibi_scale": True,
        "learned_alibi_scale_per_head": True,
        "learned_alibi_scale_per_layer": False,
        "num_alibi_heads": s["num_heads"],
        "model_depth": s["depth"],
        "decoder": None,
        "extractor_mode": "layer_norm",
        "feature_encoder_spec": s["feature_encoder_spec"],
        "conv_pos_width": s["conv_pos_width"],
        "conv_pos_groups": s["conv_pos_groups"],
        "conv_pos_depth": s["conv_pos_depth"],
        "conv_pos_pre_ln": False,
    }
    model_conf = {
        "loss_beta": 0.0,
        "loss_scale": None,
        "depth": s["depth"],
        "start_drop_path_rate": 0.0,
        "end_drop_path_rate": 0.0,
        "num_heads": s["num_heads"],
        "norm_eps": 1.0e-05,
        "norm_affine": True,
        "encoder_dropout": 0.1,
        "post_mlp_drop": 0.1,
        "attention_dropout": 0.1,
        "activation_dropout": 0.0,
        "dropout_input": 0.0,
        "layerdrop": 0.0,
        "embed_dim": s["embed_dim"],
        "mlp_ratio": s["mlp_ratio"],
        "layer_norm_first": False,
        "average_top_k_layers": s["depth"],
        "end_of_block_targets": False,
        "clone_batch": 1,
        "layer_norm_target_layer": False,
        "batch_norm_target_layer": False,
        "instance_norm_target_layer": True,
        "instance_norm_targets": False,
        "layer_norm_targets": False,
        "ema_decay": 0.999,
        "ema_end_decay": 0.99999,
        "ema_anneal_end_step": 20000,
        "ema_encoder_only": True,
        "max_update": 100000,
        "min_target_var": 0.1,
        "min_pred_var": 0.01,
        "supported_modality": "AUDIO",
        "mae_init": False,
        "normalize": True,
        "modalities": {"audio": audio},
    }
    return {
        "model": "Emotion2vec",
        "model_conf": model_conf,
        "tokenizer": "CharTokenizer",
        "tokenizer_conf": {"unk_symbol": "<unk>", "split_with_space": True},
        "emowatch": {"shape": shape},
    }


def instantiate(shape: str = "demo", *, seed: int = 0) -> torch.nn.Module:
    """Create a seeded, randomly initialised funasr ``Emotion2vec`` module (eval mode).

    Uses a private ``torch.Generator`` state (fork_rng) so the caller's global RNG is
    left untouched.
    """
    from emowatch.models.funasr_import import import_funasr
    from emowatch.models.loader import quiet_funasr_logging

    with quiet_funasr_logging():
        import_funasr()
        from funasr.models.emotion2vec.model import Emotion2vec

    cfg = model_config(shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = Emotion2vec(model_conf=copy.deepcopy(cfg["model_conf"]), vocab_size=len(TOKENS))
    module.eval()
    return module


def write_checkpoint(
    out_dir: str | Path,
    state_dict: Mapping[str, torch.Tensor],
    *,
    shape: str = "demo",
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``config.yaml``, ``model.pt``, ``tokens.txt`` and ``configuration.json``.

    ``state_dict`` tensors are stored contiguous, fp32, on CPU.  ``extra`` is merged into
    the ``emowatch`` section of config.yaml (e.g. training provenance).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = model_config(shape)
    if extra:
        cfg["emowatch"].update(dict(extra))
    (out / "config.yaml").write_text(
        yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    clean = {
        k: (v.detach().to("cpu").float() if v.is_floating_point() else v.detach().to("cpu"))
        .contiguous()
        .clone()
        for k, v in state_dict.items()
    }
    torch.save(clean, out / "model.pt")
    (out / "tokens.txt").write_text("\n".join(TOKENS) + "\n", encoding="utf-8")
    configuration = {
        "framework": "pytorch",
        "task": "emotion-recognition",
        "pipeline": {"type": "funasr-pipeline"},
        "model": {"type": "funasr"},
        "file_path_metas": {
            "init_param": "model.pt",
            "config": "config.yaml",
            "tokenizer_conf": {"token_list": "tokens.txt"},
        },
        "emowatch_shape": shape,
    }
    (out / "configuration.json").write_text(json.dumps(configuration, indent=2) + "\n")
    return out


def build_checkpoint(
    out_dir: str | Path,
    *,
    shape: str = "demo",
    seed: int = 0,
    state_dict: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Build a loadable checkpoint directory and return its path.

    Args:
        out_dir: target directory (created if missing; files are overwritten).
        shape: ``"demo"`` (tiny), ``"base"`` (emotion2vec base geometry) or ``"large"``
            (emotion2vec+ large geometry, ~1.25 GB written).
        seed: seed for the random initial weights (ignored when ``state_dict`` is given).
        state_dict: weights to store instead of a fresh random initialisation (must match
            the shape, e.g. the result of :mod:`emowatch.models.train`).
    """
    if state_dict is None:
        state_dict = instantiate(shape, seed=seed).state_dict()
    return write_checkpoint(out_dir, state_dict, shape=shape)
