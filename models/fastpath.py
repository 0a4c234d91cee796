"""Engine-only speed-ups that compute what FunASR's ``Emotion2vec`` computes.

Four replacements are installed once per module as per-instance ``forward`` wrappers.
They act only in a thread that is inside :meth:`FastPaths.active` (the engine's passes);
FunASR's own ``generate`` on the same module, and every other thread, run the original
code.  Same weights and the same operations; the results differ from FunASR's by float
rounding only (~1e-6 on logits; tests/models/test_fastpath.py and the engine's
equivalence tests check it).

* **Channels-last convolutions (CPU).**  FunASR's ``layer_norm``-mode conv feature
  encoder and its relative positional encoder run ``Conv1d -> transpose -> LayerNorm ->
  transpose -> GELU``; each transpose costs a full copy of a large activation (the first
  encoder layer of the base/large shape writes 512 x 9,600 floats per 3 s window).
  Every ``Conv1d`` there runs as a ``1 x k`` oneDNN ``conv2d`` on a channels-last
  ``(B, C, 1, T)`` view instead and returns a ``(B, C, T)`` view of ``(B, T, C)`` memory,
  so FunASR's own ``TransposeLast`` calls become free, the layer norms read contiguous
  rows, and the GELUs there run over the rows too (same values; the transposed traversal
  was ~1.5x slower).  Forward pre-hooks (the engine's padded-frame zeroing) still run first.
* **Conv encoder in micro-batches (CPU).**  The feature encoder is local to each window,
  and a 64-window batch of 9,600-frame activations falls out of the CPU caches (the
  batched encoder measured ~1.5x slower per window than one window at a time), so it
  runs ``conv_micro_batch`` windows at a time and the results are concatenated.
* **Fused attention (CPU, fp32).**  ``AltAttention`` computes
  ``softmax(q k^T * scale + alibi, masked keys -inf) v`` with separate matmul / add /
  softmax passes over a ``(B, heads, T, T)`` tensor; ``F.scaled_dot_product_attention``
  computes the same expression with the same bias in one fused kernel.
* **ALiBi bias shared across the batch (all devices).**  FunASR materialises the
  attention bias as ``(B, heads, T, T)`` and rescales it in every block; it does not
  depend on the window, so a ``(1, heads, T, T)`` bias broadcasts to bit-identical
  attention at 1/B of the memory traffic.

Modules that do not look like FunASR's (cosine attention, fewer ALiBi heads than heads,
training mode) keep the original forward.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["FastPaths", "conv1d_channels_last"]


def conv1d_channels_last(conv: torch.nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` for ``x`` ``(B, C, T)`` as a channels-last ``conv2d``.

    Returns ``(B, C_out, T_out)`` whose memory is ``(B, T_out, C_out)``-contiguous; an input
    that is already such a view is used without a copy.
    """
    if isinstance(conv.padding, str):  # "same"/"valid": let PyTorch handle it
        return conv._conv_forward(x, conv.weight, conv.bias)
    k, s = conv.kernel_size[0], conv.stride[0]
    if (conv.in_channels == 1 and conv.groups == 1 and conv.padding[0] == 0
            and conv.dilation[0] == 1 and s > 1 and k % s == 0 and x.shape[-1] >= k):
        # One input channel (the waveform): a channels-last tensor with C=1 is ambiguous
        # and oneDNN writes the output channels-first.  Fold the signal into blocks of
        # `s` samples instead: conv(k, stride s) over 1 channel == conv(k/s, stride 1)
        # over s channels, same products and sums, output channels-last.
        b, m = x.shape[0], k // s
        t = (x.shape[-1] - k) // s + 1
        blocks = x[:, 0, : (t + m - 1) * s].reshape(b, t + m - 1, s)  # (B, T', s)
        x4 = blocks.transpose(1, 2).unsqueeze(2).contiguous(memory_format=torch.channels_last)
        w = conv.weight.reshape(conv.out_channels, m, s).permute(0, 2, 1).unsqueeze(2)
        return F.conv2d(x4, w, conv.bias).squeeze(2)
    x4 = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
    y = F.conv2d(
        x4, conv.weight.unsqueeze(2), conv.bias,
        stride=(1, conv.stride[0]), padding=(0, conv.padding[0]),
        dilation=(1, conv.dilation[0]), groups=conv.groups,
    )
    return y.squeeze(2)


def _gelu_rows(gelu: torch.nn.GELU, x: torch.Tensor) -> torch.Tensor:
    """``gelu(x)`` for a ``(B, C, T)`` view of ``(B, T, C)`` memory, computed on the rows.

    Elementwise, so the values are identical; the contiguous traversal is ~1.5x faster.
    """
    return F.gelu(x.transpose(1, 2), approximate=gelu.approximate).transpose(1, 2)


def _attention(attn: torch.nn.Module, x: torch.Tensor, padding_mask: torch.Tensor | None,
               alibi_bias: torch.Tensor | None) -> torch.Tensor:
    """FunASR ``AltAttention.forward`` (non-cosine) through the fused SDPA kernel."""
    b, n, c = x.shape
    h = attn.num_heads
    q, k, v = attn.qkv(x).reshape(b, n, 3, h, c // h).permute(2, 0, 3, 1, 4).unbind(0)
    bias = alibi_bias.to(q.dtype) if alibi_bias is not None else None
    if padding_mask is not None and padding_mask.any():
        keys = padding_mask.to(torch.bool)[:, None, None, :]
        if bias is None:
            bias = torch.zeros((b, 1, n, n), dtype=q.dtype, device=q.device)
        bias = bias.masked_fill(keys, float("-inf"))
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=attn.scale)
    return attn.proj(y.transpose(1, 2).reshape(b, n, c))


