"""`emowatch model finetune-head`: a new classification head from labelled audio or stored embeddings.

Trains the model's final projection on embeddings (the encoder is untouched; minutes on CPU at most) and writes a
complete checkpoint directory with a new ``model_version`` (emowatch.models.finetune). Exit codes: 0 done;
2 invalid options or labels, unusable calls, ClickHouse cannot be opened or read; 3 the model cannot be loaded.
Progress goes to stderr; the result (a table, or ``--format json``: the ``finetune.json`` content) to stdout.
"""
from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from emowatch.streams.cli.common import console, now_ms
from emowatch.streams.cli.common import settings_or_exit as _settings
from emowatch.streams.cli.history_store import CLICKHOUSE_URL, DATA_DIR, fail, open_history

err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)


def finetune_head(
    labels: Path = typer.Option(..., "--labels", help="Labelled CSV: audio (WAV) or call_id [+ role, start_s, "
                                                      "end_s], label[, scenario]."),
    out: Path = typer.Option(..., "--out", help="Folder for the new checkpoint (created; must be new or empty)."),
    model: str = typer.Option(None, "--model", help="Source model directory or hub id (default: "
                                                    "EMOWATCH_MODEL__MODEL)."),
    from_history: bool = typer.Option(False, "--from-history", help="Rows with a call_id: train on the call's "
                                                                    "stored chunk embeddings (ClickHouse scores)."),
    since: str = typer.Option(None, "--since", help="--from-history: only chunks from this time on (30d, 2h, "
                                                    "ISO-8601, epoch ms)."),
    skip_missing: bool = typer.Option(False, "--skip-missing", help="--from-history: train on the calls found "
                                                                    "instead of stopping on missing ones."),
    holdout: float = typer.Option(0.25, "--holdout", help="Share of the labelled rows held out (per label)."),
    steps: int = typer.Option(300, "--steps", help="Most training steps."),
    lr: float = typer.Option(None, "--lr", help="Adam learning rate (default: 0.03 / sqrt(embedding size))."),
    seed: int = typer.Option(0, "--seed", help="Seed of the held-out split (and of mini-batches)."),
    patience: int = typer.Option(10, "--patience", help="Stop after this many evaluations (every 10 steps) "
                                                        "without a better held-out macro-F1; 0: never."),
    batch_size: int = typer.Option(0, "--batch-size", help="Mini-batch size (0: full batch)."),
    force: bool = typer.Option(False, "--force", help="Replace --out when it holds an earlier fine-tune output."),
    clickhouse_url: str = CLICKHOUSE_URL, data_dir: Path = DATA_DIR,
    fmt: str = typer.Option("table", "--format", help="table | json (finetune.json, plus out)."),
) -> None:
    """Train a new classification head (the model's final projection) on embeddings and write a checkpoint.

    The new directory loads like any model (EMOWATCH_MODEL__MODEL=DIR, emowatch rescore --model DIR) and has its
    own model_version; MODEL_CARD.md and finetune.json hold the held-out evaluation before and after."""
    from emowatch.models.finetune.output import check_out_dir
    from emowatch.models.finetune.run import FinetuneOptions, reproduce_command
    from emowatch.models.finetune.run import finetune_head as run
    from emowatch.models.quality.errors import QualityError
    from emowatch.models.quality.labels import read_labels
    from emowatch.streams.cli.time_args import parse_since_ms

    if fmt not in ("table", "json"):
        raise fail(f"--format must be table or json, not {fmt!r}", 2)
    s = _settings()
    source = model or s.model.model
    options = FinetuneOptions(holdout=holdout, steps=steps, lr=lr, seed=seed, patience=patience,
                              batch_size=batch_size)
    since_ms = None
    try:
        options.check()
        if since is not None:
            if not from_history:
                raise QualityError("--since applies to --from-history only")
            try:
                since_ms = parse_since_ms(since, now_ms=now_ms())
            except ValueError as exc:
                raise QualityError(f"--since: {exc}") from None
        if skip_missing and not from_history:
            raise QualityError("--skip-missing applies to --from-history only")
        read_labels(labels)  # fail fast, before the model loads
        if Path(source).is_dir():
            check_out_dir(out, Path(source), force=force)
    except QualityError as exc:
        raise fail(str(exc), 2) from None
    command = reproduce_command(labels, out, source, options, from_history=from_history, since=since)
    # FunASR prints to stdout (its version, on every model load): stdout is kept for the result (--format json)
    with contextlib.redirect_stdout(sys.stderr):
        loaded = _load(source, s)
        with _history(from_history, clickhouse_url, data_dir) as (client, database):
            try:
                with _progress() as report:
                    outcome = run(loaded, labels, out, options=options, from_history=from_history, client=client,
                                  database=database, since_ms=since_ms, since=since, skip_missing=skip_missing,
                                  force=force, command=command, progress=report)
            except QualityError as exc:
                raise fail(str(exc), 2) from None
    if fmt == "json":
        typer.echo(json.dumps({"out": str(outcome.out), **outcome.summary}, ensure_ascii=False))
        return
    _print(outcome)


def _load(source: str, s):
    from emowatch.models.loader import ModelLoadError, load_model

    try:
        return load_model(source, device=s.model.device, precision=s.model.precision)
    except ModelLoadError as exc:
        raise fail(f"cannot load the model: {exc}", 3) from None


@contextlib.contextmanager
def _history(from_history: bool, clickhouse_url: str | None, data_dir: Path | None) -> Iterator[tuple[Any, str]]:
    """``(client, database)`` of the history for --from-history, else ``(None, "")``."""
    if not from_history:
        yield None, ""
        return
    with open_history(clickhouse_url, data_dir) as opened:
        yield opened


@contextlib.contextmanager
def _progress() -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar on stderr per phase (embeddings, training): ``report(phase, done, total)``."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    tasks: dict[str, Any] = {}
    with Progress(*columns, console=err_console, transient=True) as bar:
        def report(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done, total=total)

        yield report


def _print(outcome) -> None:
    s = outcome.summary
    ex = s["examples"]
    console.print(f"wrote {escape(str(outcome.out))}: model_version [bold]{escape(outcome.version)}[/] (from "
                  f"{escape(s['source']['name'])} {escape(s['source']['version'])}); {ex['train']} training and "
                  f"{ex['held_out']} held-out examples from {ex['rows']} labelled rows; best step "
                  f"{s['training']['best_step']} of {s['training']['steps_run']}")
    table = Table(title="held-out split: before -> after")
    for column in ("metric", "before", "after"):
        table.add_column(column)
    before, after = s["held_out"]["before"], s["held_out"]["after"]
    for key, name in (("accuracy", "accuracy (WA)"), ("ua", "UA"), ("macro_f1", "macro-F1")):
        table.add_row(name, f"{before[key]:.3f}", f"{after[key]:.3f}")
    for c, row in after["per_class"].items():
        if row["support"]:
            table.add_row(f"F1 {escape(c)} (n={row['support']})", f"{before['per_class'][c]['f1']:.3f}",
                          f"{row['f1']:.3f}")
    console.print(table)
    missing = (s.get("history") or {}).get("missing") or []
    if missing:
        console.print(f"[yellow]{len(missing)} labelled call row(s) skipped[/] (no usable stored embedding); "
                      "finetune.json lists them")
    console.print(f"next: emowatch rescore --model {escape(str(outcome.out))} ... (README: \"A new classification "
                  "head\")")
