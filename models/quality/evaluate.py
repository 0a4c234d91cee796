"""A labelled set scored by a model: metrics per scenario and weighted (the seed's accuracy method, issue #16).

``evaluate(items, model, ...)`` scores every item of a labelled set (:func:`~emowatch.models.quality.labels.
read_labels`) with the batched engine as a whole file (:func:`emowatch.models.utterance.score_files`: the
model's own utterance answer, FunASR's ``generate``; files over 60 s in 60 s segments), in its scenario
(the CSV's scenario column) or, with ``augment``, in each of the listed scenarios built from the item's clean
audio (:mod:`emowatch.models.quality.augment`, one seeded generator per item and scenario).

**Prediction**: the argmax of the utterance probabilities over *all* the model's classes (nine for
emotion2vec+; its ``unuse*`` classes have probability 0). Restricting the argmax to the classes present in
the labels would flatter a model (a four-class set scored as a four-class problem hides every
``fearful`` or ``other`` answer); the honest question is what the model says.

**Metrics** (:func:`~emowatch.models.quality.metrics.report`) per scenario: accuracy (= WA), UA (mean recall
over the classes present in the labels), macro-F1 (same classes), per-class precision/recall/F1/support and
the confusion matrix over the model's classes; combined with
:func:`~emowatch.models.quality.metrics.weighted` (weights normalised to sum 1; default: each scenario's share
of the scored items).

Audio: a WAV file (16-bit PCM, any rate of :data:`~emowatch.streams.audio.codec.SUPPORTED_RATES`, channels
averaged to mono, resampled to 16 kHz; ``start_s``/``end_s`` cut a span), or a stored call's audio for
``call_id`` rows through the ``call_audio`` callable (the CLI reads the audio topic). An item the engine
cannot score (``too_short``, ...) is listed under ``errors`` and left out of the metrics.
"""

from __future__ import annotations

import time
import wave
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emowatch.models.engine import ItemError
from emowatch.models.loader import EmotionModel
from emowatch.models.quality.augment import DEFAULT_SNR_DB, augment, check_scenarios, scenario_rng
from emowatch.models.quality.errors import QualityError
from emowatch.models.quality.labels import LabelledItem
from emowatch.models.quality.metrics import report, weighted
from emowatch.models.utterance import DEFAULT_SEGMENT_S, score_files
from emowatch.streams.audio.chunking import read_wav
from emowatch.streams.audio.codec import SUPPORTED_RATES, resample
from emowatch.topics.model_io import SAMPLE_RATE

__all__ = ["DEFAULT_BATCH", "PREDICTION", "CallAudio", "Progress", "evaluate", "item_audio", "parse_scenarios",
           "parse_weights", "scenarios_of"]

PREDICTION = "argmax over all the model's classes"
"""How a prediction is made from the utterance probabilities (see the module's text)."""
DEFAULT_BATCH = 16
"""Items loaded, augmented and scored together (times the number of scenarios per engine call)."""
_DIGITS = 6  # probabilities in the JSON

CallAudio = Callable[[Sequence[LabelledItem]], Mapping[int, np.ndarray]]
"""``call_audio(call items) -> {item.line: mono 16 kHz float32 audio of the item's call span and role}``."""
Progress = Callable[[int, int], None]
"""``progress(items done, items in all)``."""


def parse_scenarios(text: str) -> tuple[str, ...]:
    """``"quiet,office,phone"`` -> the scenarios (known ones, each once); :class:`QualityError` otherwise."""
    return check_scenarios([s.strip() for s in text.split(",") if s.strip()])


def parse_weights(text: str) -> dict[str, float]:
    """``"quiet=0.5,office=0.3,phone=0.2"`` -> ``{scenario: weight}`` (any scale; normalised later)."""
    out: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, raw = part.partition("=")
        name = name.strip()
        try:
            value = float(raw) if sep and name else float("nan")
        except ValueError:
            value = float("nan")
        if not np.isfinite(value) or value < 0:
            raise QualityError(f"--weights: {part!r} is not SCENARIO=WEIGHT with a weight >= 0 "
                               "(e.g. quiet=0.5,office=0.3,phone=0.2)")
        if name in out:
            raise QualityError(f"--weights: scenario {name!r} given twice")
        out[name] = value
    if not out or not sum(out.values()) > 0:
        raise QualityError(f"--weights: {text!r} gives no positive weight")
    return out


def scenarios_of(items: Sequence[LabelledItem], augment_with: Sequence[str] | None) -> tuple[str, ...]:
    """The scenarios an evaluation reports: ``augment_with``, or the items' own in order of first appearance."""
    if augment_with:
        return check_scenarios(list(augment_with))
    return tuple(dict.fromkeys(i.scenario for i in items))


def _check(items: Sequence[LabelledItem], model: EmotionModel, scenarios: tuple[str, ...],
           weights: Mapping[str, float] | None, call_audio: CallAudio | None, source: str) -> None:
    """Everything that can be wrong before scoring starts (fail fast)."""
    if not items:
        raise QualityError(f"{source}: no labelled items")
    for it in items:
        if it.label not in model.labels:
            raise QualityError(f"{source}:{it.line}: label {it.label!r} is not a class of {model.name} "
                               f"({', '.join(model.labels)})")
        if it.audio is None and call_audio is None:
            raise QualityError(f"{source}:{it.line}: call_id rows need the audio topic (no reader given)")
    if weights is not None:
        unknown = sorted(set(weights) - set(scenarios))
        if unknown:
            raise QualityError(f"--weights names {unknown}, but the scenarios are {list(scenarios)}")


