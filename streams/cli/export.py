"""`emowatch export embeddings --call ID --out DIR [--role R]`: a call's stored embeddings as .npy files.

Writes ``DIR/<call_id>/<role>_<seq>.npy`` and records each in ClickHouse ``embedding_files`` (so
``emotion_records.embedding_path`` is the file's path); idempotent (streams/analytics/embeddings.py).
Exit codes: 0 done (also when no chunk had an embedding: the count says so); 1 unknown call;
2 invalid options or ClickHouse cannot be opened; 3 reading or recording failed.
"""
from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from emowatch.streams.cli.common import console
from emowatch.streams.cli.history_store import CLICKHOUSE_URL, DATA_DIR, fail, open_history

export_app = typer.Typer(no_args_is_help=True, help="Export stored data as files.")


@export_app.command("embeddings")
def export_embeddings(
    call: str = typer.Option(..., "--call", help="The call id."),
    out: Path = typer.Option(..., "--out", help="Folder; files go to OUT/<call_id>/<role>_<seq>.npy.",
                             file_okay=False),
    role: str = typer.Option(None, "--role", help="Only this role (CUSTOMER, AGENT, MIXED; any case)."),
    clickhouse_url: str = CLICKHOUSE_URL, data_dir: Path = DATA_DIR,
) -> None:
    """Write a call's chunk embeddings (float32 .npy, one per chunk) and record their paths."""
    from emowatch.streams.analytics.embeddings import EMBEDDINGS_SETTING, export_embeddings, safe_call_dir
    from emowatch.streams.analytics.runner import AnalyticsError, NoScores

    try:
        safe_call_dir(out, call)
    except AnalyticsError as exc:
        raise fail(str(exc), 2) from None
    with open_history(clickhouse_url, data_dir) as (client, db):
        try:
            done = export_embeddings(client, db, call, out, role.upper() if role else None)
        except AnalyticsError as exc:
            raise fail(str(exc), 1 if isinstance(exc, NoScores) else 3) from None
    if done.files:
        console.print(f"wrote {len(done.files)} embedding file(s) to {escape(str(done.files[0].parent))} "
                      "(recorded in embedding_files: emotion_records.embedding_path)")
    if done.missing:
        console.print(f"[yellow]{done.missing} of {done.chunks} chunk(s) have no stored embedding[/]: the inference "
                      f"agent stores one per chunk only when it runs with {EMBEDDINGS_SETTING}; chunks scored "
                      "without it have none to export")
