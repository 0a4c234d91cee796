"""Classification metrics of a labelled set, computed here with numpy (the tests check them against scikit-learn).

``report(y_true, y_pred, classes)``: accuracy (= weighted accuracy, WA), unweighted accuracy (UA: the mean of the
per-class recalls over the classes present in ``y_true``), macro-F1 (over the same classes), per-class precision,
recall, F1 and support, and the confusion matrix (rows: true class, columns: predicted class, in ``classes``
order). ``weighted(reports, weights)`` combines per-scenario reports the seed's way: each scenario's metric times
its weight (by default its share of the items), summed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from emowatch.models.quality.errors import QualityError

__all__ = ["SCALAR_METRICS", "confusion", "report", "weighted"]

SCALAR_METRICS = ("accuracy", "ua", "wa", "macro_f1")
"""The single-number metrics of a report (``weighted`` combines these)."""


def confusion(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """Counts ``(len(classes), len(classes))``: row = true class, column = predicted class."""
    if len(y_true) != len(y_pred):
        raise QualityError(f"{len(y_true)} labels but {len(y_pred)} predictions")
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({c for c in (*y_true, *y_pred) if c not in index})
    if unknown:
        raise QualityError(f"classes {unknown} are not among {list(classes)}")
    m = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(m, ([index[c] for c in y_true], [index[c] for c in y_pred]), 1)
    return m


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with 0 where ``den`` is 0 (scikit-learn's ``zero_division=0``)."""
    out = np.zeros(num.shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def report(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]) -> dict[str, Any]:
    """The metrics of one set of predictions (see the module's text); JSON-serialisable."""
    if not len(y_true):
        raise QualityError("no labelled items to evaluate")
    m = confusion(y_true, y_pred, classes)
    tp = np.diag(m).astype(np.float64)
    support, predicted = m.sum(axis=1), m.sum(axis=0)
    precision, recall = _ratio(tp, predicted.astype(np.float64)), _ratio(tp, support.astype(np.float64))
    f1 = _ratio(2 * precision * recall, precision + recall)
    present = support > 0  # UA and macro-F1 over the classes that occur in the labels
    accuracy = float(tp.sum() / m.sum())
    return {
        "n": int(m.sum()),
        "accuracy": accuracy,
        "wa": accuracy,
        "ua": float(recall[present].mean()),
        "macro_f1": float(f1[present].mean()),
        "classes": list(classes),
        "per_class": {c: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                          "support": int(support[i])} for i, c in enumerate(classes)},
        "confusion": m.tolist(),
    }


def weighted(reports: Mapping[str, Mapping[str, Any]], weights: Mapping[str, float] | None = None
             ) -> dict[str, Any]:
    """The scenarios' scalar metrics combined: ``sum(weight * metric)`` with the weights normalised to sum 1
    (default: each scenario's share of the items). Every weighted scenario must have a report."""
    if not reports:
        raise QualityError("no scenario to combine")
    if weights is None:
        weights = {s: float(r["n"]) for s, r in reports.items()}
    missing = sorted(set(weights) - set(reports))
    if missing:
        raise QualityError(f"weights name scenarios without labelled items: {missing}")
    if any(w < 0 for w in weights.values()) or not sum(weights.values()) > 0:
        raise QualityError(f"scenario weights must be >= 0 and not all 0: {dict(weights)}")
    total = sum(weights.values())
    norm = {s: w / total for s, w in weights.items()}
    out: dict[str, Any] = {"weights": norm, "n": sum(int(reports[s]["n"]) for s in norm)}
    for key in SCALAR_METRICS:
        out[key] = float(sum(w * float(reports[s][key]) for s, w in norm.items()))
    return out
