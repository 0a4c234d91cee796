"""Benchmark: batched :class:`~emowatch.models.engine.Engine` vs a FunASR ``generate`` loop.

``emowatch bench infer [--quick] [--json out.json]`` calls :func:`main`.  For each model
shape (the committed demo checkpoint and a random-weight emotion2vec-base-shaped model)
it scores the same streaming windows (2 s left context + 1 s chunk) two ways:

* ``funasr_loop``: one ``AutoModel.generate`` call per window (FunASR's own path);
* ``engine``: ``Engine.infer_batch`` in batches of ``max_batch``.

It reports windows/s, the speed-up and the largest probability difference between the
two on whole-window scoring (an equivalence spot check).  Results are reported, never
asserted.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emowatch.models.checkpoint import build_checkpoint
from emowatch.models.engine import Result, Window, model_input
from emowatch.models.loader import DEMO_MODEL_DIR, EmotionModel, load_model

__all__ = ["bench_model", "main"]


def _windows(n: int, seed: int, context_s: float = 2.0, chunk_s: float = 1.0) -> list[Window]:
    rng = np.random.default_rng(seed)
    total = int((context_s + chunk_s) * 16000)
    return [Window(i, (0.1 * rng.standard_normal(total)).astype(np.float32), int(chunk_s * 16000))
            for i in range(n)]


def bench_model(model: EmotionModel, n_windows: int, max_batch: int, seed: int = 0) -> dict[str, Any]:
    """Time the FunASR loop and the engine on ``n_windows`` identical-length windows."""
    wins = _windows(n_windows, seed)
    eng = model.engine(max_batch=max_batch)
    eng.infer_batch(wins[:1])  # warm-up
    model.automodel.generate(input=model_input(wins[0].audio, 16000), disable_pbar=True)

    t = time.perf_counter()
    loop = [model.automodel.generate(input=model_input(w.audio, len(w.audio)), granularity="utterance",
                                     extract_embedding=False, disable_pbar=True)[0] for w in wins]
    t_loop = time.perf_counter() - t

    t = time.perf_counter()
    for i in range(0, len(wins), max_batch):
        eng.infer_batch(wins[i : i + max_batch])
    t_engine = time.perf_counter() - t

    whole = [Window(w.key, w.audio, len(w.audio)) for w in wins]  # FunASR pools all frames
    res = eng.infer_batch(whole)
    diff = max(float(np.abs(r.probs - np.asarray(f["scores"])).max())
               for r, f in zip(res, loop) if isinstance(r, Result))
    return {
        "model": model.name,
        "device": model.device,
        "dtype": str(model.dtype).replace("torch.", ""),
        "windows": n_windows,
        "window_s": 3.0,
        "max_batch": max_batch,
        "funasr_loop_windows_per_s": n_windows / t_loop,
        "engine_windows_per_s": n_windows / t_engine,
        "speedup": t_loop / t_engine,
        "max_abs_prob_diff": diff,
        "torch_threads": torch.get_num_threads(),
    }


def main(quick: bool = False, json_path: Path | str | None = None) -> list[dict[str, Any]]:
    """Run the benchmark for the demo and base shapes; print a table, optionally write JSON."""
    from rich.console import Console
    from rich.table import Table

    rows: list[dict[str, Any]] = []
    demo = load_model(str(DEMO_MODEL_DIR))
    rows.append({"shape": "demo", **bench_model(demo, 32 if quick else 256, 32)})
    with tempfile.TemporaryDirectory(prefix="emowatch-bench-") as tmp:
        base = load_model(str(build_checkpoint(Path(tmp) / "base", shape="base", seed=0)))
        rows.append({"shape": "base", **bench_model(base, 4 if quick else 64, 16)})
    table = Table(title="emotion2vec inference: batched engine vs FunASR generate loop")
    for col in ("shape", "device", "dtype", "windows", "funasr loop w/s", "engine w/s", "speed-up",
                "max |dp|"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["shape"], r["device"], r["dtype"], str(r["windows"]),
                      f"{r['funasr_loop_windows_per_s']:.1f}", f"{r['engine_windows_per_s']:.1f}",
                      f"{r['speedup']:.2f}x", f"{r['max_abs_prob_diff']:.1e}")
    Console().print(table)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return rows


if __name__ == "__main__":  # pragma: no cover
    main(quick=True)
