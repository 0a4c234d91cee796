"""`emowatch rescore`: re-run inference over the audio topic with another model into a separate scores topic.

Exit codes: 0 = done; 2 = invalid arguments, a refused target topic (a topic of the deployment) or bad
settings; 3 = the model could not be loaded; 4 = the broker or ClickHouse failed. Progress goes to
stderr; the summary (chunks, calls, model version, seconds, real-time factor) to stdout.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from emowatch.streams.cli.common import console
from emowatch.streams.cli.common import settings_or_exit as _settings
from emowatch.streams.cli.time_args import format_ms, parse_time_ms

err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)


def _invalid(reason: str) -> typer.Exit:
    console.print(f"[red]invalid:[/] {escape(reason)}")
    return typer.Exit(2)


def split_calls(values: list[str]) -> frozenset[str]:
    """``--calls a,b --calls c`` -> {a, b, c}."""
    return frozenset(c.strip() for v in values for c in v.split(",") if c.strip())


def rescore(
    from_: str = typer.Option(..., "--from", help="Start: ISO-8601 (UTC without a zone), epoch ms, now, or -2h."),
    to: str | None = typer.Option(None, "--to", help="End (exclusive; default: the end of the topic at start)."),
    model: str = typer.Option(..., "--model", help="Model directory or hub id (e.g. iic/emotion2vec_plus_large)."),
    scores_topic: str = typer.Option(..., "--scores-topic", help="Separate topic for the new scores (full name; "
                                                                "created like the scores topic when missing)."),
    business_line: str | None = typer.Option(None, "--business-line", help="Only calls of this business line."),
    calls: list[str] = typer.Option([], "--calls", help="Only these call ids (comma-separated, repeatable)."),
    store: bool = typer.Option(False, "--store", help="Also write the scores to ClickHouse table scores_rescored "
                                                      "(model_version in its key; production's rows untouched)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the summary as JSON to this file."),
) -> None:
    """Score the audio of a time window again with another model, into a separate scores topic.

    Production is not disturbed: no consumer group, no commits, never the production scores topic.
    Replay rules over the new topic (emowatch replay --scores-topic NAME) and diff to judge the model."""
    from emowatch.streams.rescore.errors import RescoreError
    from emowatch.streams.rescore.runner import Rescore, check_target
    from emowatch.streams.rescore.selection import Selection, warmup_ms

    s = _settings()
    now = int(time.time() * 1000)
    try:
        start, end = parse_time_ms(from_, now_ms=now), (parse_time_ms(to, now_ms=now) if to else None)
        inf = s.infer
        selection = Selection(start, end, business_line, split_calls(calls),
                              warmup_ms(inf.context_s, inf.max_chunk_s, inf.reorder_timeout_s))
        check_target(s.kafka, scores_topic)
    except (ValueError, RescoreError) as exc:
        raise _invalid(str(exc)) from None
    loaded = _load(model, s)
    chstore = _store(s) if store else None
    window = f"{format_ms(start)} .. {format_ms(end) if end else 'end of topic'}"
    err_console.print(f"rescoring {escape(window)} with {escape(loaded.name)} ({escape(loaded.version)}) "
                      f"into {escape(scores_topic)}")
    columns = (TextColumn("[bold]records"), BarColumn(), MofNCompleteColumn(),
               TextColumn("chunks {task.fields[chunks]}  calls {task.fields[calls]}"), TimeElapsedColumn())
    try:
        with Progress(*columns, console=err_console, transient=True) as progress:
            task = progress.add_task("rescore", total=None, chunks=0, calls=0)

            def report(done: int, total: int, chunks: int, n_calls: int) -> None:
                progress.update(task, completed=done, total=total, chunks=chunks, calls=n_calls)

            summary = Rescore(s, selection, model=loaded, target=scores_topic, store=chstore, progress=report).run()
    except Exception as exc:  # noqa: BLE001 - RescoreError, a Kafka client or ClickHouse error: exit 4, no traceback
        from emowatch.topics.security import redact_url

        what = str(exc) if isinstance(exc, RescoreError) else f"{type(exc).__name__}: {exc}"
        console.print(f"[red]rescore failed:[/] {escape(redact_url(what)[:500])}")
        raise typer.Exit(4) from None
    finally:
        if chstore is not None:
            chstore.close()
    _print(summary)
    if json_out is not None:
        json_out.write_text(json.dumps(summary.as_dict(), indent=2) + "\n", encoding="utf-8")


def _load(model: str, s):
    from emowatch.models.loader import ModelLoadError, load_model

    try:
        return load_model(model, device=s.model.device, precision=s.model.precision)
    except ModelLoadError as exc:
        console.print(f"[red]cannot load the model:[/] {escape(str(exc))}")
        raise typer.Exit(3) from None


def _store(s):
    from emowatch.streams.sink.clickhouse import cluster_of, connect
    from emowatch.streams.sink.rescored import RescoredStore

    cluster = cluster_of(s.sink)
    try:
        return RescoredStore(connect(s.sink.clickhouse_url, s.sink.data_dir, s.sink.database, cluster),
                             s.sink.database, cluster)
    except Exception as exc:  # noqa: BLE001 - e.g. the embedded ClickHouse is held by a running sink
        console.print(f"[red]cannot open ClickHouse:[/] {escape(type(exc).__name__)} (the embedded engine allows "
                      "one process per data path: stop the sink, or set EMOWATCH_SINK__CLICKHOUSE_URL)")
        raise typer.Exit(4) from None


def _print(summary) -> None:
    t = Table(title=f"rescore into {summary.target}", show_header=False)
    for k, v in (("model", f"{summary.model_name} ({summary.model_version})"), ("chunks scored", summary.chunks),
                 ("calls", summary.calls), ("records read", summary.records_read),
                 ("context-only chunks", summary.context_chunks), ("undecodable / failed", f"{summary.rejected} / "
                                                                                           f"{summary.failed}"),
                 ("audio", f"{summary.audio_s:.1f} s"), ("seconds", f"{summary.seconds:.1f}"),
                 ("real-time factor", f"{summary.rtf:.3f}"), ("rows in scores_rescored", summary.stored_rows)):
        t.add_row(k, escape(str(v)))
    console.print(t)
    if summary.started_from_earliest:
        console.print("read from the earliest offsets, skipping chunks before --from by event time")