def item_audio(item: LabelledItem, source: str = "labels") -> np.ndarray:
    """The mono 16 kHz float32 audio of a file item (channels averaged, resampled, ``start_s``/``end_s`` cut)."""
    if item.audio is None:
        raise QualityError(f"{source}:{item.line}: no audio file")
    where = f"{source}:{item.line}"
    try:
        samples, rate = read_wav(item.audio)
    except (OSError, ValueError, EOFError, wave.Error) as exc:
        raise QualityError(f"{where}: cannot read {item.audio}: {exc}") from None
    if rate not in SUPPORTED_RATES:
        raise QualityError(f"{where}: {item.audio} has {rate} Hz; supported: {SUPPORTED_RATES}")
    x = resample(samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0], rate)
    lo = 0 if item.start_s is None else int(round(item.start_s * SAMPLE_RATE))
    hi = len(x) if item.end_s is None else int(round(item.end_s * SAMPLE_RATE))
    if lo >= len(x):
        raise QualityError(f"{where}: start_s {item.start_s:g} is past the end of {item.audio} "
                           f"({len(x) / SAMPLE_RATE:.2f} s)")
    return np.ascontiguousarray(x[lo:hi], dtype=np.float32)


def _row(item: LabelledItem, scenario: str, labels: list[str], probs: np.ndarray) -> dict[str, Any]:
    k = int(np.argmax(probs))
    return {"line": item.line, "key": item.key, "scenario": scenario, "label": item.label, "pred": labels[k],
            "p_pred": round(float(probs[k]), _DIGITS), "p_label": round(float(probs[labels.index(item.label)]),
                                                                         _DIGITS),
            "probs": [round(float(p), _DIGITS) for p in probs]}


def evaluate(items: Sequence[LabelledItem], model: EmotionModel, *, augment_with: Sequence[str] | None = None,
             weights: Mapping[str, float] | None = None, seed: int = 0, snr_db: float = DEFAULT_SNR_DB,
             batch: int = DEFAULT_BATCH, call_audio: CallAudio | None = None, progress: Progress | None = None,
             source: str | Path = "labels") -> dict[str, Any]:
    """Score ``items`` with ``model`` and compute the metrics (see the module's text); JSON-serialisable.

    Keys: ``model`` {name, version}, ``prediction``, ``classes`` (the model's), ``augment`` (None or {scenarios,
    snr_db, seed}), ``scenarios`` {scenario: report}, ``weighted``, ``items`` (one row per item and scenario:
    line, key, scenario, label, pred, p_pred, p_label, probs in class order), ``errors`` (items not scored),
    ``n_items``, ``audio_s``, ``seconds``."""
    t0 = time.perf_counter()
    source = str(source)
    scenarios = scenarios_of(items, augment_with)
    _check(items, model, scenarios, weights, call_audio, source)
    labels = list(model.labels)
    engine = model.engine(max_seconds=DEFAULT_SEGMENT_S + 2.0)
    calls = [it for it in items if it.audio is None]
    call_waves = dict(call_audio(calls)) if calls and call_audio is not None else {}
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    audio_s = 0.0
    step = max(1, int(batch))
    for start in range(0, len(items), step):
        chunk = items[start:start + step]
        jobs: list[tuple[LabelledItem, str]] = []
        waves: list[np.ndarray] = []
        for it in chunk:
            if it.audio is None and it.line not in call_waves:
                errors.append({"line": it.line, "key": it.key, "scenario": None, "code": "no_audio",
                               "reason": f"{source}:{it.line}: no stored audio for call {it.call_id!r}"})
                continue
            clean = item_audio(it, source) if it.audio is not None else call_waves[it.line]
            for s in (scenarios if augment_with else (it.scenario,)):
                waves.append(augment(clean, s, scenario_rng(seed, it.key, s), snr_db=snr_db) if augment_with
                             else clean)
                jobs.append((it, s))
        for (it, s), x, res in zip(jobs, waves, score_files(engine, waves) if waves else []):
            if isinstance(res, ItemError):
                errors.append({"line": it.line, "key": it.key, "scenario": s, "code": res.code,
                               "reason": f"{source}:{it.line}: {res.reason}"})
            else:
                rows.append(_row(it, s, labels, np.asarray(res.probs, dtype=np.float64)))
                audio_s += len(x) / SAMPLE_RATE
        if progress is not None:
            progress(min(start + step, len(items)), len(items))
    reports = {}
    for s in scenarios:
        mine = [r for r in rows if r["scenario"] == s]
        if mine:
            reports[s] = report([r["label"] for r in mine], [r["pred"] for r in mine], labels)
    if not reports:
        raise QualityError(f"{source}: no item could be scored ({len(errors)} errors, first: "
                           f"{errors[0]['reason'] if errors else '-'})")
    return {
        "model": {"name": model.name, "version": model.version},
        "prediction": PREDICTION,
        "classes": labels,
        "augment": {"scenarios": list(scenarios), "snr_db": snr_db, "seed": seed} if augment_with else None,
        "scenarios": reports,
        "weighted": weighted(reports, weights),
        "items": rows,
        "errors": errors,
        "n_items": len(items),
        "audio_s": round(audio_s, 3),
        "seconds": round(time.perf_counter() - t0, 3),
    }
