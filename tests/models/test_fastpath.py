"""The engine's fast paths compute FunASR's result and stay out of FunASR's own calls."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emowatch.models.checkpoint import instantiate
from emowatch.models.engine import Window, n_frames
from emowatch.models.fastpath import FastPaths, conv1d_channels_last


@pytest.mark.parametrize(
    "cin,cout,k,s,pad,groups,length",
    [(1, 32, 10, 5, 0, 1, 48080),  # the waveform layer (folded into 5-sample blocks)
     (32, 64, 3, 2, 0, 1, 9615),
     (64, 64, 2, 2, 0, 1, 601),
     (96, 96, 19, 1, 9, 16, 150)],  # relative positional conv (grouped, padded)
)
def test_conv1d_channels_last_equals_conv1d(cin, cout, k, s, pad, groups, length):
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(cin, cout, k, stride=s, padding=pad, groups=groups, bias=groups > 1)
    x = torch.randn(3, cin, length)
    with torch.inference_mode():
        ref, got = conv(x), conv1d_channels_last(conv, x)
        got_view = conv1d_channels_last(conv, x.transpose(1, 2).contiguous().transpose(1, 2))
    assert got.shape == ref.shape
    assert got.transpose(1, 2).is_contiguous()  # (B, T, C) memory: FunASR's transposes are free
    assert (got - ref).abs().max().item() < 1e-5
    assert torch.equal(got, got_view)


@pytest.fixture()
def module_and_input():
    mod = instantiate("demo", seed=3)
    x = F.layer_norm(torch.randn(4, 16080, generator=torch.Generator().manual_seed(1)), (16080,))
    pad = torch.zeros(4, 16080, dtype=torch.bool)
    pad[1, 12000:] = True
    pad[3, 9000:] = True
    return mod, x * ~pad, pad


def _feats(mod, x, pad):
    with torch.inference_mode():
        return mod.extract_features(x, padding_mask=pad)["x"]


def test_inactive_fast_paths_leave_funasr_bit_identical(module_and_input):
    mod, x, pad = module_and_input
    before = _feats(mod, x, pad), _feats(mod, x, None)
    fp = FastPaths.of(mod)
    assert FastPaths.of(mod) is fp  # installed once
    kinds = [p.split(":")[0] for p in fp.patched]
    assert kinds.count("attention") == 4 and "alibi" in kinds and kinds.count("conv") >= 12
    after = _feats(mod, x, pad), _feats(mod, x, None)
    assert all(torch.equal(a, b) for a, b in zip(before, after))


def test_active_fast_paths_match_funasr(module_and_input):
    mod, x, pad = module_and_input
    ref_pad, ref = _feats(mod, x, pad), _feats(mod, x, None)
    fp = FastPaths.of(mod)
    with fp.active(conv_micro_batch=1):
        got_pad, got = _feats(mod, x, pad), _feats(mod, x, None)
    with fp.active(conv_micro_batch=3):
        got_mb3 = _feats(mod, x, None)
    with fp.active(conv=False, attention=False):  # batch-shared ALiBi alone is exact
        alibi_only = _feats(mod, x, pad)
    assert torch.equal(alibi_only, ref_pad)
    keep = torch.zeros(got_pad.shape[:2], dtype=torch.bool)  # padded frames are don't-care
    for r, n in enumerate((~pad).sum(1).tolist()):
        keep[r, : n_frames(n)] = True
    assert (got_pad - ref_pad)[keep].abs().max().item() < 1e-4
    assert (got - ref).abs().max().item() < 1e-4
    assert (got_mb3 - got).abs().max().item() < 1e-5


def test_engine_fast_and_plain_agree(demo_model, noise):
    wins = [Window(i, noise(i, n), min(n, 16000)) for i, n in enumerate([48000, 48000, 30000, 17000])]
    fast = demo_model.engine(conv_micro_batch=2).infer_batch(wins)
    plain = demo_model.engine(fast=False).infer_batch(wins)
    for a, b in zip(fast, plain):
        assert a.logits.shape == b.logits.shape
        assert np.abs(a.logits - b.logits).max() < 1e-4
        assert np.abs(a.probs - b.probs).max() < 1e-5
