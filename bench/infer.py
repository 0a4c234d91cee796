"""Benchmark: the batched :class:`~emowatch.models.engine.Engine` vs a FunASR ``generate`` loop.

``emowatch bench infer [--quick] [--json FILE]`` calls :func:`main`.

Workload (the streaming steady state): ``calls`` concurrent calls (default 64) each send
1 s chunks; every chunk is scored with ``context_s`` (default 2 s) of left context, so
each call yields one 3 s window per 1 s hop.  The audio is the bundled sample calls, cut
at a different offset for every call.  For each model shape (``demo``: the committed
demo checkpoint; ``base`` and ``large``: random weights in the emotion2vec base and
emotion2vec+ large geometry, built on the fly) the same windows are scored two ways, in
one process, on the same device:

* **funasr**: the reference path a straightforward integration would use, one
  ``AutoModel.generate(input=<window>, granularity="utterance")`` per chunk (the window
  is the engine's model input: context trimmed to whole 20 ms frames + 80 zero samples,
  so both paths see identical samples);
* **engine**: ``Engine.infer_batch`` on all ``calls`` windows of a hop at once, with the
  engine's defaults (``max_batch`` 64; equal-length windows run with no padding).

Per hop both paths run back to back, alternating which goes first, so that load from
other processes on a shared machine hits both alike.  Reported per shape
(``results``): audio seconds of new chunk audio scored per wall second
(``engine_audio_s_per_s``, ``funasr_audio_s_per_s``), their ``ratio``, the largest
probability difference between the engine and FunASR on the same windows
(``max_abs_prob_diff``), the engine's pass sizes, peak memory, and the live-call
capacity: one live call needs one window per hop, so the model time per live call is
``hop_s * engine_s / windows`` seconds per second of call and
``live_call_capacity = windows * hop_s / engine_s`` calls.
Numbers are reported, never asserted.
"""

from __future__ import annotations

import json
import os
import resource
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emowatch.bench.machine import machine_info
from emowatch.models.checkpoint import build_checkpoint
from emowatch.models.engine import Engine, Result, Window, model_input
from emowatch.models.loader import EmotionModel, load_model
from emowatch.streams.resources import demo_model_dir, samples_dir
from emowatch.topics.model_io import SAMPLE_RATE

__all__ = ["SHAPES", "QUICK_PLAN", "FULL_PLAN", "stream_rounds", "bench_model", "main"]

SHAPES = ("demo", "base", "large")
#: (concurrent calls, hops) per shape
QUICK_PLAN: dict[str, tuple[int, int]] = {"demo": (64, 3), "base": (8, 2), "large": (2, 2)}
FULL_PLAN: dict[str, tuple[int, int]] = {"demo": (64, 8), "base": (64, 2), "large": (64, 1)}
CHECK_WINDOWS = 8  #: windows per shape re-scored for the equivalence check


# ---------------------------------------------------------------------------- workload
def _library(min_seconds: float) -> np.ndarray:
    """The bundled sample calls back to back (synthetic speech if they are missing)."""
    from emowatch.models.synth import synth_call
    from emowatch.streams.audio.chunking import read_wav_mono

    parts = [read_wav_mono(p) for p in sorted(samples_dir().glob("*.wav"))]
    audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    if len(audio) < min_seconds * SAMPLE_RATE:
        extra = synth_call([("neutral", min_seconds / 2), ("angry", min_seconds / 2)], seed=7)
        audio = np.concatenate([audio, extra.astype(np.float32)])
    return audio.astype(np.float32)


