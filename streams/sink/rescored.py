"""Rescored scores in ClickHouse (``emowatch rescore --store``): the ``scores_rescored`` table.

Production's ``scores`` table is a ReplacingMergeTree keyed by (business line, call, time, role,
seq) without the model: rows of another model for the same chunk would replace production's rows.
``scores_rescored`` has the same columns with ``model_version`` first in its key, so any number of
models' scores for one chunk coexist and production's table is never written. Each insert carries
``insert_deduplication_token`` = model version + a digest of the batch's chunk keys: a rerun of the same
rescore (same model, same audio, same batches) inserts nothing new, and if its batches differ the
rows still collapse on the key (query with ``FINAL``).
"""
from __future__ import annotations

import hashlib

from emowatch.streams.sink.clickhouse import apply_schema
from emowatch.streams.sink.cluster_ddl import ClusterSpec
from emowatch.streams.sink.rows import SCORES_COLUMNS, scores_row

TABLE = "scores_rescored"


def dedup_token(records: list[dict]) -> str:
    """Deterministic token of a batch: the model version(s) and every chunk's (call, role, seq)."""
    h = hashlib.sha256()
    for r in records:
        h.update(f"{r['model']['version']}\x1f{r['call_id']}\x1f{r['role']}\x1f{r['seq']}\x1e".encode())
    versions = sorted({r["model"]["version"] for r in records})
    return f"rescore-{'+'.join(versions)}-{len(records)}-{h.hexdigest()[:24]}"


class RescoredStore:
    """Writes FrameScores records of a rescore to ``<database>.scores_rescored`` (schema applied at start)."""

    def __init__(self, client, database: str, cluster: ClusterSpec | None = None) -> None:
        self.client, self.database = client, database
        apply_schema(client, database, cluster)
        self.rows = 0

    def insert(self, batch: list[tuple[dict, int, int]]) -> None:
        """Insert ``(record, partition, offset)`` rows (the records' positions in the rescore topic)."""
        if not batch:
            return
        rows = [scores_row(r, p, o) for r, p, o in batch]
        self.client.insert(TABLE, rows, database=self.database, column_names=SCORES_COLUMNS,
                           settings={"insert_deduplication_token": dedup_token([r for r, _p, _o in batch])})
        self.rows += len(rows)

    def close(self) -> None:
        self.client.close()
