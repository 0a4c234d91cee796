"""`emowatch model evaluate` and `emowatch model make-testset`: the seed's accuracy method (issue #16).

``evaluate`` scores a labelled set (CSV: audio or call_id, label, scenario) with a model through the batched
engine and prints, per scenario and weighted, accuracy (WA), UA, macro-F1, per-class precision/recall and the
confusion matrix (``--out DIR``: one PNG per scenario and ``report.json``); ``--format json`` prints the whole
result (metrics and every item's prediction) for CI. ``--augment quiet,office,phone`` scores every item in each
scenario built from its clean audio. Progress goes to stderr.

Exit codes: 0 done; 1 done, but some items could not be scored (listed; left out of the metrics); 2 invalid
options or labelled set; 3 the model could not be loaded; 4 the audio topic could not be read (call_id rows).
"""
from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from emowatch.streams.cli.common import console
from emowatch.streams.cli.common import settings_or_exit as _settings

err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)
FORMATS = ("table", "json")


def _invalid(reason: str) -> typer.Exit:
    err_console.print(f"[red]invalid:[/] {escape(reason)}")
    return typer.Exit(2)


def evaluate(
    labels: Path = typer.Option(..., "--labels", help="Labelled CSV: audio (or call_id with start_s, end_s, role), "
                                                      "label (angry, 生气/angry, 生气, <unk> ...), scenario."),
    model: str = typer.Option(..., "--model", help="Model directory or hub id (e.g. models/demo, "
                                                   "iic/emotion2vec_plus_large)."),
    scenario_column: str = typer.Option("scenario", "--scenario-column", help="The CSV's scenario column."),
    augment: str | None = typer.Option(None, "--augment", help="Score every item in each of these scenarios, "
                                                               "built from its clean audio: quiet,office,phone."),
    weights: str | None = typer.Option(None, "--weights", help="Scenario weights of the combined figure, e.g. "
                                                               "quiet=0.5,office=0.3,phone=0.2 (default: shares "
                                                               "of the items; unnamed scenarios weigh 0)."),
    snr_db: float | None = typer.Option(None, "--snr-db", help="Clip-to-noise ratio of the office scenario "
                                                               "(dB; default 10)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the augmentation."),
    out: Path | None = typer.Option(None, "--out", help="Write confusion_<scenario>.png and report.json here."),
    fmt: str = typer.Option("table", "--format", "-f", help="table | json (the whole result on stdout)."),
    batch: int | None = typer.Option(None, "--batch", min=1, help="Items scored together (default 16)."),
) -> None:
    """Accuracy, UA/WA, macro-F1 and confusion of a model on a labelled set, per scenario and weighted."""
    from emowatch.models.quality.augment import DEFAULT_SNR_DB
    from emowatch.models.quality.errors import QualityError
    from emowatch.models.quality.evaluate import DEFAULT_BATCH, parse_scenarios, parse_weights, scenarios_of
    from emowatch.models.quality.evaluate import evaluate as run
    from emowatch.models.quality.labels import read_labels

    if fmt not in FORMATS:
        raise _invalid(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    try:
        scen = parse_scenarios(augment) if augment is not None else None
        w = parse_weights(weights) if weights is not None else None
        items = read_labels(labels, scenario_column=scenario_column)
        known = scenarios_of(items, scen)
        if w is not None and set(w) - set(known):
            raise QualityError(f"--weights names {sorted(set(w) - set(known))}, but the scenarios are {list(known)}")
    except QualityError as exc:
        raise _invalid(str(exc)) from None
    s = _settings()
    loaded = _load(model, s)
    call_audio = _call_audio(s, str(labels)) if any(it.audio is None for it in items) else None
    err_console.print(f"evaluating {len(items)} items of {escape(str(labels))} with {escape(loaded.name)} "
                      f"({escape(loaded.version)}) in {', '.join(known)}")
    columns = (TextColumn("[bold]items"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=err_console, transient=True) as progress:
            task = progress.add_task("evaluate", total=len(items))
            result = run(items, loaded, augment_with=scen, weights=w, seed=seed,
                         snr_db=DEFAULT_SNR_DB if snr_db is None else snr_db, batch=batch or DEFAULT_BATCH,
                         call_audio=call_audio, source=str(labels),
                         progress=lambda done, total: progress.update(task, completed=done, total=total))
    except QualityError as exc:
        raise _invalid(str(exc)) from None
    if out is not None:
        from emowatch.models.quality.plots import write_confusion_pngs

        result["pngs"] = write_confusion_pngs(result, out)
        (out / "report.json").write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    if fmt == "json":
        typer.echo(json.dumps(result, ensure_ascii=False))
    else:
        _print(result, w)
    for e in result["errors"]:
        err_console.print(f"[yellow]not scored:[/] {escape(e['reason'])} ({escape(e['code'])})")
    if result["errors"]:
        raise typer.Exit(1)


def _load(model: str, s):
    from emowatch.models.loader import ModelLoadError, load_model

    try:  # FunASR prints notices on stdout while it loads: stdout is for the result (--format json)
        with contextlib.redirect_stdout(sys.stderr):
            return load_model(model, device=s.model.device, precision=s.model.precision)
    except ModelLoadError as exc:
        err_console.print(f"[red]cannot load the model:[/] {escape(str(exc))}")
        raise typer.Exit(3) from None


def _call_audio(s, source: str):
    """The reader of call_id rows' audio (the audio topic); a failure to read it exits 4."""
    def read(items):
        from emowatch.models.quality.errors import QualityError
        from emowatch.streams.rescore.call_audio import read_call_audio

        try:
            return read_call_audio(s, items, source=source)
        except QualityError:
            raise
        except Exception as exc:  # noqa: BLE001 - a Kafka client error: exit 4, no traceback
            err_console.print(f"[red]cannot read the audio topic:[/] {escape(f'{type(exc).__name__}: {exc}'[:500])}")
            raise typer.Exit(4) from None
    return read


def _f(x: float) -> str:
    return f"{x:.3f}"


def _print(result: dict[str, Any], weights: dict[str, float] | None) -> None:
    reps, wt = result["scenarios"], result["weighted"]
    t = Table(title=f"{result['model']['name']} ({result['model']['version']}) · prediction: {result['prediction']}")
    for col in ("scenario", "n", "weight", "accuracy (WA)", "UA", "macro-F1"):
        t.add_column(col, justify="left" if col == "scenario" else "right")
    for name, r in reps.items():
        t.add_row(escape(name), str(r["n"]), _f(wt["weights"].get(name, 0.0)), _f(r["accuracy"]), _f(r["ua"]),
                  _f(r["macro_f1"]))
    t.add_row("[bold]weighted" + (" (given)" if weights else " (shares)"), str(wt["n"]), "1.000",
              _f(wt["accuracy"]), _f(wt["ua"]), _f(wt["macro_f1"]))
    console.print(t)
    for name, r in reps.items():
        m = r["confusion"]
        keep = [i for i, c in enumerate(r["classes"]) if sum(m[i]) or sum(row[i] for row in m)]
        cm = Table(title=f"{name}: confusion (rows true, columns predicted) and per class")
        cm.add_column("true \\ pred")
        for i in keep:
            cm.add_column(escape(r["classes"][i]), justify="right")
        for col in ("support", "precision", "recall", "F1"):
            cm.add_column(col, justify="right")
        for i in keep:
            c = r["per_class"][r["classes"][i]]
            cm.add_row(escape(r["classes"][i]), *(str(m[i][j]) for j in keep), str(c["support"]),
                       _f(c["precision"]), _f(c["recall"]), _f(c["f1"]))
        console.print(cm)
    if result.get("pngs"):
        console.print("pictures: " + ", ".join(escape(p) for p in result["pngs"].values()))


def make_testset(
    out: Path = typer.Option(..., "--out", help="Folder for clips/ and labels.csv."),
    per_class: int = typer.Option(20, "--per-class", min=1, help="Clips per class (angry, neutral, sad, unknown)."),
    seed: int = typer.Option(0, "--seed"),
    seconds: float = typer.Option(3.0, "--seconds", min=0.5, help="Length of each clip."),
    scenarios: str | None = typer.Option(None, "--scenarios", help="Write augmented copies in these scenarios "
                                                                   "(e.g. quiet,office,phone) instead of clean "
                                                                   "clips only."),
) -> None:
    """Write a labelled synthetic test set (prosody classes of the demo generator; NOT human speech)."""
    from emowatch.models.quality.errors import QualityError
    from emowatch.models.quality.evaluate import parse_scenarios
    from emowatch.models.quality.testset import make_testset as make

    try:
        scen = parse_scenarios(scenarios) if scenarios is not None else None
        path = make(out, per_class, seed, seconds, scenarios=scen)
    except QualityError as exc:
        raise _invalid(str(exc)) from None
    console.print(f"wrote {escape(str(path))}")
