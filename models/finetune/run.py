"""The fine-tune job: labelled set -> embeddings -> split -> head -> checkpoint (``emowatch model finetune-head``).

Rows with an ``audio`` file are embedded by the model itself (:mod:`.audio`); rows with only a ``call_id`` read the
stored chunk embeddings of that call (:mod:`.history`, ``--from-history``: the caller passes a ClickHouse client).
Both may be mixed in one set. Everything that can be checked before the slow parts is checked first (labels,
output folder, options), and every problem is a :class:`~emowatch.models.quality.errors.QualityError`.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from emowatch.models.finetune.audio import audio_examples
from emowatch.models.finetune.examples import Examples, concat, split_groups
from emowatch.models.finetune.head import Head, train_head
from emowatch.models.finetune.history import HistoryExamples, history_examples
from emowatch.models.finetune.output import check_out_dir, write_finetuned
from emowatch.models.loader import EmotionModel
from emowatch.models.quality.errors import QualityError
from emowatch.models.quality.labels import LabelledItem, read_labels
from emowatch.models.quality.metrics import report
from emowatch.models.utterance import DEFAULT_SEGMENT_S

__all__ = ["FinetuneOptions", "Outcome", "finetune_head", "reproduce_command"]

Progress = Callable[[str, int, int], None]  # (phase: "embeddings" | "training", done, total)
_LISTED = 20  # missing calls named in an error message; the rest are counted


@dataclass(frozen=True)
class FinetuneOptions:
    """Split and training options (see :func:`emowatch.models.finetune.head.train_head`)."""

    holdout: float = 0.25
    steps: int = 300
    lr: float | None = None  # None: DEFAULT_LR_SCALE / sqrt(embedding dimension)
    seed: int = 0
    eval_every: int = 10
    patience: int = 10
    batch_size: int = 0
    segment_s: float = DEFAULT_SEGMENT_S

    def check(self) -> None:
        if not 0.0 < self.holdout < 1.0:
            raise QualityError(f"--holdout {self.holdout:g} must be between 0 and 1")
        bad_lr = self.lr is not None and self.lr <= 0
        if self.steps < 1 or bad_lr or self.eval_every < 1 or self.patience < 0 or self.batch_size < 0:
            raise QualityError(f"invalid training options: steps={self.steps} (>= 1), lr={self.lr} (> 0), "
                               f"eval_every={self.eval_every} (>= 1), patience={self.patience} (>= 0), "
                               f"batch_size={self.batch_size} (>= 0, 0 = full batch)")
        if self.segment_s < 1.0:
            raise QualityError(f"segment_s={self.segment_s:g} must be at least 1 s")


@dataclass
class Outcome:
    """The written checkpoint: its folder, new model version and ``finetune.json`` content."""

    out: Path
    version: str
    summary: dict[str, Any]


def reproduce_command(labels_file: Path, out: Path, model: str, options: FinetuneOptions, *, from_history: bool,
                      since: str | None) -> str:
    """The ``emowatch model finetune-head`` command line that runs this job again."""
    args = ["emowatch", "model", "finetune-head", "--labels", str(labels_file), "--out", str(out), "--model", model]
    if from_history:
        args.append("--from-history")
        if since:
            args += ["--since", since]
    defaults = FinetuneOptions()
    for name in ("holdout", "steps", "lr", "seed", "eval_every", "patience", "batch_size"):
        if getattr(options, name) is not None and getattr(options, name) != getattr(defaults, name):
            args += [f"--{name.replace('_', '-')}", f"{getattr(options, name):g}"]
    return shlex.join(args)


def _reports(head: Head, ex: Examples, classes: Sequence[str], masked: Sequence[int]) -> dict[str, Any]:
    pred = [classes[i] for i in head.predict(ex.x, masked)]
    return report(ex.labels, pred, classes)


def _missing_error(found: HistoryExamples) -> QualityError:
    named = "\n  ".join(str(m) for m in found.missing[:_LISTED])
    more = f"\n  ... and {len(found.missing) - _LISTED} more" if len(found.missing) > _LISTED else ""
    return QualityError(f"{len(found.missing)} labelled call row(s) have no usable stored embedding (--skip-missing "
                        f"trains on the others):\n  {named}{more}")


def _examples(model: EmotionModel, items: list[LabelledItem], *, from_history: bool, client: Any, database: str,
              since_ms: int | None, skip_missing: bool, options: FinetuneOptions,
              progress: Progress | None) -> tuple[Examples, HistoryExamples | None]:
    audio_items = [it for it in items if it.audio is not None]
    call_items = [it for it in items if it.audio is None]
    if call_items and not from_history:
        raise QualityError(f"line {call_items[0].line}: a call_id row without an audio file; rows of stored calls "
                           "need --from-history")
    parts: list[Examples] = []
    found = None
    if call_items:
        if client is None:
            raise QualityError("--from-history needs ClickHouse (no client given)")
        found = history_examples(client, database, call_items, model_version=model.version, since_ms=since_ms)
        if found.missing and not skip_missing:
            raise _missing_error(found)
        parts.append(found.examples)
    if audio_items:
        def step(done: int, total: int) -> None:
            if progress is not None:
                progress("embeddings", done, total)
        parts.append(audio_examples(model, audio_items, segment_s=options.segment_s, progress=step))
    return concat(parts), found


def finetune_head(model: EmotionModel, labels_file: str | Path, out: str | Path, *,
                  options: FinetuneOptions = FinetuneOptions(), from_history: bool = False, client: Any = None,
                  database: str = "emowatch", since_ms: int | None = None, since: str | None = None,
                  skip_missing: bool = False, force: bool = False, command: str | None = None,
                  progress: Progress | None = None) -> Outcome:
    """Train a new head for ``model`` on the labelled set and write the checkpoint to ``out``.

    ``client``/``database``: the history (``from_history``); ``since_ms``: only chunks at or after it (``since``:
    the text the user gave, for the card). Raises :class:`QualityError` for anything that stops the job."""
    options.check()
    labels_file, out = Path(labels_file), Path(out)
    if since_ms is not None and not from_history:
        raise QualityError("--since applies to --from-history only")
    if model.path is None or not (model.path / "model.pt").is_file():
        raise QualityError(f"model {model.name!r} has no local checkpoint directory with model.pt to start from")
    check_out_dir(out, model.path, force=force)
    items = read_labels(labels_file)
    classes = list(model.labels)
    foreign = sorted({it.label for it in items} - (set(classes) - {classes[i] for i in model.masked}))
    if foreign:
        raise QualityError(f"{labels_file}: labels {foreign} are not classes of model {model.name}")
    examples, found = _examples(model, items, from_history=from_history, client=client, database=database,
                                since_ms=since_ms, skip_missing=skip_missing, options=options, progress=progress)
    train_idx, held_idx = split_groups(examples, options.holdout, options.seed)
    train, held = examples.take(train_idx), examples.take(held_idx)
    init = Head.of(model.module.proj)

    def step(done: int, total: int) -> None:
        if progress is not None:
            progress("training", done, total)

    trained = train_head(train, held, init, classes, masked=model.masked, steps=options.steps, lr=options.lr,
                         seed=options.seed, eval_every=options.eval_every, patience=options.patience,
                         batch_size=options.batch_size, progress=step)
    summary: dict[str, Any] = {
        "source": {"name": model.name, "version": model.version, "path": str(model.path)},
        "labels_file": str(labels_file), "from_history": from_history, "since": since, "since_ms": since_ms,
        "examples": {
            "rows": len(items), "total": len(examples), "train": len(train), "held_out": len(held),
            "rows_train": len(set(train.groups.tolist())), "rows_held_out": len(set(held.groups.tolist())),
            "per_class": {c: {"train": train.labels.count(c), "held_out": held.labels.count(c)}
                          for c in classes if c in examples.labels},
        },
        "split": {"train_lines": sorted(set(train.groups.tolist())),
                  "held_out_lines": sorted(set(held.groups.tolist()))},
        "class_weights": trained.weights,
        "frozen_classes": [c for c, w in trained.weights.items() if not w],
        "options": asdict(options),
        "training": {"best_step": trained.best_step, "steps_run": trained.steps_run, "lr": trained.lr,
                     "curve": trained.curve},
        "held_out": {"before": _reports(init, held, classes, model.masked),
                     "after": _reports(trained.head, held, classes, model.masked)},
        "train": {"before": _reports(init, train, classes, model.masked),
                  "after": _reports(trained.head, train, classes, model.masked)},
        "history": None if found is None else {
            "missing": [str(m) for m in found.missing], "no_embedding_chunks": found.no_embedding,
            "other_model_chunks": found.other_model},
        "command": command or reproduce_command(labels_file, out, str(model.path), options,
                                                from_history=from_history, since=since),
    }
    version, done = write_finetuned(model.path, out, init, trained.head, summary, force=force)
    return Outcome(out, version, done)
