"""A replay's ClickHouse side: its alerts (``alerts`` with ``replay_id`` set), its row in ``replays``,
and production's alerts for ``--diff``. No Kafka here.

Alerts go through ``sink/rows.alerts_row`` like production's, with partition 0 and offset -1 (they were
never on a topic); each page is inserted with the dedup token ``replay:<id>:<page>:<rows>``, so a retried
page (or the same replay run again: same id, same canonical order) is dropped, and rows collapse on the
table's natural key anyway. chDB allows one process per data directory: when the sink holds it, opening
fails with a message that says so (stop the sink, or give a server URL).
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from emowatch.streams.replay.params import Window
from emowatch.streams.sink.clickhouse import apply_schema, connect
from emowatch.streams.sink.cluster_ddl import ClusterSpec
from emowatch.streams.sink.history import ALERT_FIELDS
from emowatch.streams.sink.rows import ALERTS_COLUMNS, alerts_row
from emowatch.topics.errors import EmowatchError

__all__ = ["REPLAYS_COLUMNS", "ReplayStoreError", "open_store", "production_alerts", "write_alerts", "write_replay"]

PAGE_ROWS = 5_000
REPLAYS_COLUMNS = ["replay_id", "started_at", "finished_at", "source", "scores_topic", "window_from", "window_to",
                   "business_line", "calls_filter", "rule_set", "rule_version", "rules_file", "model_versions",
                   "sweep", "messages", "calls", "alerts", "events", "offsets_fallback"]
_SELECT = ", ".join("toUnixTimestamp64Milli(ts) AS event_time" if f == "event_time" else f for f in ALERT_FIELDS)


class ReplayStoreError(EmowatchError, RuntimeError):
    """ClickHouse cannot be opened or written."""


def open_store(url: str | None, data_dir: Path, database: str, cluster: ClusterSpec | None = None) -> Any:
    """A client with the schema applied (in its cluster form with a ``cluster``); :class:`ReplayStoreError`
    with what to do when it cannot be opened."""
    try:
        client = connect(url, data_dir, database, cluster)
    except Exception as exc:  # noqa: BLE001 - clickhouse-connect / chDB raise assorted types
        if url:
            raise ReplayStoreError(f"cannot reach the ClickHouse server: {type(exc).__name__}: {exc}") from exc
        raise ReplayStoreError(
            f"cannot open the embedded ClickHouse in {Path(data_dir) / 'clickhouse'} ({type(exc).__name__}). "
            "Only one process may open it: if the sink (`emowatch worker sink`) is running, stop it, or pass "
            "--clickhouse-url of a ClickHouse server; --no-store replays without ClickHouse.") from exc
    try:
        apply_schema(client, database, cluster)
    except Exception as exc:  # noqa: BLE001
        raise ReplayStoreError(f"cannot apply the schema to ClickHouse database {database!r}: {exc}") from exc
    return client


def _ts(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000.0, tz=UTC)


def write_alerts(client: Any, database: str, replay_id: str, events: Sequence[dict[str, Any]],
                 page_rows: int = PAGE_ROWS) -> int:
    """Insert a replay's events (in canonical order) into ``alerts``; rows written."""
    written = 0
    for page, i in enumerate(range(0, len(events), page_rows)):
        chunk = events[i:i + page_rows]
        rows = [alerts_row({**ev, "replay_id": replay_id}, 0, -1) for ev in chunk]
        try:
            client.insert("alerts", rows, database=database, column_names=ALERTS_COLUMNS,
                          settings={"insert_deduplication_token": f"replay:{replay_id}:{page}:{len(rows)}"})
        except Exception as exc:  # noqa: BLE001
            raise ReplayStoreError(f"inserting the replay's alerts failed: {exc}") from exc
        written += len(rows)
    return written


def write_replay(client: Any, database: str, row: dict[str, Any]) -> None:
    """Insert the replay's summary row (``replays``); ``row`` holds REPLAYS_COLUMNS, times in epoch ms."""
    values = dict(row)
    for key in ("started_at", "finished_at", "window_from", "window_to"):
        values[key] = _ts(values[key])
    try:
        client.insert("replays", [[values[c] for c in REPLAYS_COLUMNS]], database=database,
                      column_names=REPLAYS_COLUMNS)
    except Exception as exc:  # noqa: BLE001
        raise ReplayStoreError(f"inserting the replay's summary failed: {exc}") from exc


def production_alerts(client: Any, database: str, window: Window, *, rule_set: str,
                      business_line: str = "*") -> list[dict[str, Any]]:
    """Production's FIRING events (``replay_id = ''``) of ``rule_set`` with event time in the window."""
    conds = ["replay_id = ''", "status = 'FIRING'", "rule_set = {rs:String}",
             "ts >= fromUnixTimestamp64Milli({from_ms:Int64}, 'UTC')"]
    params: dict[str, Any] = {"rs": rule_set, "from_ms": window.from_ms}
    if window.to_ms is not None:
        conds.append("ts < fromUnixTimestamp64Milli({to_ms:Int64}, 'UTC')")
        params["to_ms"] = window.to_ms
    if business_line != "*":
        conds.append("business_line = {bl:String}")
        params["bl"] = business_line
    try:
        res = client.query(f"SELECT {_SELECT} FROM {database}.alerts FINAL WHERE {' AND '.join(conds)} "
                           "ORDER BY inserted_at DESC LIMIT 1 BY alert_id, status", parameters=params)
    except Exception as exc:  # noqa: BLE001
        raise ReplayStoreError(f"reading production alerts failed: {exc}") from exc
    out = []
    for row in res.result_rows:
        r = dict(zip(res.column_names, row))
        r["labels"], r["emotions"], r["channels"] = dict(r["labels"]), list(r["emotions"]), list(r["channels"])
        out.append(r)
    return out
