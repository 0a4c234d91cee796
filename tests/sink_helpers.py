"""Shared by the sink's tests: counting every row ClickHouse accepted, duplicates included."""
from __future__ import annotations

from pathlib import Path


def count_inserted_rows(data_dir: Path, database: str = "emowatch") -> None:
    """Create the schema in the embedded ClickHouse under ``data_dir``, plus a count of the rows of every
    insert into ``scores`` and ``alerts`` that ClickHouse did not drop as a repeat: materialized views into a
    SummingMergeTree with the tables' deduplication window (a repeated block - same token - is dropped there
    too). A duplicate row stays counted after a merge of the ReplacingMergeTree tables collapsed it, which
    ``count()`` alone can miss. Read back with :func:`inserted_rows`."""
    from emowatch.streams.sink.clickhouse import apply_schema, connect

    client = connect(None, data_dir, database)
    try:
        apply_schema(client, database)
        client.command(f"CREATE TABLE {database}.test_inserted (tbl String, n UInt64) ENGINE = SummingMergeTree "
                       "ORDER BY tbl SETTINGS non_replicated_deduplication_window = 1000")
        for table in ("scores", "alerts"):
            client.command(f"CREATE MATERIALIZED VIEW {database}.test_inserted_{table} TO {database}.test_inserted "
                           f"AS SELECT '{table}' AS tbl, count() AS n FROM {database}.{table}")
    finally:
        client.close()


def inserted_rows(client, database: str = "emowatch") -> dict[str, int]:
    """{"scores": rows, "alerts": rows} accepted since :func:`count_inserted_rows` (tables never written left out)."""
    return {t: int(n) for t, n in client.query(f"SELECT tbl, sum(n) FROM {database}.test_inserted GROUP BY tbl")
            .result_rows}
