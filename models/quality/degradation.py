"""A model's degradation from quiet to office to phone on the generated set (docs/model.md, the demo's model card).

``measure_degradation(model)`` writes the generated labelled set (:func:`~emowatch.models.quality.testset.
make_testset`: ``n_per_class`` clips of ``seconds`` per synthetic class, ``seed``) into a temporary folder and
evaluates it with ``--augment quiet,office,phone`` and the weights :data:`DEGRADATION_WEIGHTS`; the same as::

    emowatch model make-testset --out /tmp/set --per-class 20 --seed 0 --seconds 3
    emowatch model evaluate --labels /tmp/set/labels.csv --model models/demo --augment quiet,office,phone \\
        --weights quiet=0.5,office=0.3,phone=0.2

``degradation_table(result)`` is the Markdown table the docs and the model card show.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from typing import Any

from emowatch.models.loader import EmotionModel
from emowatch.models.quality.augment import SCENARIOS
from emowatch.models.quality.evaluate import evaluate
from emowatch.models.quality.labels import read_labels
from emowatch.models.quality.testset import make_testset

__all__ = ["DEGRADATION_WEIGHTS", "degradation_table", "measure_degradation"]

DEGRADATION_WEIGHTS = {"quiet": 0.5, "office": 0.3, "phone": 0.2}
"""Scenario weights of the combined figure. The seed weights by each scenario's real share of its calls and does
not give the shares; these are an assumption (most calls recorded cleanly, a fifth on a speakerphone)."""


def measure_degradation(model: EmotionModel, *, n_per_class: int = 20, seconds: float = 3.0, seed: int = 0,
                        weights: Mapping[str, float] = DEGRADATION_WEIGHTS) -> dict[str, Any]:
    """The evaluation result (:func:`~emowatch.models.quality.evaluate.evaluate`) on the generated set."""
    with tempfile.TemporaryDirectory(prefix="emowatch-testset-") as tmp:
        items = read_labels(make_testset(tmp, n_per_class, seed, seconds))
        return evaluate(items, model, augment_with=SCENARIOS, weights=weights, seed=seed)


def degradation_table(result: Mapping[str, Any]) -> str:
    """Markdown: per scenario items, accuracy (WA), UA, macro-F1 and each labelled class's recall; the weighted row."""
    reps = result["scenarios"]
    first = next(iter(reps.values()))
    present = [c for c in first["classes"] if first["per_class"][c]["support"]]
    lines = [f"| scenario | items | accuracy (WA) | UA | macro-F1 | recall {' / '.join(present)} |",
             "|---|---|---|---|---|---|"]
    for name, r in reps.items():
        recalls = " / ".join(f"{r['per_class'][c]['recall']:.2f}" for c in present)
        lines.append(f"| {name} | {r['n']} | {r['accuracy']:.3f} | {r['ua']:.3f} | {r['macro_f1']:.3f} | {recalls} |")
    w = result["weighted"]
    given = ", ".join(f"{s} {v:g}" for s, v in w["weights"].items())
    lines.append(f"| weighted ({given}) | {w['n']} | {w['accuracy']:.3f} | {w['ua']:.3f} | {w['macro_f1']:.3f} | |")
    return "\n".join(lines)
