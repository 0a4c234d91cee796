"""The sink's writes to ClickHouse: a batch's cut record (``sink_batches``) and its rows.

Rows are sent as one Native block per batch (:mod:`emowatch.streams.sink.native`: float arrays straight
from numpy, no Python object per value) with the batch's ``insert_deduplication_token``.

``fault`` is the test seam for ClickHouse outages on the embedded engine: when set, it is called with the
operation's name (``"recorded"``, ``"record"``, ``"insert"``) before each ClickHouse call and may raise,
as a failing server would. Production never sets it (the named fault points of
:mod:`emowatch.streams.faults` are the seam that works in a worker process).

On a ClickHouse cluster ``sink_batches`` is one replicated table on every server (cluster_ddl.py) and the
sink may reach another server after a restart: with ``sync_replica`` the read waits until that server has
every record already written anywhere (``SYSTEM SYNC REPLICA``, which needs that grant).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from emowatch.streams.sink.batches import Batch
from emowatch.streams.sink.native import native_block

STATE_TABLE = "sink_batches"


class SinkWriter:
    def __init__(self, client, database: str, group_id: str, sync_replica: bool = False) -> None:
        self.client, self.database, self.group_id = client, database, group_id  # client: set once connected
        self.sync_replica = sync_replica
        self.fault: Callable[[str], None] | None = None

    def _check(self, op: str) -> None:
        if self.fault is not None:
            self.fault(op)

    def recorded(self, topic: str, partition: int) -> tuple[int, int, str] | None:
        """The newest batch cut recorded for this group's ``topic``/``partition`` (first and last offset, the
        identity of the record at the first: ``Batch.first_key``, '' if recorded before migration 0007), or None."""
        self._check("recorded")
        if self.sync_replica:
            self.client.command(f"SYSTEM SYNC REPLICA {self.database}.{STATE_TABLE}")
        rows = self.client.query(
            f"SELECT first_offset, last_offset, first_key FROM {self.database}.{STATE_TABLE} WHERE group_id = %(g)s "
            "AND topic = %(t)s AND partition = %(p)s ORDER BY written_at DESC LIMIT 1",
            parameters={"g": self.group_id, "t": topic, "p": partition}).result_rows
        return (int(rows[0][0]), int(rows[0][1]), str(rows[0][2])) if rows else None

    def record(self, batch: Batch) -> None:
        """Record ``batch``'s cut; done before its insert, so a crash after the insert can reproduce it."""
        self._check("record")
        self.client.insert(STATE_TABLE, [[self.group_id, batch.topic, batch.partition, batch.first, batch.last,
                                          len(batch.rows), batch.first_key]], database=self.database,
                           column_names=["group_id", "topic", "partition", "first_offset", "last_offset", "rows",
                                         "first_key"])

    def insert(self, table: str, columns: Sequence[tuple[str, str]], batch: Batch) -> None:
        """Insert ``batch``'s rows (``columns``: name and Native type, in row order) with its deduplication
        token: a repeat of a landed batch is dropped."""
        self._check("insert")
        if batch.rows:
            self.client.raw_insert(f"{self.database}.{table}", [name for name, _type in columns],
                                   insert_block=native_block(columns, batch.rows), fmt="Native",
                                   settings={"insert_deduplication_token": batch.token})
