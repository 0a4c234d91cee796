"""Batched emotion2vec inference that reproduces FunASR's single-utterance results.

FunASR's ``Emotion2vec.inference`` scores one waveform at a time.  :class:`Engine` runs
many windows (left context + chunk) in one forward pass and returns, per window, the
frame logits ``proj(features)`` of the chunk's own 20 ms frames, the chunk probabilities
``softmax(mean(logits))`` and optionally the mean feature (embedding).

Exactness (see docs/model.md):

* every window is layer-normalised on its own valid samples, exactly like FunASR's
  ``F.layer_norm(source, source.shape)``;
* batch padding is hidden from the model with FunASR's own ``padding_mask`` (attention
  keys) **and** by zeroing padded frames before every relative-positional convolution
  (FunASR's conv runs over padded frames otherwise, which changes the real frames);
* windows of equal length run without any mask at all (the streaming steady state);
* the engine's passes use the equivalent fast paths of :mod:`emowatch.models.fastpath`
  (channels-last convolutions, fused attention, a batch-shared ALiBi bias; float
  rounding differences only), never FunASR's own ``generate`` calls.

Framing: the left context is trimmed to a multiple of 320 samples and 80 zero samples
are appended, so a window of ``n`` samples gives ``n // 320`` frames and a 1 s chunk gives
exactly 50 frames; chunk frame ``i`` covers chunk audio ``[20 i, 20 i + 25)`` ms. A
``Window(whole=True)`` skips that framing and is FunASR's answer for the waveform itself
(whole files: :mod:`emowatch.models.utterance`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from emowatch.models.fastpath import FastPaths
from emowatch.topics.model_io import SAMPLE_RATE, SAMPLES_PER_FRAME

if TYPE_CHECKING:  # pragma: no cover
    from emowatch.models.loader import EmotionModel

__all__ = [
    "Window",
    "Result",
    "ItemError",
    "Engine",
    "HOP_SAMPLES",
    "MIN_SAMPLES",
    "RIGHT_PAD",
    "model_input",
    "n_frames",
]

log = logging.getLogger(__name__)

HOP_SAMPLES = SAMPLES_PER_FRAME  #: feature-encoder stride (320): one frame per 20 ms at 16 kHz
MIN_SAMPLES = 400  #: receptive field of one frame (25 ms)
RIGHT_PAD = 80  #: zeros appended so that n samples give n // 320 frames
_LN_EPS = 1e-5  #: F.layer_norm default eps, as used by FunASR's per-utterance norm


@dataclass
class Window:
    """One unit of work: left context + chunk, raw float32 mono 16 kHz audio."""

    key: Any  #: opaque, returned as is
    audio: np.ndarray  #: left context followed by the chunk
    emit_samples: int  #: trailing samples that are the chunk's own; their frames are returned
    #: score ``audio`` exactly as FunASR's ``generate`` does (no trim, no right pad, every frame
    #: returned; ``emit_samples`` ignored): whole files, see :mod:`emowatch.models.utterance`
    whole: bool = False


@dataclass
class Result:
    """Scores of one window's chunk."""

    key: Any
    logits: np.ndarray  #: (emit_samples // 320, n_labels) float32, proj(features) per frame
    probs: np.ndarray  #: (n_labels,) float32 softmax(mean(logits)), unuse-masked
    #: (embed_dim,) mean feature of the emitted frames; (frames, embed_dim) with ``embeddings="frames"``
    embedding: np.ndarray | None = None


@dataclass
class ItemError:
    """A window that could not be scored; the rest of the batch is unaffected.

    Codes: ``too_short``, ``too_long``, ``non_finite``, ``bad_shape``, ``bad_dtype``,
    ``out_of_memory``, ``internal``.
    """

    key: Any
    code: str
    reason: str


def n_frames(n_samples: int) -> int:
    """Frames FunASR's feature encoder yields for ``n_samples`` (floor((N-400)/320)+1)."""
    return 0 if n_samples < MIN_SAMPLES else (n_samples - MIN_SAMPLES) // HOP_SAMPLES + 1


