"""How far the stream's framing is from FunASR's answer, for whole files and for 1 s / 3 s windows.

``python -m emowatch.bench.whole_files [--shape base] [--model DIR]`` prints the table of
docs/model.md "Whole files vs streamed windows". The reference is always FunASR's own
``AutoModel.generate(granularity="utterance")`` on the audio in question. Compared with it:

* ``whole``: the whole-file path (:func:`emowatch.models.utterance.score_files`), which the console uses;
* ``framed``: the whole file in one window with the stream's framing (left trim to whole frames,
  80 zero samples appended);
* ``stream``: the call as the pipeline scores it (1 s chunks, 2 s left context),
  ``softmax(mean(all chunk frame logits))``;
* ``win1`` / ``win3``: every 1 s / 3 s window cut from the file, framed window vs FunASR on the window.

Values are max |p - p_funasr| over the classes, max over files / windows.
"""
from __future__ import annotations

import argparse
import tempfile

import numpy as np

from emowatch.models.engine import Result, Window
from emowatch.models.evaluate import stream_windows
from emowatch.models.loader import EmotionModel, load_model
from emowatch.models.synth import synth_call
from emowatch.models.timeline import softmax
from emowatch.models.utterance import score_files
from emowatch.streams.audio.chunking import read_wav_mono
from emowatch.streams.resources import demo_model_dir, sample_manifest
from emowatch.topics.model_io import SAMPLE_RATE


def files(max_s: float = 30.0) -> list[tuple[str, np.ndarray]]:
    """The bundled samples (cut by 37 samples: not a multiple of 320) and synthetic calls of 0.5..30 s."""
    out = [(e["file"], read_wav_mono(e["path"])[:-37]) for e in sample_manifest()]
    for i, s in enumerate((0.5, 1.7, 4.3, 12.9, 30.0)):
        if s <= max_s:
            n = int(s * SAMPLE_RATE) + 131
            out.append((f"synth_{s:g}s", synth_call([("angry", s / 2 + 0.1), ("sad", s / 2 + 0.1)], seed=70 + i)[:n]))
    return out


def funasr_probs(model: EmotionModel, audio: np.ndarray) -> np.ndarray:
    r = model.automodel.generate(input=audio, granularity="utterance", extract_embedding=False, disable_pbar=True)[0]
    p = np.zeros(model.n_labels)
    keep = [i for i in range(model.n_labels) if i not in model.masked]
    p[keep] = r["scores"]
    return p


def measure(model: EmotionModel, audio: list[tuple[str, np.ndarray]]) -> dict[str, float]:
    eng = model.engine(max_seconds=120)
    d = {k: 0.0 for k in ("whole", "framed", "stream", "win1", "win3")}
    for _name, a in audio:
        ref = funasr_probs(model, a)
        whole = score_files(eng, [a])[0]
        framed = eng.infer_batch([Window("f", a, len(a))])[0]
        chunks = [r for r in eng.infer_batch(stream_windows(a)) if isinstance(r, Result)]
        assert isinstance(whole, Result) and isinstance(framed, Result)
        stream = softmax(np.concatenate([c.logits for c in chunks]).mean(0))
        for k, p in (("whole", whole.probs), ("framed", framed.probs), ("stream", stream)):
            d[k] = max(d[k], float(np.abs(p - ref).max()))
        for key, s in (("win1", 1), ("win3", 3)):
            n = s * SAMPLE_RATE
            for lo in range(0, len(a) - n + 1, n):
                w = a[lo:lo + n]
                r = eng.infer_batch([Window("w", w, n)])[0]
                assert isinstance(r, Result)
                d[key] = max(d[key], float(np.abs(r.probs - funasr_probs(model, w)).max()))
    return d


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="checkpoint dir (default: the bundled demo model)")
    ap.add_argument("--shape", default=None, help="build a random-weight checkpoint of this shape instead")
    ap.add_argument("--max-s", type=float, default=30.0)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.shape:
            from emowatch.models.checkpoint import build_checkpoint

            path = str(build_checkpoint(tmp, shape=args.shape, seed=1))
        else:
            path = args.model or str(demo_model_dir())
        model = load_model(path, device="cpu", precision="fp32")
        d = measure(model, files(args.max_s))
    cells = " | ".join(f"{d[k]:.1e}" for k in ("whole", "framed", "stream", "win1", "win3"))
    print(f"| {args.shape or path} | {cells} |")


if __name__ == "__main__":
    main()
