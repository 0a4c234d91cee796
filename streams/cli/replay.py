"""`emowatch replay`: re-evaluate a rule file over history (Kafka or ClickHouse), diff, sweep. docs/replay.md.

Exit codes: 0 done, 2 invalid options or rule file, 3 the broker or ClickHouse failed.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from emowatch.streams.cli.common import console
from emowatch.streams.cli.common import settings_or_exit as _settings
from emowatch.topics.errors import EmowatchError


def _fail(message: str, code: int) -> typer.Exit:
    console.print(f"[red]error:[/] {escape(message)}")
    return typer.Exit(code)


def replay(
    from_: str = typer.Option(..., "--from", help="Calls that started at or after this: ISO-8601, epoch ms, -2h."),
    to: str = typer.Option(None, "--to", help="Messages before this (default: to the end of the data)."),
    rules: Path = typer.Option(..., "--rules", help="Rule file to evaluate."),
    business_line: str = typer.Option(None, help="Business line (default: the rule set's; '*' sets: all)."),
    calls: list[str] = typer.Option(None, "--calls", help="Only these call ids (repeat, or comma-separated)."),
    source: str = typer.Option("auto", help="kafka | clickhouse | auto (kafka while the topic holds --from)."),
    scores_topic: str = typer.Option(None, help="Scores topic to read (default: production's), e.g. a rescore's."),
    model_version: str = typer.Option(None, help="ClickHouse source: only scores of this model version."),
    replay_id: str = typer.Option(None, help="Id of the replay (default: derived from its parameters)."),
    clickhouse_url: str = typer.Option(None, help="ClickHouse server (default: EMOWATCH_SINK__CLICKHOUSE_URL, "
                                                  "else the embedded engine in the sink's data dir)."),
    data_dir: Path = typer.Option(None, help="Data dir of the embedded ClickHouse (default: the sink's)."),
    no_store: bool = typer.Option(False, "--no-store", help="Write nothing to ClickHouse (print / --out only)."),
    to_topic: bool = typer.Option(False, "--to-topic", help="Also write the alerts to emowatch.alerts.replay.v1."),
    diff: bool = typer.Option(False, "--diff", help="Compare with production's alerts of the same window and calls."),
    against: str = typer.Option(None, help="--diff: production rule set to compare with (default: the file's)."),
    match_within: str = typer.Option("30s", help="--diff: pair unmatched episodes at most this far apart."),
    sweep: str = typer.Option(None, help="RULE.PARAM=START:STOP:STEP: every value in one pass."),
    out: Path = typer.Option(None, "--out", help="Write the result as JSON (.json) or CSV (.csv)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar."),
) -> None:
    """Re-evaluate a rule file over stored scores: alerts get a replay_id; never the production alerts topic."""
    from emowatch.rules.durations import parse_duration_ms
    from emowatch.rules.errors import RuleFileError
    from emowatch.rules.loader import load_ruleset
    from emowatch.streams.kafka.clients import topics_for
    from emowatch.streams.replay.params import ReplayParamsError, Scope, Window, parse_time, worker_line
    from emowatch.streams.replay.runner import ReplayRequest
    from emowatch.streams.replay.sweep import parse_sweep

    s = _settings()
    try:
        ruleset = load_ruleset(rules)
    except RuleFileError as exc:
        raise _fail(f"invalid rule file: {exc}", 2) from None
    now_ms = int(time.time() * 1000)
    ids = frozenset(c.strip() for item in (calls or []) for c in item.split(",") if c.strip())
    try:
        window = Window(parse_time(from_, now_ms), parse_time(to, now_ms) if to else None)
        scope = Scope(worker_line(business_line, ruleset.business_line), ids)
        spec = parse_sweep(sweep) if sweep else None
        within_ms = parse_duration_ms(match_within)
        if spec is not None and diff:
            raise ReplayParamsError("--sweep and --diff do not combine: diff one value at a time")
        if source not in ("auto", "kafka", "clickhouse"):
            raise ReplayParamsError(f"--source must be kafka, clickhouse or auto, not {source!r}")
    except (ReplayParamsError, ValueError) as exc:
        raise _fail(str(exc), 2) from None
    topic = scores_topic or topics_for(s.kafka).scores
    if source == "auto":
        source = _choose_source(s, topic, window.from_ms)
    ch_url, ch_dir, db = clickhouse_url or s.sink.clickhouse_url, data_dir or s.sink.data_dir, s.sink.database
    request = ReplayRequest(ruleset, str(rules), window, scope, source, topic if source == "kafka" else "",
                            model_version, spec, replay_id)
    client = None
    started_ms = int(time.time() * 1000)
    try:
        if source == "clickhouse" or (not no_store and spec is None):
            from emowatch.streams.replay.store import open_store
            from emowatch.streams.sink.clickhouse import cluster_of

            client = open_store(ch_url, ch_dir, db, cluster_of(s.sink))
        outcome = _run(request, s, client, db, progress)
        _outputs(request, outcome, s, client, db, started_ms, no_store=no_store, to_topic=to_topic,
                 diff=diff, against=against, within_ms=within_ms, out=out)
    except EmowatchError as exc:
        raise _fail(str(exc), 3) from None
    finally:
        if client is not None:
            client.close()


def _choose_source(s: Any, topic: str, from_ms: int) -> str:
    from emowatch.streams.kafka.replay_source import topic_holds

    holds = topic_holds(s.kafka, topic, from_ms)
    console.print(f"source: {'kafka' if holds else 'clickhouse'} ({escape(topic)} "
                  f"{'holds' if holds else 'no longer holds'} --from)")
    return "kafka" if holds else "clickhouse"


def _records(request: Any, s: Any, client: Any, db: str, stats: dict[str, Any]) -> tuple[Iterator[dict], int | None]:
    if request.source == "clickhouse":
        from emowatch.streams.replay.clickhouse_source import ClickHouseScores

        scores = ClickHouseScores(client, db, request.window, request.scope, model_version=request.model_version)

        def rows() -> Iterator[dict]:
            yield from scores
            stats.update(rows=scores.rows, pages=scores.pages)
        return rows(), None
    from emowatch.streams.kafka.replay_source import KafkaWindowReader

    reader = KafkaWindowReader(s.kafka, request.scores_topic, "FrameScores", from_ms=request.window.from_ms,
                               to_ms=request.window.to_ms, calls=request.scope.calls)
    if reader.fallback:
        console.print(f"[yellow]warning:[/] the broker's offsets for --from on {escape(request.scores_topic)} are "
                      "wrong (ListOffsets by timestamp); scanning from the earliest offsets, skipping by event time")

    def flat() -> Iterator[dict]:
        for batch in reader.batches():
            yield from batch
        stats.update(reader.stats())
    return flat(), reader.total


def _run(request: Any, s: Any, client: Any, db: str, show: bool) -> Any:
    from emowatch.streams.replay.runner import run_replay

    stats: dict[str, Any] = {}
    records, total = _records(request, s, client, db, stats)
    if not show:
        outcome = run_replay(request, records)
    else:
        with Progress(TextColumn("[bold]replay"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("messages, {task.fields[calls]} calls"), TimeElapsedColumn(),
                      console=console, transient=True) as bar:
            task = bar.add_task("replay", total=total, calls=0)
            outcome = run_replay(request, records,
                                 progress=lambda n, calls: bar.update(task, completed=n, calls=calls))
    outcome.source_stats = stats
    return outcome


def _outputs(request: Any, outcome: Any, s: Any, client: Any, db: str, started_ms: int, *, no_store: bool,
             to_topic: bool, diff: bool, against: str | None, within_ms: int, out: Path | None) -> None:
    from emowatch.streams.replay import report

    report.print_summary(console, outcome)
    if outcome.sweep is not None:
        report.print_sweep(console, outcome.sweep)
    elif not no_store:
        from emowatch.streams.replay.store import write_alerts, write_replay

        written = write_alerts(client, db, outcome.replay_id, outcome.events)
        write_replay(client, db, outcome.replays_row(started_ms, int(time.time() * 1000)))
        console.print(f"stored {written} alert events with replay_id {outcome.replay_id} (ClickHouse {db}.alerts; "
                      f"summary in {db}.replays)")
    if to_topic and outcome.sweep is None:
        from emowatch.streams.kafka.replay_alerts import publish_replay_alerts

        target, sent = publish_replay_alerts(s.kafka, outcome.events)
        console.print(f"published {sent} alert events to {escape(target)}")
    diff_report = None
    if diff:
        from emowatch.streams.replay.runner import compare

        rule_set = against or request.ruleset.rule_set
        production, where = _production(request, s, client, db, rule_set)
        diff_report = compare(outcome, production, match_within_ms=within_ms)
        report.print_diff(console, diff_report, f"{where}, rule set {rule_set}")
    if out is not None:
        report.write_out(out, outcome, diff_report)
        console.print(f"wrote {escape(str(out))}")


def _production(request: Any, s: Any, client: Any, db: str, rule_set: str) -> tuple[list[dict], str]:
    """Production's FIRING events: from ClickHouse when it is open, else from the Kafka alerts topic."""
    if client is not None:
        from emowatch.streams.replay.store import production_alerts

        return production_alerts(client, db, request.window, rule_set=rule_set,
                                 business_line=request.scope.business_line), f"ClickHouse {db}.alerts"
    from emowatch.streams.kafka.clients import topics_for
    from emowatch.streams.kafka.replay_source import KafkaWindowReader

    topic = topics_for(s.kafka).alerts
    reader = KafkaWindowReader(s.kafka, topic, "Alert", from_ms=request.window.from_ms, to_ms=request.window.to_ms,
                               calls=request.scope.calls, float_arrays="list")
    events = [ev for batch in reader.batches() for ev in batch
              if ev["rule_set"] == rule_set and not ev.get("replay_id")
              and request.scope.line_ok(ev["business_line"])]
    return events, f"Kafka {topic}"