def model_input(audio: np.ndarray, emit_samples: int) -> np.ndarray:
    """The exact waveform the engine scores for a window (to feed FunASR in tests).

    Left context trimmed to a multiple of 320 samples, then 80 zero samples appended.
    """
    with np.errstate(over="ignore"):  # huge float64 -> inf, reported as non_finite
        a = np.asarray(audio, dtype=np.float32)
    trim = (len(a) - int(emit_samples)) % HOP_SAMPLES
    return np.concatenate([a[trim:], np.zeros(RIGHT_PAD, dtype=np.float32)])


@dataclass
class _Item:
    index: int
    key: Any
    wave: np.ndarray  # model input (trimmed + right pad), float32
    first: int  # first emitted frame
    count: int  # emitted frames


class _PosConvMask:
    """Forward pre-hooks zeroing padded frames before each positional convolution.

    Installed once per module; inactive (a no-op) unless :meth:`active` is entered, so
    FunASR's own ``generate`` on the same module is unaffected.
    """

    def __init__(self, module: torch.nn.Module) -> None:
        self.keep: torch.Tensor | None = None
        self.lock = threading.RLock()
        enc = module.modality_encoders["AUDIO"]
        self.handles = [
            m.register_forward_pre_hook(self._hook)
            for m in enc.relative_positional_encoder.modules()
            if isinstance(m, torch.nn.Conv1d)
        ]

    def _hook(self, _mod: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> Any:
        if self.keep is None:
            return None
        x = args[0]  # (B, C, T)
        return (x * self.keep[:, :, : x.shape[-1]].to(x.dtype),) + tuple(args[1:])

    @contextlib.contextmanager
    def active(self, keep: torch.Tensor | None):
        self.keep = keep
        try:
            yield
        finally:
            self.keep = None

    @classmethod
    def of(cls, module: torch.nn.Module) -> _PosConvMask:
        existing = getattr(module, "_emowatch_posmask", None)
        if existing is None:
            existing = cls(module)
            module._emowatch_posmask = existing  # type: ignore[attr-defined]
        return existing


class Engine:
    """Batched, per-item-error inference over :class:`Window` s.

    Args:
        model: the loaded :class:`~emowatch.models.loader.EmotionModel`.
        max_batch: most windows in one forward pass.
        max_batch_samples: most padded samples (batch size x padded length) per pass.
        max_attention_cells: most ``batch x frames^2`` per pass (attention memory).
        bucket_s: windows whose lengths fall in the same ``bucket_s`` bucket share a pass
            (padding limited to < one bucket); equal lengths run unmasked.
        max_seconds: longer windows are rejected with ``too_long``.
        embeddings: also return the mean feature per window.
        autocast: run under CUDA autocast at ``model.dtype`` (default: when it is not fp32).
        fast: use the equivalent fast paths of :mod:`emowatch.models.fastpath` (on CPU:
            channels-last convolutions, a micro-batched conv encoder, fused attention;
            everywhere: a batch-shared ALiBi bias).
        conv_micro_batch: windows per pass of the CPU conv feature encoder (it is local
            to each window; small passes stay in cache).
    """

    def __init__(
        self,
        model: EmotionModel,
        *,
        max_batch: int = 64,
        max_batch_samples: int = 64 * 5 * SAMPLE_RATE,
        max_attention_cells: int = 64 * 250 * 250,
        bucket_s: float = 0.5,
        max_seconds: float = 120.0,
        embeddings: bool = False,
        autocast: bool | None = None,
        fast: bool = True,
        conv_micro_batch: int = 2,
    ) -> None:
        self.model = model
        self.module = model.module
        self.device = torch.device(model.device)
        self.max_batch = max(1, int(max_batch))
        self.max_batch_samples = int(max_batch_samples)
        self.max_attention_cells = int(max_attention_cells)
        self.bucket = max(HOP_SAMPLES, int(round(bucket_s * model.sample_rate)))
        self.max_samples = int(max_seconds * model.sample_rate)
        self.embeddings = embeddings
        self.autocast = (model.dtype != torch.float32) if autocast is None else autocast
        self.n_labels = model.n_labels
        self._mask_vec = torch.zeros(self.n_labels)
        if model.masked:
            self._mask_vec[model.masked] = float("-inf")
        self._posmask = _PosConvMask.of(self.module)
        self.fast = bool(fast)
        self.conv_micro_batch = max(1, int(conv_micro_batch))
        self._fast = FastPaths.of(self.module)

    # ------------------------------------------------------------------ validation
    def _prepare(self, index: int, w: Window) -> _Item | ItemError:
        a = w.audio
        if not isinstance(a, np.ndarray):
            try:
                a = np.asarray(a)
            except Exception as e:  # noqa: BLE001 - anything unconvertible is bad input
                return ItemError(w.key, "bad_shape", f"audio is not an array: {e}")
        if a.ndim != 1:
            return ItemError(w.key, "bad_shape", f"audio must be mono 1-D, got shape {a.shape}")
        if not np.issubdtype(a.dtype, np.floating):
            return ItemError(w.key, "bad_dtype", f"audio must be float (got {a.dtype})")
        n = len(a)
        try:
            emit = n if w.whole else int(w.emit_samples)
        except (TypeError, ValueError):
            return ItemError(w.key, "bad_shape", f"emit_samples {w.emit_samples!r} is not an int")
        if emit > n or emit < 0:
            return ItemError(w.key, "bad_shape", f"emit_samples={emit} outside 0..{n}")
        if n < MIN_SAMPLES or emit < HOP_SAMPLES:
            return ItemError(
                w.key, "too_short",
                f"{n} samples with {emit} to emit; need >= {MIN_SAMPLES} samples and "
                f">= {HOP_SAMPLES} to emit (one 20 ms frame)",
            )
        if n > self.max_samples:
            return ItemError(
                w.key, "too_long",
                f"{n / self.model.sample_rate:.1f} s exceeds max_seconds="
                f"{self.max_samples / self.model.sample_rate:.1f}",
            )
        with np.errstate(over="ignore"):  # float32: float64 values beyond 3.4e38 become inf
            wave = np.asarray(a, dtype=np.float32) if w.whole else model_input(a, emit)
        if not np.isfinite(wave).all():
            return ItemError(w.key, "non_finite", "audio contains NaN or inf samples")
        if w.whole:
            return _Item(index, w.key, wave, 0, n_frames(n))
        count = emit // HOP_SAMPLES
        first = (len(wave) - RIGHT_PAD - emit) // HOP_SAMPLES  # trimmed context frames
        return _Item(index, w.key, wave, first, count)

    # ------------------------------------------------------------------ planning
    def _plan(self, items: list[_Item]) -> list[list[_Item]]:
        """Group by length bucket, then split by max_batch / memory caps."""
        items = sorted(items, key=lambda it: (len(it.wave), it.index))
        groups: list[list[_Item]] = []
        cur: list[_Item] = []
        cur_bucket = -1
        for it in items:
            L = len(it.wave)
            b = (L - 1) // self.bucket
            T = n_frames(L) + 16  # + extra tokens, generous
            new_b = len(cur) + 1
            too_big = cur and (
                new_b > self.max_batch
                or new_b * L > self.max_batch_samples
                or new_b * T * T > self.max_attention_cells
            )
            if cur and (b != cur_bucket or too_big):
                groups.append(cur)
                cur = []
            cur.append(it)
            cur_bucket = b
        if cur:
            groups.append(cur)
        return groups

    # ------------------------------------------------------------------ forward
    def _forward(self, group: list[_Item], embeddings: bool | str) -> list[Result | ItemError]:
        dev = self.device
        lengths = [len(it.wave) for it in group]
        Lmax = max(lengths)
        B = len(group)
        src = np.zeros((B, Lmax), dtype=np.float32)
        for r, it in enumerate(group):
            src[r, : lengths[r]] = it.wave
        x = torch.from_numpy(src).to(dev)
        uniform = all(L == Lmax for L in lengths)
        if uniform:
            x = F.layer_norm(x, (Lmax,), eps=_LN_EPS)
            pad_mask = keep = None
        else:
            lens = torch.tensor(lengths, device=dev)
            valid = torch.arange(Lmax, device=dev)[None, :] < lens[:, None]
            # FunASR: F.layer_norm(source, source.shape) on each unpadded waveform.
            rows = [F.layer_norm(x[r, :L], (L,), eps=_LN_EPS) for r, L in enumerate(lengths)]
            x = torch.zeros_like(x)
            for r, L in enumerate(lengths):
                x[r, :L] = rows[r]
            pad_mask = ~valid
            tf = torch.tensor([n_frames(L) for L in lengths], device=dev)
            keep = (torch.arange(n_frames(Lmax), device=dev)[None, :] < tf[:, None])
            keep = keep[:, None, :].float()
        ac = (
            torch.autocast(device_type=dev.type, dtype=self.model.dtype)
            if self.autocast and dev.type == "cuda"
            else contextlib.nullcontext()
        )
        fast = self._fast.active(conv=self.fast, attention=self.fast, alibi=self.fast,
                                 conv_micro_batch=self.conv_micro_batch)
        with self._posmask.lock, self._posmask.active(keep), fast, ac:
            feats = self.module.extract_features(x, padding_mask=pad_mask)["x"]
            logits = self.module.proj(feats)
        logits = logits.float()
        out: list[Result | ItemError] = []
        mask_vec = self._mask_vec.to(dev)
        for r, it in enumerate(group):
            lg = logits[r, it.first : it.first + it.count]
            probs = torch.softmax(lg.mean(dim=0) + mask_vec, dim=-1)
            emb = feats[r, it.first : it.first + it.count].float() if embeddings else None
            if emb is not None and embeddings != "frames":
                emb = emb.mean(dim=0)
            lg_np = lg.cpu().numpy().astype(np.float32, copy=False)
            pr_np = probs.cpu().numpy().astype(np.float32, copy=False)
            if not (np.isfinite(lg_np).all() and np.isfinite(pr_np).all()):
                out.append(ItemError(it.key, "non_finite", "model produced non-finite scores"))
                continue
            out.append(Result(
                key=it.key, logits=lg_np, probs=pr_np,
                embedding=None if emb is None else emb.cpu().numpy().astype(np.float32),
            ))
        return out

    def _run(self, group: list[_Item], embeddings: bool | str) -> list[Result | ItemError]:
        try:
            return self._forward(group, embeddings)
        except torch.cuda.OutOfMemoryError as e:
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            if len(group) == 1:
                return [ItemError(group[0].key, "out_of_memory", str(e).splitlines()[0])]
            half = len(group) // 2
            return self._run(group[:half], embeddings) + self._run(group[half:], embeddings)
        except Exception as e:  # noqa: BLE001 - errors are data; one bad pass != dead worker
            log.exception("inference pass of %d windows failed", len(group))
            return [ItemError(it.key, "internal", f"{type(e).__name__}: {e}") for it in group]

    def infer_batch(
        self, windows: Sequence[Window], *, embeddings: bool | str | None = None
    ) -> list[Result | ItemError]:
        """Score ``windows``; the output has the same length and order as the input.

        ``embeddings``: True for the mean feature, ``"frames"`` for every emitted frame's feature."""
        emb = self.embeddings if embeddings is None else embeddings
        out: list[Result | ItemError | None] = [None] * len(windows)
        items: list[_Item] = []
        for i, w in enumerate(windows):
            p = self._prepare(i, w)
            if isinstance(p, ItemError):
                out[i] = p
            else:
                items.append(p)
        with torch.inference_mode():
            for group in self._plan(items):
                for it, res in zip(group, self._run(group, emb)):
                    out[it.index] = res
        return [
            r if r is not None else ItemError(windows[i].key, "internal", "no result produced")
            for i, r in enumerate(out)
        ]
