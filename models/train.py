"""Train the pipeline-demo checkpoint (``models/demo/``) on synthetic prosody.

This is NOT an emotion model: it is the real FunASR ``Emotion2vec`` architecture in the
tiny ``demo`` shape, trained for a few minutes on CPU to map the synthetic styles of
:mod:`emowatch.models.synth` to emotion2vec+ classes (angry / neutral / sad / unknown),
so that the end-to-end demo produces meaningful alerts without downloading 1 GB of
weights.  Run::

    python -m emowatch.models.train            # writes models/demo/
    python -m emowatch.models.train /tmp/demo --steps 300

Training is seeded (numpy + torch, ``torch.use_deterministic_algorithms``, 2 threads) and
reproduces the same ``model.pt`` bit-for-bit on the same machine / torch build; other
CPUs or torch versions may differ in the last float bits (different SIMD kernels).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from emowatch.models.checkpoint import TOKENS, instantiate, write_checkpoint
from emowatch.models.engine import HOP_SAMPLES, RIGHT_PAD
from emowatch.models.synth import CLASSES, synth_clip
from emowatch.streams.resources import demo_model_dir
from emowatch.topics.model_io import SAMPLE_RATE

__all__ = ["train_demo", "CLASS_TO_INDEX", "MODEL_CARD"]

#: synthetic class -> emotion2vec+ output index (tokens.txt order)
CLASS_TO_INDEX: dict[str, int] = {
    "angry": TOKENS.index("生气/angry"),
    "neutral": TOKENS.index("中立/neutral"),
    "sad": TOKENS.index("难过/sad"),
    "unknown": TOKENS.index("<unk>"),
}

MODEL_CARD = """\
# emowatch pipeline-demo model

**This is a PIPELINE DEMO MODEL, NOT an emotion model.** Do not use its scores for
anything but exercising the emowatch pipeline.

* Architecture: FunASR `Emotion2vec` (the emotion2vec / data2vec 2.0 audio encoder) in a
  tiny shape (96-dim, 2 prenet + 2 main blocks, {params:,} parameters, {size_mb:.1f} MB),
  with the standard 20 ms frame rate and the 9 emotion2vec+ output classes, so it loads
  with `funasr.AutoModel(model="models/demo")` exactly like the real model.
* Training: {steps} steps, seed {seed}, on synthetic "speech-like" clips from
  `emowatch.models.synth` (harmonic voice source + formants + syllable envelopes):
  agitated prosody (high, rising, fast, bright) -> `angry`; calm prosody -> `neutral`;
  low, slow, dark prosody -> `sad`; noise / hum / near silence -> `unknown`. It has never
  heard a human voice and will mislabel real speech.
* Reproduce: `python -m emowatch.models.train` (a few minutes on 2 CPU cores). Re-running
  regenerates `model.pt` bit-for-bit on the same machine and torch build (deterministic
  CPU algorithms, 2 threads); other CPUs / torch versions may differ in the last bits.
* Bundled sample results (engine, fp32 CPU) at training time:

{results}

  (`escalating_01.wav` is calm for its first 7 s: 7/14 angry chunks is the intended result.)

## Quiet, office, phone: the seed's three scenarios

The seed measured its model in three recording conditions: quiet, an office background (keyboard, air
conditioning) and a phone played on its loudspeaker (low quality, echo). `emowatch model evaluate --augment
quiet,office,phone` builds them from clean audio (docs/model.md, section 7). This model at training time, on the
generated synthetic set (20 clips of 3 s per class, seed 0; office noise at 10 dB SNR; phone = 300-3400 Hz band,
loudspeaker soft clipping, 0.4 s RT60 room echo; prediction = argmax over all nine classes):

{degradation}

Reproduce:

```bash
emowatch model make-testset --out /tmp/set --per-class 20 --seed 0 --seconds 3
emowatch model evaluate --labels /tmp/set/labels.csv --model models/demo --augment quiet,office,phone \\
    --weights quiet=0.5,office=0.3,phone=0.2 [--out /tmp/set/report]
```

Synthetic prosody is not speech: these numbers say how this pipeline model reacts to the scenarios, not how an
emotion model would (why it fails on the phone: docs/model.md, section 7).

## Using the real emotion2vec+ large model

Point `EMOWATCH_MODEL__MODEL` at it; nothing else changes:

```bash
EMOWATCH_MODEL__MODEL=iic/emotion2vec_plus_large  emowatch worker infer      # downloads from ModelScope
EMOWATCH_MODEL__MODEL=emotion2vec/emotion2vec_plus_large  emowatch worker infer  # Hugging Face
# offline: download once, then use the directory
modelscope download --model iic/emotion2vec_plus_large --local_dir /models/e2v_large
EMOWATCH_MODEL__MODEL=/models/e2v_large emowatch worker infer
```
"""


def _pool(rng: np.random.Generator, per_class: int, seconds: float) -> dict[str, list[np.ndarray]]:
    return {c: [synth_clip(c, seconds, rng) for _ in range(per_class)] for c in CLASSES}


def _batch(rng: np.random.Generator, pool: dict[str, list[np.ndarray]], batch: int,
           min_s: float, max_s: float, p_mix: float) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Equal-length random crops (engine framing: multiple of 320 + 80), layer-normalised.

    Returns ``(x, frame_targets (B, T), mixed)``.  With probability ``p_mix`` the batch
    is made of two-class transitions (class A then class B at a random frame) so that
    frame logits learn to follow local prosody, as the streaming timeline needs.
    """
    n_hop = int(rng.integers(int(min_s * SAMPLE_RATE) // HOP_SAMPLES, int(max_s * SAMPLE_RATE) // HOP_SAMPLES + 1))
    L = n_hop * HOP_SAMPLES + RIGHT_PAD
    mixed = bool(rng.random() < p_mix)

    def crop(c: str) -> np.ndarray:
        clip = pool[c][int(rng.integers(len(pool[c])))]
        start = int(rng.integers(0, len(clip) - L + 1))
        return clip[start : start + L]

    xs, ys = [], []
    for i in range(batch):
        a = CLASSES[i % len(CLASSES)]
        y = np.full(n_hop, CLASS_TO_INDEX[a], dtype=np.int64)
        x = crop(a)
        if mixed:
            b = CLASSES[(i + 1 + int(rng.integers(len(CLASSES) - 1))) % len(CLASSES)]
            cut = int(rng.integers(n_hop // 4, 3 * n_hop // 4 + 1))
            x = np.concatenate([x[: cut * HOP_SAMPLES], crop(b)[cut * HOP_SAMPLES :]])
            y[cut:] = CLASS_TO_INDEX[b]
        xs.append(x)
        ys.append(y)
    xt = F.layer_norm(torch.from_numpy(np.stack(xs)), (L,))  # FunASR's per-utterance norm
    return xt, torch.from_numpy(np.stack(ys)), mixed


def _progress(enabled: bool, total: int):
    if not enabled:
        return None
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("[bold]train demo"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TextColumn("{task.fields[info]}"), TimeRemainingColumn())


def train_demo(
    out_dir: str | Path | None = None,
    *,
    seed: int = 0,
    steps: int = 240,
    batch: int = 16,
    lr: float = 2e-3,
    per_class: int = 48,
    threads: int = 2,
    label_smoothing: float = 0.1,
    p_mix: float = 0.3,
    progress: bool = True,
    evaluate: bool = True,
) -> dict[str, Any]:
    """Train the demo-shape Emotion2vec on synthetic clips and write the checkpoint
    (to ``out_dir``, default the bundled ``models/demo``).

    Returns a dict with the final loss, seconds taken, the bundled-sample evaluation
    (see :func:`evaluate_samples`) and the per-scenario metrics on the generated set
    (:func:`~emowatch.models.quality.degradation.measure_degradation`), both written into the model card.
    """
    t0 = time.time()
    out_dir = demo_model_dir() if out_dir is None else out_dir
    old_threads, old_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        rng = np.random.default_rng(seed)
        pool = _pool(rng, per_class, 3.5)
        module = instantiate("demo", seed=seed)
        module.train()
        params = [p for p in module.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
        warm = max(1, steps // 10)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
        losses: list[float] = []
        bar = _progress(progress, steps)
        task = bar.add_task("train", total=steps, info="") if bar else None
        if bar:
            bar.start()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)  # dropout
            for _ in range(steps):
                x, y, mixed = _batch(rng, pool, batch, 1.0, 3.0, p_mix)
                feats = module.extract_features(x, padding_mask=None, mask=False)["x"]
                logits = module.proj(feats)  # (B, T, V)
                frame = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                        label_smoothing=label_smoothing)
                if mixed:
                    loss = frame
                else:
                    loss = 0.5 * frame + F.cross_entropy(
                        logits.mean(dim=1), y[:, 0], label_smoothing=label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                losses.append(float(loss.detach()))
                if bar:
                    bar.update(task, advance=1, info=f"loss {np.mean(losses[-20:]):.3f}")
        if bar:
            bar.stop()
        module.eval()
        n_params = sum(p.numel() for p in module.parameters())
        out = write_checkpoint(out_dir, module.state_dict(), shape="demo", extra={
            "name": "emowatch-demo-e2v",
            "trained": {"seed": seed, "steps": steps, "batch": batch, "lr": lr,
                        "per_class": per_class, "label_smoothing": label_smoothing,
                        "p_mix": p_mix},
        })
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)
    summary = {"loss": float(np.mean(losses[-20:])), "seconds": time.time() - t0, "samples": []}
    if not evaluate:
        return summary
    from emowatch.models.evaluate import evaluate_samples, format_results
    from emowatch.models.loader import load_model
    from emowatch.models.quality.degradation import degradation_table, measure_degradation

    results = evaluate_samples(str(out))
    quality = measure_degradation(load_model(str(out), device="cpu", precision="fp32"))
    size_mb = (Path(out) / "model.pt").stat().st_size / 1e6
    (Path(out) / "MODEL_CARD.md").write_text(MODEL_CARD.format(
        params=n_params, size_mb=size_mb, steps=steps, seed=seed, results=format_results(results),
        degradation=degradation_table(quality)), encoding="utf-8")
    summary.update(samples=results, degradation=quality["scenarios"], seconds=time.time() - t0)
    return summary


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - CLI
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", nargs="?", default=str(demo_model_dir()))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=240)
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    r = train_demo(a.out_dir, seed=a.seed, steps=a.steps, progress=not a.no_progress)
    from emowatch.models.evaluate import format_results

    print(f"loss {r['loss']:.4f} in {r['seconds']:.0f} s -> {a.out_dir}")
    print(format_results(r["samples"]))


if __name__ == "__main__":  # pragma: no cover
    main()
