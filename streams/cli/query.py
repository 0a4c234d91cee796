"""`emowatch query alerts|distribution|agents|call|sql`: the seed's analyses over the ClickHouse history.

Each runs on the embedded engine (the sink's data dir, while no sink holds it) or on a server
(``--clickhouse-url``): the same SQL through the same client. ``--format table|json|csv``.
Exit codes: 0 done; 1 unknown call; 2 invalid options, refused SQL, or ClickHouse cannot be opened;
3 a query failed.
"""
from __future__ import annotations

import sys
from pathlib import Path

import typer

from emowatch.streams.cli.common import console, now_ms
from emowatch.streams.cli.history_store import (
    CLICKHOUSE_URL,
    DATA_DIR,
    fail,
    load_call_or_exit,
    open_history,
)

query_app = typer.Typer(no_args_is_help=True, help="The seed's analyses over the history (ClickHouse): alerts, "
                                                   "emotion distribution, agents, one call, read-only SQL.")

#: columns of JSON/CSV that the table leaves out (a terminal is narrow)
_ALERTS_TABLE_HIDES = frozenset({"emotions", "threshold", "started_ms"})
_CALL_TABLE_HIDES = frozenset({"call_id", "business_line", "agent", "duration_s", *_ALERTS_TABLE_HIDES})
FORMAT = typer.Option("table", "--format", "-f", help="table | json (list of objects) | csv (header row).")


def _format(fmt: str) -> str:
    from emowatch.streams.analytics.output import FORMATS

    if fmt not in FORMATS:
        raise fail(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}", 2)
    return fmt


def _time(name: str, value: str | None, now: int) -> int | None:
    from emowatch.streams.cli.time_args import parse_since_ms

    if value is None:
        return None
    try:
        return parse_since_ms(value, now_ms=now)
    except ValueError as exc:
        raise fail(f"{name}: {exc}", 2) from None


def _choices(name: str, value: str | None, allowed: tuple[str, ...]) -> list[str] | None:
    if value is None:
        return None
    picked = [p.strip().upper() for p in value.split(",") if p.strip()]
    bad = [p for p in picked if p not in allowed]
    if bad or not picked:
        raise fail(f"{name} {value!r}: each value must be one of {', '.join(allowed)} (any case)", 2)
    return picked


def _run(query, fmt: str, clickhouse_url: str | None, data_dir: Path | None, title: str,
         hide: frozenset[str] = frozenset()) -> None:
    from emowatch.streams.analytics.output import render
    from emowatch.streams.analytics.runner import AnalyticsError, run

    fmt = _format(fmt)
    with open_history(clickhouse_url, data_dir) as (client, db):
        try:
            result = run(client, query, db)
        except AnalyticsError as exc:
            raise fail(str(exc), 3) from None
    render([(title, result)], fmt, console, hide=hide)


@query_app.command("alerts")
def alerts(
    since: str = typer.Option("1d", "--since", help="From: a duration ago (1d, 2h, 30m), ISO-8601 or epoch ms."),
    until: str = typer.Option(None, "--until", help="Before this (default: now)."),
    business_line: str = typer.Option(None, "--business-line", help="Only this business line."),
    priority: str = typer.Option(None, "--priority", help="Comma list, any case: low,medium,high,critical."),
    status: str = typer.Option(None, "--status", help="FIRING or RESOLVED (comma list)."),
    rule: str = typer.Option(None, "--rule", help="Only this rule id."),
    call: str = typer.Option(None, "--call", help="Only this call."),
    limit: int = typer.Option(100, "--limit", min=1, max=100_000, help="At most this many events."),
    fmt: str = FORMAT, clickhouse_url: str = CLICKHOUSE_URL, data_dir: Path = DATA_DIR,
) -> None:
    """Alert events (FIRING and RESOLVED; replays excluded), newest first."""
    from emowatch.streams.analytics.queries import alerts as build
    from emowatch.streams.sink.read_api import PRIORITIES, STATUSES

    now = now_ms()
    query = build(since=_time("--since", since, now), until=_time("--until", until, now), business_line=business_line,
                  priority=_choices("--priority", priority, PRIORITIES), status=_choices("--status", status, STATUSES),
                  rule_id=rule, call_id=call, limit=limit)
    _run(query, fmt, clickhouse_url, data_dir, f"alerts since {since}", hide=_ALERTS_TABLE_HIDES)


