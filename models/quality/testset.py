"""A labelled test set the project generates itself: synthetic prosody classes (:mod:`emowatch.models.synth`).

``make_testset(out_dir, n_per_class, seed, seconds)`` writes ``n_per_class`` clean clips of each class of
:data:`~emowatch.models.synth.CLASSES` (angry, neutral, sad, unknown) as 16 kHz 16-bit WAVs under
``out_dir/clips/`` and ``out_dir/labels.csv`` with the columns ``audio,label,scenario`` (audio relative to the
CSV). Labels cycle through the spellings :func:`~emowatch.models.quality.labels.read_labels` accepts
(``angry``, ``生气/angry``, ``生气``; ``unknown``, ``<unk>``), so every evaluation exercises the parsing.

Clean clips carry the scenario ``quiet``: ``emowatch model evaluate --augment quiet,office,phone`` builds the
other scenarios from them at evaluation time. With ``scenarios`` (``make-testset --scenarios``), augmented
copies are written instead (``clips/<scenario>/``, one row per clip and scenario), for tools that take
finished recordings.

Clip ``i`` of class ``c`` is drawn from ``default_rng([seed, index of c, i])``, so a set is bit-for-bit
reproducible for a seed and a smaller set is the first clips of a larger one. Augmented copies use
:func:`~emowatch.models.quality.augment.scenario_rng` with the clip's file name, as the evaluation does: a
pre-augmented set and ``--augment`` on the clean set (same seed) score the same audio, up to the 16-bit
rounding of the WAVs.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emowatch.models.checkpoint import TOKENS
from emowatch.models.quality.augment import DEFAULT_SNR_DB, SCENARIOS, augment, check_scenarios, scenario_rng
from emowatch.models.quality.errors import QualityError
from emowatch.models.synth import CLASSES, synth_clip, write_wav
from emowatch.topics.model_io import EMOTIONS

__all__ = ["CLEAN_SCENARIO", "LABELS_FILE", "label_spellings", "make_testset"]

LABELS_FILE = "labels.csv"
"""The labelled set's CSV in the output folder."""
CLEAN_SCENARIO = SCENARIOS[0]
"""The scenario of the clean clips (``quiet``)."""
_PEAK = 0.99  # augmented copies are scaled down to this peak when louder (16-bit WAVs clip at 1)


def label_spellings(cls: str) -> list[str]:
    """The accepted spellings of class ``cls``: the English name, the model's token and its Chinese name."""
    token = TOKENS[EMOTIONS.index(cls)]
    return list(dict.fromkeys([cls, token, token.split("/", 1)[0]]))


def make_testset(out_dir: str | Path, n_per_class: int = 20, seed: int = 0, seconds: float = 3.0, *,
                 classes: Sequence[str] = CLASSES, scenarios: Sequence[str] | None = None,
                 snr_db: float = DEFAULT_SNR_DB) -> Path:
    """Write the set (see the module's text); returns the path of ``labels.csv``."""
    if n_per_class < 1:
        raise QualityError(f"n_per_class must be >= 1, not {n_per_class}")
    if seconds < 0.5:
        raise QualityError(f"seconds must be >= 0.5, not {seconds}")
    bad = [c for c in classes if c not in CLASSES]
    if bad:
        raise QualityError(f"the generator has no class {bad}: it makes {', '.join(CLASSES)}")
    scen = check_scenarios(list(scenarios)) if scenarios else None
    out = Path(out_dir)
    rows: list[tuple[str, str, str]] = []
    for ci, cls in enumerate(classes):
        spellings = label_spellings(cls)
        for i in range(n_per_class):
            clip = synth_clip(cls, seconds, np.random.default_rng([seed, CLASSES.index(cls), i]))
            name = f"{cls}_{i:03d}.wav"
            label = spellings[(i + ci) % len(spellings)]
            if scen is None:
                (out / "clips").mkdir(parents=True, exist_ok=True)
                write_wav(out / "clips" / name, clip)
                rows.append((f"clips/{name}", label, CLEAN_SCENARIO))
                continue
            for s in scen:
                x = augment(clip, s, scenario_rng(seed, name, s), snr_db=snr_db)
                x = x * min(1.0, _PEAK / (float(np.max(np.abs(x))) + 1e-12))
                (out / "clips" / s).mkdir(parents=True, exist_ok=True)
                write_wav(out / "clips" / s / name, x)
                rows.append((f"clips/{s}/{name}", label, s))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["audio", "label", "scenario"])
    writer.writerows(rows)
    path = out / LABELS_FILE
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path
