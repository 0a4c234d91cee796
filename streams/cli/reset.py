"""`emowatch rules reset`: make one business line's rules workers reprocess from a time (like Kafka Streams'
application reset tool): their group's offsets on the scores topic move to the first offset at or after
the time, and their call table's state (changelog topic) is cleared.

Exit codes: 0 = done (or planned, with --dry-run); 1 = refused: the group has running workers (nothing
changed); 2 = invalid arguments or settings; 3 = the broker failed.
"""
from __future__ import annotations

import time

import typer
from rich.markup import escape

from emowatch.streams.cli.common import console
from emowatch.streams.cli.common import settings_or_exit as _settings
from emowatch.streams.cli.time_args import format_ms, parse_time_ms


def rules_reset(
    business_line: str = typer.Option(..., "--business-line", help="Business line of the workers ('*' = the "
                                                                   "workers of all lines, group ...-all)."),
    to_datetime: str = typer.Option(..., "--to-datetime", help="Reprocess from this time: ISO-8601 (UTC without "
                                                               "a zone), epoch ms, or a duration ago (-2h)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would change; change nothing."),
) -> None:
    """Reset a business line's rules workers to a time: move their offsets and clear their table state.

    Stop every worker of the line first (refused otherwise). When restarted, the workers re-evaluate the
    scores from that time on with empty call states and re-produce the window's alerts with the same
    alert ids. Calls in progress at that time are evaluated from it on only."""
    from emowatch.streams.kafka.rules_reset import apply_reset, check_idle, plan_reset
    from emowatch.streams.rules_worker.reset_plan import ResetError

    s = _settings()
    try:
        to_ms = parse_time_ms(to_datetime, now_ms=int(time.time() * 1000))
    except ValueError as exc:
        console.print(f"[red]invalid:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    try:
        plan, keys = plan_reset(s, business_line, to_ms)
        for line in plan.lines(format_ms):
            console.print(escape(line))
        check_idle(s, plan.group)
        if dry_run:
            console.print("[yellow]dry run:[/] nothing changed")
            return
        cleared = apply_reset(s, plan, keys)
    except ResetError as exc:
        console.print(f"[red]refused:[/] {escape(str(exc))}")
        raise typer.Exit(1) from None
    except Exception as exc:  # noqa: BLE001 - a Kafka client error (KafkaException, timeouts): exit 3, no traceback
        from emowatch.topics.security import redact_url

        console.print(f"[red]broker error:[/] {escape(redact_url(f'{type(exc).__name__}: {exc}'))}")
        raise typer.Exit(3) from None
    console.print(f"[green]reset[/] {escape(plan.group)}: {len(plan.moves)} partition offset(s) moved, "
                  f"{cleared} call state(s) cleared; start the workers to reprocess")
