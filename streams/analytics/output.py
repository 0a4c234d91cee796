"""Rows -> what ``emowatch query`` prints: a rich table, JSON or CSV. One function for every command.

* ``table``: one rich table per section (times as ``2025-01-31 10:00:00Z``, floats to 6 decimals, lists
  comma-joined; a command may leave out columns that JSON and CSV carry).
* ``json``: a list of objects (one per row, keys = column names; times ISO 8601 in UTC with ``Z``; lists and
  maps as JSON); several sections -> an object ``{section: [objects...]}``.
* ``csv``: a header row then the rows (lists comma-joined, maps as JSON); several sections -> each as
  ``# section`` then its header and rows, sections separated by an empty line.
"""
from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from emowatch.streams.analytics.runner import Result

__all__ = ["FORMATS", "Section", "format_text", "render"]

FORMATS = ("table", "json", "csv")
Section = tuple[str, Result]  #: (title, rows)


def _utc(v: datetime) -> datetime:
    """clickhouse-connect returns naive UTC datetimes by default (its ``tz_mode="naive_utc"``)."""
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)


def _iso(v: datetime | date) -> str:
    if isinstance(v, datetime):
        return _utc(v).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return v.isoformat()


def _json_value(v: Any) -> Any:
    if isinstance(v, (datetime, date)):
        return _iso(v)
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if hasattr(v, "item"):  # numpy scalar
        return _json_value(v.item())
    return v


def _cell(v: Any) -> str:
    """A value as text in a table or CSV cell."""
    v = _json_value(v)
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return ",".join(_cell(x) for x in v)
    if isinstance(v, dict):
        return json.dumps(v, ensure_ascii=False, sort_keys=True)
    return str(v)


def _objects(result: Result) -> list[dict[str, Any]]:
    return [{c: _json_value(v) for c, v in zip(result.columns, row)} for row in result.rows]


def _csv(result: Result) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(result.columns)
    w.writerows([_cell(v) for v in row] for row in result.rows)
    return buf.getvalue()


def format_text(sections: Sequence[Section], fmt: str) -> str:
    """``json`` or ``csv`` text of the sections (see the module doc)."""
    if fmt == "json":
        body: Any = _objects(sections[0][1]) if len(sections) == 1 else {t: _objects(r) for t, r in sections}
        return json.dumps(body, ensure_ascii=False, indent=2) + "\n"
    if fmt == "csv":
        if len(sections) == 1:
            return _csv(sections[0][1])
        return "\n".join(f"# {t}\n{_csv(r)}" for t, r in sections)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")


def _table(title: str, result: Result, hide: frozenset[str]) -> Table:
    t = Table(title=escape(title), title_justify="left", header_style="bold")
    shown = [i for i, c in enumerate(result.columns) if c not in hide]
    for i in shown:
        numeric = all(isinstance(r[i], (int, float, Decimal)) and not isinstance(r[i], bool)
                      for r in result.rows if r[i] is not None)
        t.add_column(escape(result.columns[i]), justify="right" if numeric else "left", overflow="fold")
    for row in result.rows:
        t.add_row(*(escape(_table_cell(row[i])) for i in shown))
    return t


def _table_cell(v: Any) -> str:
    if isinstance(v, datetime):
        return _utc(v).strftime("%Y-%m-%d %H:%M:%S") + "Z"
    if isinstance(v, float) and math.isfinite(v):
        return str(round(v, 6))  # Float32 columns arrive as 0.800000011920929
    return _cell(v) if v is not None else "–"


def render(sections: Sequence[Section], fmt: str, console: Console, *, empty: str = "no rows",
           hide: frozenset[str] = frozenset()) -> None:
    """Print the sections in ``fmt`` (``table`` through ``console``, without the columns in ``hide``: a
    terminal is narrow; ``json``/``csv`` as plain text, every column)."""
    if fmt == "table":
        for title, result in sections:
            if result.rows:
                console.print(_table(title, result, hide))
            else:
                console.print(f"[bold]{escape(title)}[/]: {escape(empty)}")
        return
    text = format_text(sections, fmt)
    console.file.write(text)
    console.file.flush()
