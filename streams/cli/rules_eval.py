"""`emowatch rules evaluate`: precision and recall of each rule of a file over calls labelled with the rules that
should fire on them (docs/rules.md section 12).

Exit codes: 0 done; 2 an invalid labelled set, rule file or option, a recording the gateway would refuse, a stored
call that is missing, or ClickHouse that cannot be opened; 3 the model or the voice-activity detector could not be
loaded; 4 reading the history failed. The report goes to stdout (``--format json``: only the JSON), progress and
the model's loading messages to stderr.
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
from rich.table import Table

from emowatch.streams.cli.common import console
from emowatch.streams.cli.common import settings_or_exit as _settings
from emowatch.streams.cli.history_store import CLICKHOUSE_URL, DATA_DIR, fail, open_history

err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)
UNDEFINED_MARK = "*"


def rules_evaluate(
    labels: Path = typer.Option(..., "--labels", help="CSV of calls: audio (a WAV) or call_id (a stored call), "
                                                      "expected (rule ids separated by ';', or none), "
                                                      "optional business_line, role, attr.<name>."),
    rules: Path = typer.Option(..., "--rules", help="Rule file to evaluate."),
    model: str | None = typer.Option(None, "--model", help="Model directory or hub id for the recordings "
                                                           "(default: EMOWATCH_MODEL__MODEL)."),
    format_: str = typer.Option("table", "--format", help="table | json"),
    clickhouse_url: str | None = CLICKHOUSE_URL,
    data_dir: Path | None = DATA_DIR,
) -> None:
    """Which rules fired on each labelled call against which should have: tp, fp, fn, tn, precision, recall and
    F1 per rule, and the per-call table.

    Recordings are scored as the gateway and the inference agent would (1 s chunks, left context, voice
    activity, the same engine); stored calls are read from ClickHouse as `emowatch replay` reads them. The
    rules run in the pure engine on throw-away state; nothing is published or stored."""
    from emowatch.models.quality.errors import QualityError
    from emowatch.models.quality.rule_eval import read_calls
    from emowatch.streams.replay.labelled_calls import RuleEvaluation

    if format_ not in ("table", "json"):
        raise fail(f"--format must be table or json, not {format_!r}", 2)
    s = _settings()
    ruleset = _ruleset(rules)
    try:
        calls = read_calls(labels, [r.id for r in ruleset.rules], business_line=ruleset.business_line)
    except QualityError as exc:
        raise fail(str(exc), 2) from None
    evaluation = RuleEvaluation(ruleset, labels)
    try:
        if any(c.call_id is not None for c in calls):
            _history(evaluation, calls, clickhouse_url, data_dir)
        if any(c.audio is not None for c in calls):
            _audio(evaluation, calls, model or s.model.model, s)
        report = evaluation.report(calls)
    except QualityError as exc:
        raise fail(str(exc), 2) from None
    if format_ == "json":
        typer.echo(json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False))
    else:
        print_report(console, report)


def _ruleset(path: Path) -> Any:
    from emowatch.rules.errors import RuleFileError
    from emowatch.rules.loader import load_ruleset, read_rule_file
    from emowatch.rules.seed_format import is_seed_text

    try:
        if is_seed_text(read_rule_file(path)):
            raise fail(f"{path} is in the seed's format; convert it first (`emowatch rules convert {path} --out "
                       "FILE.yaml`) and label the calls with the converted rule ids", 2)
        return load_ruleset(path)
    except RuleFileError as exc:
        for e in exc.errors or [exc]:
            console.print(f"[red]{escape(str(e))}[/]")
        raise fail(f"invalid rule file {path}: {len(exc.errors or [exc])} problem(s)", 2) from None


def _history(evaluation: Any, calls: list, clickhouse_url: str | None, data_dir: Path | None) -> None:
    from emowatch.models.quality.errors import QualityError

    with open_history(clickhouse_url, data_dir) as (client, db):
        try:
            evaluation.run_history(calls, client, db)
        except QualityError:
            raise
        except Exception as exc:  # noqa: BLE001 - the client's own errors: exit 4, no traceback
            from emowatch.topics.security import redact_url

            raise fail(f"reading the stored calls failed: {type(exc).__name__}: {redact_url(str(exc))[:500]}",
                       4) from None


def _audio(evaluation: Any, calls: list, model: str, s: Any) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from emowatch.models.loader import ModelLoadError, load_model
    from emowatch.streams.infer.vad import VadError
    from emowatch.streams.replay.audio_source import AudioCallError, AudioCalls

    try:
        with contextlib.redirect_stdout(sys.stderr):  # FunASR prints while it loads; stdout is the report's
            loaded = load_model(model, device=s.model.device, precision=s.model.precision)
            audio = AudioCalls(loaded, s)
    except (ModelLoadError, VadError) as exc:
        raise fail(f"cannot load {'the model' if isinstance(exc, ModelLoadError) else 'voice activity'}: {exc}",
                   3) from None
    todo = [c for c in calls if c.audio is not None]
    columns = (TextColumn("[bold]scoring recordings"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=err_console, transient=True) as bar:
            task = bar.add_task("evaluate", total=len(todo))
            evaluation.run_audio(calls, audio, progress=lambda _call: bar.advance(task))
    except AudioCallError as exc:
        raise fail(str(exc), 2) from None


def _ratio(value: float, name: str, undefined: list[str]) -> str:
    return f"{value:.2f}{UNDEFINED_MARK if name in undefined else ''}"


def print_report(out: Console, report: dict[str, Any]) -> None:
    """The per-rule table, the per-call table and the notes."""
    models = ", ".join(report["models"]) or "none"
    out.print(f"rule set [bold]{escape(report['rule_set'])}[/] (version {report['rule_version']}, business line "
              f"{escape(report['business_line'])}) over {report['n_calls']} labelled call(s) from "
              f"{escape(report['labels'])}; scores by model {escape(models)}")
    t = Table(title="per rule", title_justify="left")
    for col in ("rule", "tp", "fp", "fn", "tn", "precision", "recall", "F1"):
        t.add_column(col, justify="left" if col == "rule" else "right")
    rows = [(r["rule"] + (" (disabled)" if r["disabled"] else ""), r) for r in report["rules"]]
    rows += [("(all rules, micro)", report["micro"]), ("(call alerted at all)", report["any_alert"])]
    for i, (name, r) in enumerate(rows):
        und = r["undefined"]
        t.add_row(escape(name), str(r["tp"]), str(r["fp"]), str(r["fn"]), str(r["tn"]),
                  _ratio(r["precision"], "precision", und), _ratio(r["recall"], "recall", und),
                  _ratio(r["f1"], "f1", und), end_section=i == len(report["rules"]) - 1)
    out.print(t)
    if any(r["undefined"] for _, r in rows):
        out.print(f"{UNDEFINED_MARK} zero division, reported as 0: precision of a rule that never fired, recall of "
                  "a rule no call expected, F1 when both are 0")
    c = Table(title="per call", title_justify="left")
    for col in ("line", "call", "expected", "fired (first, call offset)", "result"):
        c.add_column(col)
    for row in report["calls"]:
        fired = ", ".join(f"{r}@{v['fired_ms'] / 1000:g}s" for r, v in row["fired"].items()) or "-"
        result = "; ".join([*(f"missed {r}" for r in row["missed"]), *(f"extra {r}" for r in row["extra"])])
        c.add_row(str(row["line"]), escape(row["call"]), escape(", ".join(row["expected"]) or "none"), escape(fired),
                  "[green]ok[/]" if not result else f"[red]{escape(result)}[/]")
    out.print(c)
    for note in report["notes"]:
        out.print(f"[yellow]note:[/] {escape(note)}")
