"""ClickHouse adapter: one code path for a server URL (production) and embedded chDB (local)."""
from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlparse

import clickhouse_connect

from emowatch.streams.sink.cluster_ddl import CLIENT_SETTINGS, ClusterSpec
from emowatch.streams.sink.migrations import apply_migrations

log = logging.getLogger(__name__)


def cluster_of(sink) -> ClusterSpec | None:
    """The cluster of ``sink`` settings (``EMOWATCH_SINK__CLUSTER``), or None for a single server."""
    return ClusterSpec(sink.cluster, sink.replica_path) if sink.cluster else None


def connect(url: str | None, data_dir: Path, database: str, cluster: ClusterSpec | None = None):
    """``url`` (http[s]://user:pass@host:port) -> server client; None -> embedded chDB under data_dir.

    chDB allows one process per data path: the sink owns it while it runs. With a ``cluster`` the client's
    inserts into Distributed tables reach the shards before they return, deduplicated there
    (:data:`emowatch.streams.sink.cluster_ddl.CLIENT_SETTINGS`).
    """
    settings = dict(CLIENT_SETTINGS) if cluster else {}
    if url:
        u = urlparse(url)
        return clickhouse_connect.get_client(host=u.hostname, port=u.port or (8443 if u.scheme == "https" else 8123),
                                             username=u.username or "default", password=u.password or "",
                                             secure=u.scheme == "https", settings=settings)
    path = Path(data_dir) / "clickhouse"
    path.mkdir(parents=True, exist_ok=True)
    return clickhouse_connect.get_client(interface="chdb", path=str(path), settings=settings)


def apply_schema(client, database: str, cluster: ClusterSpec | None = None) -> list[int]:
    """Bring ``database`` to the current schema: apply the pending versioned migrations (idempotent), in their
    cluster form with a ``cluster``; the versions applied now (:mod:`emowatch.streams.sink.migrations`)."""
    return apply_migrations(client, database, cluster=cluster)
