"""models/quality/metrics.py against scikit-learn (an independent implementation), and `weighted` by hand."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from emowatch.models.quality.errors import QualityError
from emowatch.models.quality.metrics import report, weighted
from emowatch.topics.model_io import EMOTIONS

CLASSES = list(EMOTIONS)


def _check_against_sklearn(y_true: list[str], y_pred: list[str]) -> None:
    r = report(y_true, y_pred, CLASSES)
    present = [c for c in CLASSES if c in set(y_true)]
    assert r["n"] == len(y_true)
    assert r["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
    assert r["wa"] == r["accuracy"]
    assert r["ua"] == pytest.approx(balanced_accuracy_score(y_true, y_pred), abs=1e-12)
    assert r["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, labels=present, average="macro",
                                                   zero_division=0), abs=1e-12)
    p, rec, f, s = precision_recall_fscore_support(y_true, y_pred, labels=CLASSES, zero_division=0)
    for i, c in enumerate(CLASSES):
        pc = r["per_class"][c]
        assert (pc["precision"], pc["recall"], pc["f1"], pc["support"]) == pytest.approx((p[i], rec[i], f[i], s[i]))
    assert r["confusion"] == confusion_matrix(y_true, y_pred, labels=CLASSES).tolist()


@pytest.mark.filterwarnings("ignore")  # sklearn warns about classes absent from y_true
@pytest.mark.parametrize("seed", range(8))
def test_random_predictions_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    k = int(rng.integers(1, len(CLASSES) + 1))
    true_pool = list(rng.choice(CLASSES, size=k, replace=False))
    y_true = [str(c) for c in rng.choice(true_pool, size=n)]
    y_pred = [t if rng.random() < 0.5 else str(rng.choice(CLASSES)) for t in y_true]
    _check_against_sklearn(y_true, y_pred)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("y_true,y_pred", [
    (["angry", "sad", "sad", "neutral"], ["angry", "angry", "angry", "angry"]),  # classes never predicted
    (["angry", "angry", "sad"], ["fearful", "angry", "happy"]),  # predicted classes absent from the labels
    (["neutral"], ["neutral"]),  # one item, right
    (["neutral"], ["unknown"]),  # one item, wrong
    (["angry", "neutral", "sad", "unknown"] * 3, ["angry", "neutral", "sad", "unknown"] * 3),  # all right
])
def test_edge_cases_match_sklearn(y_true, y_pred):
    _check_against_sklearn(y_true, y_pred)


def test_ua_and_macro_f1_ignore_classes_absent_from_the_labels():
    r = report(["angry", "angry", "sad", "sad"], ["angry", "fearful", "sad", "sad"], CLASSES)
    assert r["ua"] == pytest.approx((0.5 + 1.0) / 2)  # fearful (predicted, never true) does not count
    assert r["macro_f1"] == pytest.approx((2 / 3 + 1.0) / 2)
    assert r["accuracy"] == pytest.approx(0.75)


def test_weighted_by_hand():
    a = report(["angry", "sad"], ["angry", "sad"], CLASSES)  # acc 1, UA 1, F1 1
    b = report(["angry", "angry", "angry", "sad", "sad", "sad"],
               ["angry", "angry", "sad", "sad", "angry", "angry"], CLASSES)
    assert b["accuracy"] == pytest.approx(0.5) and b["ua"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    shares = weighted({"quiet": a, "phone": b})  # default: shares of the items, 2/8 and 6/8
    assert shares["weights"] == pytest.approx({"quiet": 0.25, "phone": 0.75})
    assert shares["accuracy"] == pytest.approx(0.25 * 1.0 + 0.75 * 0.5)
    assert shares["n"] == 8
    given = weighted({"quiet": a, "phone": b}, {"quiet": 3, "phone": 1})  # normalised to 0.75 / 0.25
    assert given["accuracy"] == pytest.approx(0.875)
    assert given["ua"] == pytest.approx(0.75 * 1.0 + 0.25 * 0.5)
    only = weighted({"quiet": a, "phone": b}, {"phone": 1.0})  # an unnamed scenario weighs 0
    assert only["accuracy"] == pytest.approx(0.5) and only["n"] == 6


def test_weighted_and_report_refuse_bad_input():
    a = report(["angry"], ["angry"], CLASSES)
    with pytest.raises(QualityError, match="without labelled items"):
        weighted({"quiet": a}, {"office": 1.0})
    with pytest.raises(QualityError, match=">= 0"):
        weighted({"quiet": a}, {"quiet": -1.0})
    with pytest.raises(QualityError, match="not among"):
        report(["angry"], ["furious"], CLASSES)
    with pytest.raises(QualityError, match="no labelled items"):
        report([], [], CLASSES)
