"""Run the analyses: open ClickHouse (server URL or embedded chDB, one code path: clickhouse-connect), run a
:class:`~emowatch.streams.analytics.queries.Query` or a user's read-only SQL, return columns and rows.

chDB allows one process per data directory: while the sink (``emowatch worker sink``, ``emowatch up``)
holds it, :func:`open_client` fails with :class:`AnalyticsError` saying what to do.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emowatch.streams.analytics.queries import Query
from emowatch.topics.errors import EmowatchError

__all__ = ["READ_ONLY_STATEMENTS", "AnalyticsError", "NoScores", "Result", "check_read_only", "open_client", "run",
           "run_sql"]

#: the statements ``emowatch query sql`` accepts (their first keyword); anything else is refused before it is sent
READ_ONLY_STATEMENTS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN")
_COMMENTS_AND_STRINGS = re.compile(r"--[^\n]*|/\*.*?\*/|'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`(?:[^`\\]|\\.)*`",
                                   re.S)


class AnalyticsError(EmowatchError, RuntimeError):
    """ClickHouse cannot be opened, a query is refused, or it failed."""


class NoScores(AnalyticsError):
    """The call asked for has no stored scores."""


@dataclass(frozen=True)
class Result:
    """What a query returned: column names and rows (tuples, ClickHouse types as clickhouse-connect gives them)."""

    columns: list[str]
    rows: list[tuple]

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r)) for r in self.rows]


def open_client(url: str | None, data_dir: Path, database: str) -> Any:
    """A client whose default database is ``database`` (the schema is the sink's; nothing is created)."""
    from emowatch.streams.sink.clickhouse import connect

    try:
        client = connect(url, data_dir, database)
    except Exception as exc:  # noqa: BLE001 - clickhouse-connect / chDB raise assorted types
        if url:
            from emowatch.topics.security import redact_url

            raise AnalyticsError(f"cannot reach the ClickHouse server {redact_url(url)}: "
                                 f"{type(exc).__name__}: {redact_url(str(exc))[:300]}") from exc
        raise AnalyticsError(
            f"cannot open the embedded ClickHouse in {Path(data_dir) / 'clickhouse'} ({type(exc).__name__}): "
            "only one process may open it, and a running sink (`emowatch worker sink`, `emowatch up`, "
            "`emowatch demo`) holds it. Stop the sink and run the command again, or run it against a ClickHouse "
            "server with --clickhouse-url (EMOWATCH_SINK__CLICKHOUSE_URL); while the sink runs, the console and "
            "/v1/history/... read its history.") from exc
    try:
        if not client.query("SELECT count() FROM system.databases WHERE name = {db:String}",
                            parameters={"db": database}).result_rows[0][0]:
            raise AnalyticsError(f"ClickHouse has no database {database!r}: nothing stored yet (the sink creates it "
                                 "when it starts), or EMOWATCH_SINK__DATABASE names another one")
        client.database = database  # unqualified names are the sink's tables
    except BaseException:
        client.close()
        raise
    return client


def run(client: Any, query: Query, database: str) -> Result:
    """Run one of the analyses (``{db}`` -> ``database``)."""
    try:
        res = client.query(query.sql.replace("{db}", database), parameters=query.params)
    except Exception as exc:  # noqa: BLE001
        raise AnalyticsError(f"query {query.name} failed: {type(exc).__name__}: {str(exc)[:500]}") from exc
    return Result(list(res.column_names), [tuple(r) for r in res.result_rows])


def check_read_only(sql: str) -> str:
    """``sql`` stripped, if it is one statement starting with one of :data:`READ_ONLY_STATEMENTS` and without
    ``INTO OUTFILE`` (which chDB would carry out in read-only mode); else :class:`AnalyticsError`."""
    text = sql.strip().rstrip(";").strip()
    bare = _COMMENTS_AND_STRINGS.sub(" ", text)
    words = bare.split()
    first = words[0].upper() if words else ""
    if first.startswith("("):
        first = "SELECT"  # (SELECT ...) UNION ALL (...)
    if first not in READ_ONLY_STATEMENTS:
        raise AnalyticsError(f"only read queries are run here ({', '.join(READ_ONLY_STATEMENTS)}), not "
                             f"{first or 'an empty statement'}")
    if ";" in bare:
        raise AnalyticsError("one statement at a time (found ';' inside the query)")
    if re.search(r"\bINTO\s+OUTFILE\b", bare, re.I):
        raise AnalyticsError("INTO OUTFILE is not allowed: use --format csv|json and redirect the output")
    return text


def run_sql(client: Any, sql: str, database: str) -> Result:
    """A user's query, checked by :func:`check_read_only` and run with ClickHouse's ``readonly=1`` (so a
    write that slips through the check is refused by the engine itself, and ``SETTINGS readonly=0`` too), in
    ``database`` (``SELECT * FROM emotion_records`` works)."""
    text = check_read_only(sql)
    try:
        client.database = database
        res = client.query(text, settings={"readonly": 1})
    except Exception as exc:  # noqa: BLE001
        raise AnalyticsError(f"{type(exc).__name__}: {str(exc)[:800]}") from exc
    return Result(list(res.column_names), [tuple(r) for r in res.result_rows])