@query_app.command("distribution")
def distribution(
    exclude: str = typer.Option("unknown,other", "--exclude", help="Emotions left out (comma list; '' = none)."),
    granularity: str = typer.Option("utterance", "--granularity", help="utterance (per stored chunk) or frame "
                                                                       "(per 200 ms step)."),
    role: str = typer.Option(None, "--role", help="CUSTOMER, AGENT or MIXED (any case)."),
    business_line: str = typer.Option(None, "--business-line", help="Only this business line."),
    agent: str = typer.Option(None, "--agent", help="Only this agent (call attribute agent_id)."),
    since: str = typer.Option(None, "--since", help="From (default: all history): 1d, 2h, ISO-8601, epoch ms."),
    until: str = typer.Option(None, "--until", help="Before this."),
    fmt: str = FORMAT, clickhouse_url: str = CLICKHOUSE_URL, data_dir: Path = DATA_DIR,
) -> None:
    """Records per emotion and their share (the seed's GROUP BY emotion), most frequent first."""
    from emowatch.streams.analytics.queries import GRANULARITIES
    from emowatch.streams.analytics.queries import distribution as build

    if granularity not in GRANULARITIES:
        raise fail(f"--granularity must be one of {', '.join(GRANULARITIES)}, not {granularity!r}", 2)
    now = now_ms()
    roles = _choices("--role", role, ("CUSTOMER", "AGENT", "MIXED"))
    query = build(granularity=granularity, exclude=[e.strip() for e in exclude.split(",") if e.strip()],
                  role=roles[0] if roles else None, business_line=business_line, agent=agent,
                  since=_time("--since", since, now), until=_time("--until", until, now))
    _run(query, fmt, clickhouse_url, data_dir, f"emotions per {'chunk' if granularity == 'utterance' else '200 ms'}")


@query_app.command("agents")
def agents(
    since: str = typer.Option(None, "--since", help="Chunks from (default: all history): 1d, 2h, ISO-8601."),
    until: str = typer.Option(None, "--until", help="Chunks before this."),
    business_line: str = typer.Option(None, "--business-line", help="Only this business line."),
    limit: int = typer.Option(1000, "--limit", min=1, help="At most this many agents."),
    fmt: str = FORMAT, clickhouse_url: str = CLICKHOUSE_URL, data_dir: Path = DATA_DIR,
) -> None:
    """Per agent: calls, talk time, customer anger, alerts fired, the customer's most frequent emotion."""
    from emowatch.streams.analytics.queries import agents as build

    now = now_ms()
    query = build(since=_time("--since", since, now), until=_time("--until", until, now),
                  business_line=business_line, limit=limit)
    _run(query, fmt, clickhouse_url, data_dir, "agents, angriest customers first")


@query_app.command("call")
def call(
    call_id: str = typer.Argument(..., help="The call id."),
    fmt: str = FORMAT, clickhouse_url: str = CLICKHOUSE_URL, data_dir: Path = DATA_DIR,
) -> None:
    """One call: business line, agent, duration, per role the seed's summary line and segments; its alerts."""
    from emowatch.streams.analytics.call_summary import call_sections
    from emowatch.streams.analytics.output import render

    fmt = _format(fmt)
    found = load_call_or_exit(clickhouse_url, data_dir, call_id)
    sections = call_sections(found)
    if fmt == "table":
        console.print(f"[bold]call {found['call_id']}[/] · line {found['business_line']} · agent "
                      f"{found.get('agent') or '–'} · {found['duration_ms'] / 1000:.1f} s")
    render(sections, fmt, console, empty="none", hide=_CALL_TABLE_HIDES)


@query_app.command("sql")
def sql(
    text: str = typer.Argument(..., metavar="SQL", help="One SELECT/WITH/SHOW/DESCRIBE/EXPLAIN ('-' = stdin); "
                                                         "tables of the sink's database without a prefix."),
    fmt: str = FORMAT, clickhouse_url: str = CLICKHOUSE_URL, data_dir: Path = DATA_DIR,
) -> None:
    """Run one read-only query (ClickHouse readonly=1; writes are refused) in the sink's database."""
    from emowatch.streams.analytics.output import render
    from emowatch.streams.analytics.runner import AnalyticsError, Result, check_read_only, run_sql

    fmt = _format(fmt)
    statement = sys.stdin.read() if text == "-" else text
    try:
        check_read_only(statement)
    except AnalyticsError as exc:
        raise fail(str(exc), 2) from None
    with open_history(clickhouse_url, data_dir) as (client, db):
        try:
            result: Result = run_sql(client, statement, db)
        except AnalyticsError as exc:
            raise fail(str(exc), 3) from None
    render([("result", result)], fmt, console, empty="no rows")