def stream_rounds(calls: int, hops: int, *, context_s: float = 2.0, chunk_s: float = 1.0,
                  audio: np.ndarray | None = None) -> list[list[Window]]:
    """Per hop, one window per call: ``context_s`` left context + a ``chunk_s`` chunk.

    Call ``c`` reads the audio from its own offset (wrapping around), so windows differ
    between calls; hop ``h`` of a call is its stream advanced by ``h * chunk_s``.
    """
    ctx, chunk = int(round(context_s * SAMPLE_RATE)), int(round(chunk_s * SAMPLE_RATE))
    lib = _library(30.0) if audio is None else audio
    rounds = []
    for h in range(hops):
        hop = []
        for c in range(calls):
            start = (c * 12_347 + h * chunk) % len(lib)  # ~0.77 s apart, off the frame grid
            idx = np.arange(start, start + ctx + chunk) % len(lib)
            hop.append(Window((c, h), lib[idx], chunk))
        rounds.append(hop)
    return rounds


# ---------------------------------------------------------------------------- memory
class _PeakMemory:
    """Peak memory of a phase: CUDA allocator peak, or the process RSS high-water mark."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")
        self.kind = "cuda_max_memory_allocated" if self.cuda else "process_rss_high_water"

    def reset(self) -> None:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            return
        try:  # Linux: "5" resets VmHWM to the current RSS
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass

    def peak_mb(self) -> float:
        if self.cuda:
            return torch.cuda.max_memory_allocated() / 2**20
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------- timing
def _funasr_loop(model: EmotionModel, windows: Sequence[Window]) -> list[np.ndarray]:
    """The reference: one FunASR ``generate`` per window, utterance granularity."""
    out = []
    for w in windows:
        r = model.automodel.generate(input=model_input(w.audio, w.emit_samples),
                                     granularity="utterance", extract_embedding=False,
                                     disable_pbar=True)[0]
        out.append(np.asarray(r["scores"], dtype=np.float64))
    return out


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn: Any, device: str, mem: _PeakMemory) -> tuple[Any, float, float, float]:
    mem.reset()
    _sync(device)
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - t, time.process_time() - c, mem.peak_mb()


def _equivalence(engine: Engine, windows: Sequence[Window], funasr: Sequence[np.ndarray],
                 timed: Sequence[Any]) -> dict[str, float]:
    """Engine vs FunASR on the same windows, and the timed chunk output vs a whole pass.

    FunASR pools every frame of its input, so the engine scores the same windows with the
    whole window emitted; its last ``chunk`` frames must equal the timed pass's logits.
    """
    whole = engine.infer_batch([Window(w.key, w.audio, len(w.audio)) for w in windows])
    dp, dl = 0.0, 0.0
    for r, f, t in zip(whole, funasr, timed):
        if not (isinstance(r, Result) and isinstance(t, Result)):
            return {"max_abs_prob_diff": float("nan"), "max_abs_chunk_logit_diff": float("nan")}
        dp = max(dp, float(np.abs(r.probs - f).max()))
        dl = max(dl, float(np.abs(r.logits[-len(t.logits):] - t.logits).max()))
    return {"max_abs_prob_diff": dp, "max_abs_chunk_logit_diff": dl}


def bench_model(model: EmotionModel, rounds: Sequence[Sequence[Window]], *,
                chunk_s: float = 1.0, check_windows: int = CHECK_WINDOWS,
                engine_opts: dict[str, Any] | None = None) -> dict[str, Any]:
    """Time the FunASR loop and the engine on ``rounds`` (one list of windows per hop)."""
    dev = model.device
    engine = model.engine(**(engine_opts or {}))
    mem = _PeakMemory(dev)
    first = list(rounds[0])
    engine.infer_batch(first[:2])  # warm-up (oneDNN primitives, allocator)
    _funasr_loop(model, first[:1])
    plan = [len(g) for g in engine._plan([engine._prepare(i, w) for i, w in enumerate(first)])]
    t_f = t_e = c_f = c_e = 0.0
    peak_f = peak_e = 0.0
    per_round = []
    windows = 0
    eq: dict[str, float] = {"max_abs_prob_diff": 0.0, "max_abs_chunk_logit_diff": 0.0}
    checked = 0
    for i, hop in enumerate(rounds):
        hop = list(hop)
        runs: dict[str, tuple[Any, float, float, float]] = {}
        order = ("funasr", "engine") if i % 2 == 0 else ("engine", "funasr")
        for name in order:
            fn = (lambda h=hop: _funasr_loop(model, h)) if name == "funasr" else (
                lambda h=hop: engine.infer_batch(h))
            runs[name] = _timed(fn, dev, mem)
        (f_out, tf, cf, pf), (e_out, te, ce, pe) = runs["funasr"], runs["engine"]
        t_f, t_e, c_f, c_e = t_f + tf, t_e + te, c_f + cf, c_e + ce
        peak_f, peak_e = max(peak_f, pf), max(peak_e, pe)
        windows += len(hop)
        per_round.append({"windows": len(hop), "funasr_s": tf, "engine_s": te, "first": order[0]})
        n = min(len(hop), check_windows - checked)
        if n > 0:
            got = _equivalence(engine, hop[:n], f_out[:n], e_out[:n])
            eq = {k: max(eq[k], v) for k, v in got.items()}
            checked += n
        errors = [r for r in e_out if not isinstance(r, Result)]
        if errors:
            raise RuntimeError(f"engine returned errors in the benchmark: {errors[:3]}")
    window_s = len(first[0].audio) / SAMPLE_RATE
    round_ratios = sorted(r["funasr_s"] / r["engine_s"] for r in per_round)
    eng_aps, ref_aps = windows * chunk_s / t_e, windows * chunk_s / t_f
    return {
        "engine_audio_s_per_s": eng_aps,
        "funasr_audio_s_per_s": ref_aps,
        "ratio": t_f / t_e,
        "max_abs_prob_diff": eq["max_abs_prob_diff"],
        "max_abs_chunk_logit_diff": eq["max_abs_chunk_logit_diff"],
        "equivalence_windows": checked,
        "batch_sizes": dict(sorted(Counter(plan).items())),
        "peak_memory_mb": peak_e,
        "funasr_peak_memory_mb": peak_f,
        "peak_memory_kind": mem.kind,
        "compute_per_live_call_s": t_e / windows / chunk_s,
        "live_call_capacity": windows * chunk_s / t_e,
        "funasr_live_call_capacity": windows * chunk_s / t_f,
        "engine_windows_per_s": windows / t_e,
        "funasr_windows_per_s": windows / t_f,
        "engine_processed_audio_s_per_s": windows * window_s / t_e,
        "engine_cpu_s_per_window": c_e / windows,
        "funasr_cpu_s_per_window": c_f / windows,
        "ratio_median_round": float(np.median(round_ratios)),
        "ratio_best_round": round_ratios[-1],
        "engine_s": t_e,
        "funasr_s": t_f,
        "windows": windows,
        "rounds": per_round,
        "window_s": window_s,
        "chunk_s": chunk_s,
        "device": dev,
        "dtype": str(model.dtype).replace("torch.", ""),
        "funasr_dtype": "float32",
        "engine": {"max_batch": engine.max_batch, "fast": engine.fast,
                   "conv_micro_batch": engine.conv_micro_batch, "autocast": engine.autocast},
    }


# ---------------------------------------------------------------------------- shapes
def _load_shape(shape: str, tmp: Path, device: str) -> EmotionModel:
    if shape == "demo":
        return load_model(str(demo_model_dir()), device=device)
    return load_model(str(build_checkpoint(tmp / shape, shape=shape, seed=0)), device=device)


def _model_info(model: EmotionModel) -> dict[str, Any]:
    n = sum(p.numel() for p in model.module.parameters())
    enc = model.module.modality_encoders["AUDIO"]
    return {"name": model.name, "version": model.version, "parameters": n,
            "weights_mb": n * 4 / 2**20, "embed_dim": model.module.proj.in_features,
            "blocks": len(model.module.blocks), "prenet_blocks": len(enc.context_encoder.blocks),
            "num_heads": model.module.blocks[0].attn.num_heads}


def _machine(device: str) -> dict[str, Any]:
    extra: dict[str, Any] = {"torch_threads": torch.get_num_threads(), "device": device}
    if device.startswith("cuda"):
        extra["gpu"] = torch.cuda.get_device_name(0)
    return machine_info(("torch", "funasr"), **extra)


def _table(out: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"emotion2vec: engine vs FunASR generate loop (1 s chunks, "
                        f"{out['config']['context_s']:g} s context; a-s/s = audio s per s)")
    for col in ("shape", "dev", "windows", "FunASR a-s/s", "engine a-s/s",
                "ratio", "max|dp|", "live calls", "peak MB"):
        table.add_column(col, justify="right")
    for shape, r in out["results"].items():
        table.add_row(shape, f"{r['device']} {r['dtype'].replace('float', 'fp')}", str(r["windows"]),
                      f"{r['funasr_audio_s_per_s']:.2f}", f"{r['engine_audio_s_per_s']:.2f}",
                      f"{r['ratio']:.2f}x", f"{r['max_abs_prob_diff']:.1e}",
                      f"{r['live_call_capacity']:.1f}", f"{r['peak_memory_mb']:.0f}")
    Console(width=max(Console().width, 110)).print(table)


def main(quick: bool = False, json_path: Path | str | None = None, *, device: str = "auto",
         shapes: Sequence[str] | None = None, calls: int | None = None,
         context_s: float = 2.0) -> dict[str, Any]:
    """Run the benchmark for each shape; print a table and optionally write JSON.

    Args:
        quick: reduced sizes (:data:`QUICK_PLAN`, 1-3 min on 2 shared CPU cores) instead
            of :data:`FULL_PLAN` (5-12 min there).
        json_path: write the full report there (parent directories are created).
        device: ``auto`` (CUDA if available), ``cpu`` or ``cuda``; precision is the
            loader's default (fp32 on CPU, bf16 autocast on CUDA for the engine).
        shapes: subset of :data:`SHAPES` (default: all).
        calls: concurrent calls per hop for every shape (default: the plan's).
        context_s: left context per chunk.
    """
    from emowatch.models.loader import resolve_device

    dev = resolve_device(device)
    plan = dict(QUICK_PLAN if quick else FULL_PLAN)
    if calls is not None:
        plan = {k: (int(calls), h) for k, (_, h) in plan.items()}
    wanted = list(shapes or SHAPES)
    unknown = [s for s in wanted if s not in SHAPES]
    if unknown:
        raise ValueError(f"unknown shape(s) {unknown}; expected a subset of {list(SHAPES)}")
    out: dict[str, Any] = {
        "benchmark": "emowatch bench infer",
        "mode": "quick" if quick else "full",
        "machine": _machine(dev),
        "config": {"calls_default": 64, "context_s": context_s, "chunk_s": 1.0, "hop_s": 1.0,
                   "plan": {s: {"calls": plan[s][0], "hops": plan[s][1]} for s in wanted},
                   "funasr_call": "AutoModel.generate(input=window, granularity='utterance', "
                                  "extract_embedding=False), one call per window",
                   "engine_call": "Engine.infer_batch(all windows of a hop), default options",
                   "check_windows": CHECK_WINDOWS},
        "shapes": {},
        "results": {},
    }
    audio = _library(30.0)
    with tempfile.TemporaryDirectory(prefix="emowatch-bench-") as tmp:
        for shape in wanted:
            t0, load0 = time.perf_counter(), os.getloadavg()[0]
            model = _load_shape(shape, Path(tmp), dev)
            n_calls, hops = plan[shape]
            rounds = stream_rounds(n_calls, hops, context_s=context_s, audio=audio)
            res = bench_model(model, rounds)
            res["loadavg_1m"] = [load0, os.getloadavg()[0]]
            res["shape_wall_s"] = time.perf_counter() - t0
            out["shapes"][shape] = {"model": _model_info(model), "results": res}
            out["results"][shape] = res
            del model
            if dev.startswith("cuda"):
                torch.cuda.empty_cache()
    _table(out)
    if json_path:
        p = Path(json_path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return out


if __name__ == "__main__":  # pragma: no cover
    main(quick=True)
