"""`emowatch notify` commands: check a notifier configuration (docs/notify.md).

Exit codes: 0 = valid (prints ``ok``), 1 = problems (one ``file:line: reason`` line each),
2 = the secret file cannot be read. Secret values are never printed: problems name secrets only.
"""
from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from emowatch.streams.cli.common import console

notify_app = typer.Typer(no_args_is_help=True, help="Check the notifier configuration.")


def say(text: str) -> None:
    """One output line: rich markup (escape dynamic text), no highlighting, never wrapped (greppable)."""
    console.print(text, highlight=False, soft_wrap=True)


@notify_app.command("check")
def notify_check(
    file: Path = typer.Argument(..., help="Notifier configuration (YAML), e.g. infra/notify/notify.yaml."),
    secrets: Path | None = typer.Option(
        None, "--secrets", help="Secret file (name: value); without it, {secret: NAME} references are not resolved."),
) -> None:
    """Validate a notifier configuration: print file:line: reason for each problem (exit 1) or ok."""
    from emowatch.streams.notify.config_loader import check_config
    from emowatch.streams.notify.errors import SecretError
    from emowatch.streams.notify.secret_store import SecretStore

    store = None
    if secrets is not None:
        try:
            store = SecretStore.from_file(secrets)
        except SecretError as exc:
            say(f"[red]error:[/] {escape(str(exc))}")
            raise typer.Exit(2) from None
    problems = check_config(file, secrets=store)
    for p in problems:
        say(f"[red]{escape(p)}[/]")
    if not problems:
        say("[green]ok[/]")
    raise typer.Exit(1 if problems else 0)
