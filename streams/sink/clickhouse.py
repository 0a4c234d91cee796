"""ClickHouse adapter: one code path for a server URL (production) and embedded chDB (local)."""
from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlparse

import clickhouse_connect

from emowatch.streams.resources import clickhouse_schema

log = logging.getLogger(__name__)


def connect(url: str | None, data_dir: Path, database: str):
    """``url`` (http[s]://user:pass@host:port) -> server client; None -> embedded chDB under data_dir.

    chDB allows one process per data path: the sink owns it while it runs.
    """
    if url:
        u = urlparse(url)
        return clickhouse_connect.get_client(host=u.hostname, port=u.port or (8443 if u.scheme == "https" else 8123),
                                             username=u.username or "default", password=u.password or "",
                                             secure=u.scheme == "https")
    path = Path(data_dir) / "clickhouse"
    path.mkdir(parents=True, exist_ok=True)
    return clickhouse_connect.get_client(interface="chdb", path=str(path))


def schema_statements(database: str) -> list[str]:
    sql = clickhouse_schema().read_text(encoding="utf-8")
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip().replace("{db}", database) for s in body.split("\n;") if s.strip()]


def apply_schema(client, database: str) -> None:
    """Create the database, tables and views if missing (idempotent)."""
    for stmt in schema_statements(database):
        client.command(stmt)
