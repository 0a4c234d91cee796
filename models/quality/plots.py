"""Confusion-matrix pictures of an evaluation (matplotlib's Agg canvas: no display, no pyplot state).

One PNG per scenario: rows are the true classes, columns the predicted classes, both limited to the classes
that occur in the labels or the predictions (a nine-class model on a four-class set would otherwise draw
mostly empty rows); each cell shows its count, coloured by its share of the row (the class's recall on
the diagonal). The title gives the scenario, the item count, accuracy (WA), UA and macro-F1.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from emowatch.streams.analytics.report import PNG_METADATA

__all__ = ["confusion_png", "write_confusion_pngs"]


def confusion_png(rep: Mapping[str, Any], title: str, *, dpi: int = 100) -> bytes:
    """The PNG bytes of one report's confusion matrix (:func:`~emowatch.models.quality.metrics.report`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    classes = list(rep["classes"])
    m = np.asarray(rep["confusion"], dtype=np.int64)
    keep = [i for i in range(len(classes)) if m[i, :].sum() or m[:, i].sum()]
    m = m[np.ix_(keep, keep)]
    names = [classes[i] for i in keep]
    share = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    size = 1.6 + 0.75 * len(names)
    fig = Figure(figsize=(size + 1.0, size), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for r in range(len(names)):
        for c in range(len(names)):
            ax.text(c, r, str(m[r, c]), ha="center", va="center", fontsize=9,
                    color="white" if share[r, c] > 0.6 else "#1d2630")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("predicted", fontsize=9)
    ax.set_ylabel("true", fontsize=9)
    ax.set_title(f"{title}\nn={rep['n']}  acc {rep['accuracy']:.3f}  UA {rep['ua']:.3f}  "
                 f"macro-F1 {rep['macro_f1']:.3f}", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata=PNG_METADATA)
    return buf.getvalue()


def write_confusion_pngs(result: Mapping[str, Any], out_dir: str | Path) -> dict[str, str]:
    """``confusion_<scenario>.png`` for each scenario of an evaluation into ``out_dir``; ``{scenario: path}``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}
    for scenario, rep in result["scenarios"].items():
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", scenario) or "scenario"
        path = out / f"confusion_{safe}.png"
        path.write_bytes(confusion_png(rep, f"{result['model']['name']} · {scenario}"))
        paths[scenario] = str(path)
    return paths