class FastPaths:
    """Per-module installer of the replacements (see the module docstring).

    Args:
        module: funasr ``Emotion2vec``.
    """

    def __init__(self, module: torch.nn.Module) -> None:
        self._tls = threading.local()
        enc = module.modality_encoders["AUDIO"]
        self.patched: list[str] = []
        for part in (enc.local_encoder, enc.relative_positional_encoder):
            for m in part.modules():
                if type(m) is torch.nn.Conv1d:
                    self._patch(m, "conv", self._conv_ok, conv1d_channels_last)
                elif type(m) is torch.nn.GELU:
                    self._patch(m, "conv", self._gelu_ok, _gelu_rows)
        self._patch(enc.local_encoder, "conv", self._micro_ok, self._micro_batched)
        blocks = list(module.blocks) + list(getattr(enc.context_encoder, "blocks", []))
        for blk in blocks:
            a = getattr(blk, "attn", None)
            if (a is not None and type(a).__name__ == "AltAttention"
                    and not getattr(a, "cosine_attention", True)):
                self._patch(a, "attention", self._attention_ok, _attention)
        alibi = getattr(enc, "get_alibi_bias", None)
        if alibi is not None:
            def shared_alibi(*args: Any, **kwargs: Any) -> torch.Tensor:
                opts = self._opts()
                if opts is not None and opts["alibi"] and "batch_size" in kwargs:
                    kwargs = {**kwargs, "batch_size": 1}  # (1, H, T, T) broadcasts
                return alibi(*args, **kwargs)
            enc.get_alibi_bias = shared_alibi
            self.patched.append("alibi")

    # ------------------------------------------------------------------ plumbing
    def _opts(self) -> dict[str, Any] | None:
        return getattr(self._tls, "opts", None)

    def _patch(self, mod: torch.nn.Module, kind: str,
               ok: Callable[..., bool], fast: Callable[..., torch.Tensor]) -> None:
        original = mod.forward

        def forward(*args: Any, **kwargs: Any) -> torch.Tensor:
            opts = self._opts()
            if opts is not None and opts[kind] and not mod.training and ok(mod, *args, **kwargs):
                return fast(mod, *args, **kwargs)
            return original(*args, **kwargs)

        mod._emowatch_original_forward = original  # type: ignore[assignment]
        mod.forward = forward  # type: ignore[method-assign]
        self.patched.append(f"{kind}:{type(mod).__name__}")

    # ------------------------------------------------------------------ conditions
    @staticmethod
    def _conv_ok(mod: torch.nn.Module, x: torch.Tensor, *args: Any) -> bool:
        return x.device.type == "cpu" and x.dim() == 3 and not args

    @staticmethod
    def _gelu_ok(mod: torch.nn.Module, x: torch.Tensor, *args: Any) -> bool:
        return x.dim() == 3 and not x.is_contiguous() and x.transpose(1, 2).is_contiguous()

    def _micro_ok(self, mod: torch.nn.Module, x: torch.Tensor, *args: Any) -> bool:
        opts = self._opts()
        return (x.device.type == "cpu" and x.dim() == 2 and not args and opts is not None
                and x.shape[0] > opts["conv_micro_batch"])

    def _micro_batched(self, mod: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        mb = self._opts()["conv_micro_batch"]  # type: ignore[index]
        original = mod._emowatch_original_forward  # type: ignore[attr-defined]
        parts = [original(x[i : i + mb]).transpose(1, 2) for i in range(0, x.shape[0], mb)]
        return torch.cat(parts).transpose(1, 2)  # (B, C, T) view of (B, T, C) memory

    @staticmethod
    def _attention_ok(mod: torch.nn.Module, x: torch.Tensor, padding_mask: Any = None,
                      alibi_bias: torch.Tensor | None = None) -> bool:
        return (x.device.type == "cpu" and x.dtype == torch.float32
                and (alibi_bias is None or alibi_bias.size(1) == mod.num_heads))

    # ------------------------------------------------------------------ public
    @contextlib.contextmanager
    def active(self, *, conv: bool = True, attention: bool = True, alibi: bool = True,
               conv_micro_batch: int = 1) -> Iterator[None]:
        """Use the replacements in the calling thread for the duration of the block."""
        prev = self._opts()
        self._tls.opts = {"conv": conv, "attention": attention, "alibi": alibi,
                          "conv_micro_batch": max(1, int(conv_micro_batch))}
        try:
            yield
        finally:
            self._tls.opts = prev

    @classmethod
    def of(cls, module: torch.nn.Module) -> FastPaths:
        """The module's installer, created on first use."""
        existing = getattr(module, "_emowatch_fastpaths", None)
        if existing is None:
            existing = cls(module)
            module._emowatch_fastpaths = existing  # type: ignore[attr-defined]
        return existing
