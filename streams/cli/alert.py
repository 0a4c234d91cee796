"""`emowatch alert ack`: acknowledge an alert on the compacted acks topic (the notifier then sends no
more FIRING notifications for it). Exit 2 = invalid arguments (nothing published), 3 = broker failure."""
from __future__ import annotations

import time

import typer
from rich.markup import escape

from emowatch.streams.cli.common import settings_or_exit as _settings
from emowatch.streams.cli.notify import say

alert_app = typer.Typer(no_args_is_help=True, help="Acknowledge alerts.")


@alert_app.command("ack")
def alert_ack(
    alert_id: str = typer.Argument(..., help="alert_id of the Alert record."),
    by: str = typer.Option(..., "--by", help="Who takes the alert over."),
    comment: str = typer.Option("", "--comment", "-c", help="What is being done."),
    call_id: str | None = typer.Option(None, "--call-id", help="Call of the alert (for display)."),
) -> None:
    """Acknowledge ALERT_ID: no more FIRING notifications or reminders for it (its RESOLVED is still sent)."""
    from emowatch.streams.kafka.notify_control import ControlPublishError, publish_ack
    from emowatch.streams.notify.errors import MatcherError
    from emowatch.streams.notify.records import ack_record
    from emowatch.topics.security import redact_url

    try:
        record = ack_record(alert_id, by=by, now_ms=int(time.time() * 1000), comment=comment, call_id=call_id)
    except MatcherError as exc:
        say(f"[red]invalid:[/] {escape(str(exc))}; nothing published")
        raise typer.Exit(2) from None
    try:
        publish_ack(_settings().kafka, record)
    except ControlPublishError as exc:
        say(f"[red]error:[/] {escape(redact_url(str(exc)))}")
        raise typer.Exit(3) from None
    say(f"acknowledged {escape(alert_id)} by {escape(by)}")
