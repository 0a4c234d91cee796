"""Shared pieces of the CLI modules."""
from __future__ import annotations

import typer
from rich.console import Console

from emowatch.streams.settings import Settings, SettingsError, load_settings

console = Console()


def settings_or_exit() -> Settings:
    """Load settings; on a bad EMOWATCH_* variable print it and exit 2 (fail fast)."""
    try:
        return load_settings()
    except SettingsError as exc:
        console.print(f"[red]configuration error:[/] {exc}")
        raise typer.Exit(2) from None
