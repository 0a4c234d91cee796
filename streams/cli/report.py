"""`emowatch report call ID --png FILE`: the call's emotion timeline as a picture (streams/analytics/report.py).

The same picture as the console's call page link (``GET /v1/calls/{id}/report.png``). Exit codes: 0 written;
1 unknown call; 2 invalid options or ClickHouse cannot be opened; 3 reading the call failed.
"""
from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from emowatch.streams.cli.common import console
from emowatch.streams.cli.history_store import CLICKHOUSE_URL, DATA_DIR, fail, load_call_or_exit

report_app = typer.Typer(no_args_is_help=True, help="Pictures of the history.")


@report_app.command("call")
def report_call(
    call_id: str = typer.Argument(..., help="The call id."),
    png: Path = typer.Option(..., "--png", help="Write the PNG here.", dir_okay=False),
    step_ms: int = typer.Option(200, "--step-ms", help="Timeline resolution: a multiple of 200 ms (coarser = "
                                                       "mean of the 200 ms steps)."),
    clickhouse_url: str = CLICKHOUSE_URL, data_dir: Path = DATA_DIR,
) -> None:
    """The call's emotion timeline per role (stacked probabilities), segment summary and alerts, as a PNG."""
    from emowatch.models.timeline import DEFAULT_STEP_MS
    from emowatch.streams.analytics.report import render_call_png

    if step_ms < DEFAULT_STEP_MS or step_ms % DEFAULT_STEP_MS:
        raise fail(f"--step-ms must be a positive multiple of {DEFAULT_STEP_MS}, not {step_ms}", 2)
    found = load_call_or_exit(clickhouse_url, data_dir, call_id)
    found.pop("first_time", None)
    data = render_call_png(found, step_ms=step_ms)
    try:
        png.parent.mkdir(parents=True, exist_ok=True)
        png.write_bytes(data)
    except OSError as exc:
        raise fail(f"cannot write {png}: {exc}", 2) from None
    console.print(f"wrote {escape(str(png))} ({len(data) // 1024} KiB): call {escape(call_id)}, "
                  f"{len(found['roles'])} role(s), {len(found['alerts'])} alert event(s)")
