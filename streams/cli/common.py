"""Shared pieces of the CLI modules."""
from __future__ import annotations

import sys
import time

import typer
from rich.console import Console

from emowatch.streams.settings import Settings, SettingsError, load_settings

# Piped output (CI logs, `make demo | tee`) gets a readable width instead of rich's 80 columns.
console = Console(width=None if sys.stdout.isatty() else 140)


def settings_or_exit() -> Settings:
    """Load settings; on a bad EMOWATCH_* variable print it and exit 2 (fail fast)."""
    try:
        return load_settings()
    except SettingsError as exc:
        console.print(f"[red]configuration error:[/] {exc}")
        raise typer.Exit(2) from None


def now_ms() -> int:
    """Wall-clock epoch milliseconds (the CLI's "now" for --since and silences)."""
    return int(time.time() * 1000)
