"""What `query`, `report` and `export` share: the ClickHouse options and opening the history.

``--clickhouse-url`` and ``--data-dir`` default to the sink's settings (``EMOWATCH_SINK__CLICKHOUSE_URL``,
``EMOWATCH_SINK__DATA_DIR``; database ``EMOWATCH_SINK__DATABASE``). A server URL and the embedded chDB run
the same code (one clickhouse-connect client). Exit 2 with what to do when it cannot be opened (the embedded
engine is held by a running sink).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from emowatch.streams.cli.common import console
from emowatch.streams.cli.common import settings_or_exit as _settings

CLICKHOUSE_URL = typer.Option(None, "--clickhouse-url", help="ClickHouse server, http(s)://user:pass@host:port "
                                                             "(default: EMOWATCH_SINK__CLICKHOUSE_URL, else the "
                                                             "embedded engine in --data-dir).")
DATA_DIR = typer.Option(None, "--data-dir", help="Data dir of the embedded ClickHouse (default: "
                                                 "EMOWATCH_SINK__DATA_DIR).")


def fail(message: str, code: int) -> typer.Exit:
    console.print(f"[red]error:[/] {escape(message)}")
    return typer.Exit(code)


@contextlib.contextmanager
def open_history(clickhouse_url: str | None, data_dir: Path | None) -> Iterator[tuple[Any, str]]:
    """(client, database), closed afterwards; exit 2 when ClickHouse cannot be opened."""
    from emowatch.streams.analytics.runner import AnalyticsError, open_client

    s = _settings()
    try:
        client = open_client(clickhouse_url or s.sink.clickhouse_url, data_dir or s.sink.data_dir, s.sink.database)
    except AnalyticsError as exc:
        raise fail(str(exc), 2) from None
    try:
        yield client, s.sink.database
    finally:
        client.close()


def load_call_or_exit(clickhouse_url: str | None, data_dir: Path | None, call_id: str) -> dict:
    """The call as ``emowatch.streams.analytics.call_summary.load_call`` reads it; exit 3 when the read fails,
    1 when no scores are stored for it."""
    from emowatch.streams.analytics.call_summary import load_call

    with open_history(clickhouse_url, data_dir) as (client, db):
        try:
            found = load_call(client, db, call_id)
        except Exception as exc:  # noqa: BLE001 - AnalyticsError, or the client's own errors from HistoryReader
            raise fail(f"reading call {call_id} failed: {type(exc).__name__}: {str(exc)[:500]}", 3) from None
    if found is None:
        raise fail(f"no scores stored for call {call_id!r}", 1)
    return found
