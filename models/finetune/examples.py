"""Training examples for a head, and their held-out split.

One labelled row (an audio file, or a call span) gives one example (a file) or several (one per stored chunk);
the examples of a row stay together on one side of the split (chunks of one call are alike: splitting them
would leak the held-out set into training). The split is stratified by label and seeded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from emowatch.models.quality.errors import QualityError

__all__ = ["Examples", "concat", "split_groups"]


@dataclass
class Examples:
    """``x[i]`` (an embedding) is labelled ``labels[i]`` and came from labelled row ``groups[i]`` (its CSV line);
    ``keys[i]`` names it (file name, or ``call/role#seq``)."""

    x: np.ndarray  # (n, dim) float32
    labels: list[str]
    groups: np.ndarray  # (n,) int64
    keys: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        x = np.asarray(self.x, dtype=np.float32)
        self.x = x.reshape(len(self.labels), -1) if x.size else x.reshape(len(self.labels), 0)
        self.groups = np.asarray(self.groups, dtype=np.int64).reshape(len(self.labels))
        if not self.keys:
            self.keys = [str(g) for g in self.groups]
        if len(self.keys) != len(self.labels):
            raise QualityError(f"{len(self.keys)} keys for {len(self.labels)} examples")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def dim(self) -> int:
        return int(self.x.shape[1])

    def take(self, index: np.ndarray) -> Examples:
        """The examples at ``index`` (in that order)."""
        index = np.asarray(index, dtype=np.int64)
        return Examples(self.x[index], [self.labels[i] for i in index], self.groups[index],
                        [self.keys[i] for i in index])


def concat(parts: Sequence[Examples]) -> Examples:
    """One set from several (an empty sequence: :class:`QualityError`); every part has the same dimension."""
    parts = [p for p in parts if len(p)]
    if not parts:
        raise QualityError("no training examples")
    dims = sorted({p.dim for p in parts})
    if len(dims) > 1:
        raise QualityError(f"embeddings of different sizes {dims}: audio and stored embeddings come from "
                           "different models")
    return Examples(np.concatenate([p.x for p in parts]), [lab for p in parts for lab in p.labels],
                    np.concatenate([p.groups for p in parts]), [k for p in parts for k in p.keys])


def split_groups(examples: Examples, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train index, held-out index)``, both sorted: per label, ``round(holdout x rows)`` of its labelled rows
    (at least one when the label has two rows or more, never all of them) are held out with their examples.

    :class:`QualityError` when ``holdout`` is outside (0, 1) or nothing can be held out (every label on one row).
    """
    if not 0.0 < holdout < 1.0:
        raise QualityError(f"--holdout {holdout:g} must be between 0 and 1 (a share of the labelled rows)")
    first_label: dict[int, str] = {}
    for g, lab in zip(examples.groups.tolist(), examples.labels):
        if first_label.setdefault(g, lab) != lab:
            raise QualityError(f"labelled row {g} has examples with two labels ({first_label[g]}, {lab})")
    rng = np.random.default_rng(seed)
    held_groups: set[int] = set()
    for label in sorted(set(first_label.values())):
        groups = np.array(sorted(g for g, lab in first_label.items() if lab == label), dtype=np.int64)
        if len(groups) < 2:
            continue
        k = min(len(groups) - 1, max(1, int(round(holdout * len(groups)))))
        held_groups.update(rng.permutation(groups)[:k].tolist())
    if not held_groups:
        raise QualityError("nothing to hold out: every label has a single labelled row (need 2 rows of a label "
                           "or more to evaluate the head on rows it was not trained on)")
    held = np.isin(examples.groups, sorted(held_groups))
    return np.flatnonzero(~held), np.flatnonzero(held)
