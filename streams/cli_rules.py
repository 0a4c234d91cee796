"""`emowatch rules` commands."""
from __future__ import annotations

from pathlib import Path

import typer

from emowatch.streams.cli_common import console, settings_or_exit as _settings  # noqa: F401

rules_app = typer.Typer(no_args_is_help=True, help="Validate and publish rule files.")


@rules_app.command("check")
def rules_check(files: list[Path]) -> None:
    """Validate rule files; print file:line: reason for each problem."""
    from emowatch.rules.check import check_files

    errors = check_files(files)
    for e in errors:
        console.print(f"[red]{e}[/]")
    if not errors:
        console.print(f"[green]{len(files)} rule file(s) OK[/]")
    raise typer.Exit(1 if errors else 0)
