"""The cluster form of the schema, run on the embedded engine as far as it goes (a subprocess: chDB's
configuration is per process). ``python tests/cluster_emulation.py DATA_DIR SHARDS`` prints one JSON line.

What chDB (26.9) can and cannot do, found by trying: given a configuration file (``remote_servers`` with
shards on localhost, ``macros``, even ``<zookeeper><implementation>testkeeper``) it runs Distributed tables
over local shards, so Distributed reads, foreground Distributed inserts, materialized views on the local
tables and the views' distributed_product_mode are real. It cannot run the rest: ``ON CLUSTER`` is refused
("Replicated DDL queries are disabled": no DDL worker), and a ReplicatedMergeTree is created but stays
read-only (INSERTs hang). So :func:`emulate` strips ``ON CLUSTER`` and turns each Replicated engine into its
plain MergeTree (same arguments after the Keeper path and replica name) with
``non_replicated_deduplication_window`` standing in for the replicated deduplication window.
With ``SHARDS`` = 2 both shards are this one server: every row is read once per shard (counts double).
"""
from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

ON_CLUSTER = re.compile(r" ON CLUSTER '[^']*'")
REPLICATED = re.compile(r"ENGINE = Replicated(\w+)\('[^']*', '[^']*'(?:, )?")
DEDUP = "non_replicated_deduplication_window = 1000"
DB = "emowatch"
CLUSTER = "emo"

# A test migration (0099) written like the bundled 0003: ALTER ... ADD COLUMN IF NOT EXISTS, a table +
# materialized view from scores with ARRAY JOIN, and CREATE OR REPLACE VIEW (a test migration, not a bundled file).
MIGRATION_0003 = """-- Migration 0003 (test): steps
ALTER TABLE {db}.scores ADD COLUMN IF NOT EXISTS origin LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS lang LowCardinality(String) DEFAULT ''
;
CREATE TABLE IF NOT EXISTS {db}.test_steps
(
    business_line LowCardinality(String),
    call_id       String,
    role          LowCardinality(String),
    step_ms       Int64,
    emotion       LowCardinality(String),
    prob          Float32,
    inserted_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(inserted_at)
ORDER BY (business_line, call_id, role, step_ms, emotion)
SETTINGS non_replicated_deduplication_window = 1000, index_granularity = 8192
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.test_steps_mv TO {db}.test_steps AS
SELECT business_line, call_id, role, start_ms AS step_ms, label AS emotion, p AS prob
FROM {db}.scores ARRAY JOIN labels AS label, probs AS p
;
CREATE OR REPLACE VIEW {db}.calls AS
SELECT call_id, count() AS chunks FROM {db}.scores FINAL GROUP BY call_id
"""


def emulate(sql: str) -> str:
    """A statement of the cluster form as one chDB server runs it (see the module docstring)."""
    out = ON_CLUSTER.sub("", sql)
    if REPLICATED.search(out):
        out = REPLICATED.sub(r"ENGINE = \1(", out)
        has = "\nSETTINGS " in out
        out = out.replace("\nSETTINGS ", f"\nSETTINGS {DEDUP}, ") if has else out + f"\nSETTINGS {DEDUP}"
    return out


def config(path: Path, shards: int) -> Path:
    shard = "<shard><internal_replication>true</internal_replication><replica><host>localhost</host>" \
            "<port>9000</port></replica></shard>"
    path.write_text(f"<clickhouse><tcp_port>9000</tcp_port><macros><shard>01</shard><replica>r1</replica></macros>"
                    f"<remote_servers><{CLUSTER}>{shard * shards}</{CLUSTER}></remote_servers></clickhouse>\n")
    return path


def with_0003(tmp_path):
    from emowatch.streams.resources import clickhouse_migrations_dir

    folder = tmp_path / "migrations"
    folder.mkdir()
    for f in clickhouse_migrations_dir().glob("*.sql"):
        (folder / f.name).write_text(f.read_text())
    (folder / "0099_test_steps.sql").write_text(MIGRATION_0003)
    return folder


class Emulated:
    """A client whose DDL (``command``) runs as :func:`emulate` makes it; everything else is the client's."""

    def __init__(self, client) -> None:
        self.client, self.ddl = client, []

    def command(self, sql: str, *args, **kwargs):
        self.ddl.append(sql)
        return self.client.command(emulate(sql), *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.client, name)


def _scores(n: int) -> list[list]:
    from emowatch.streams.sink.rows import scores_row
    from emowatch.topics.examples import example_record

    now_ms = int(time.time() * 1000)  # recent: older rows would fall to the tables' TTL on insert
    rows = []
    for seq in range(n):
        rec = example_record("FrameScores")
        rec.update(call_id=f"c{seq % 3}", role="CUSTOMER", seq=seq, start_ms=seq * 1000, business_line="retail",
                   event_time=now_ms + seq * 1000,
                   embedding=None)
        rows.append(scores_row(rec, 0, seq))
    return rows


def main(data_dir: str, shards: int, folder: str | None = None) -> dict:
    import clickhouse_connect

    from emowatch.streams.sink.batches import Batch, record_key
    from emowatch.streams.sink.cluster_ddl import CLIENT_SETTINGS, ClusterSpec
    from emowatch.streams.sink.migrations import apply_migrations
    from emowatch.streams.sink.rows import SCORES_NATIVE
    from emowatch.streams.sink.writer import SinkWriter

    cfg = config(Path(data_dir) / "config.xml", shards)
    client = clickhouse_connect.get_client(interface="chdb", path=str(Path(data_dir) / "ch"),
                                           chdb_options={"config-file": str(cfg)}, settings=dict(CLIENT_SETTINGS))
    cluster = ClusterSpec(CLUSTER, "/clickhouse/tables/{shard}/{database}/{table}")
    em = Emulated(client)
    folder_path = Path(folder) if folder else None
    out: dict = {"applied": apply_migrations(em, DB, folder_path, cluster=cluster)}
    out["again"] = apply_migrations(em, DB, folder_path, cluster=cluster)
    out["ddl"] = len(em.ddl)

    def one(sql: str):
        return client.query(sql).result_rows[0][0]

    writer = SinkWriter(client, DB, "g")
    rows = _scores(6)
    batch = Batch("scores-topic", 0, 0, len(rows) - 1, rows, first_key=record_key(rows[0]))
    writer.record(batch)
    out["recorded"] = list(writer.recorded("scores-topic", 0))
    out["first_key"] = batch.first_key
    writer.insert("scores", SCORES_NATIVE, batch)
    writer.insert("scores", SCORES_NATIVE, batch)  # the retried batch: dropped on its shard
    out["scores"] = one(f"SELECT count() FROM {DB}.scores")
    out["scores_local"] = one(f"SELECT count() FROM {DB}.scores_local")
    out["emotion_minute"] = one(f"SELECT sum(chunks) FROM {DB}.emotion_minute")
    out["calls"] = one(f"SELECT sum(chunks) FROM {DB}.calls")
    out["emotion_records"] = one(f"SELECT count() FROM {DB}.emotion_records WHERE granularity = 'utterance'")
    out["emotion_steps"] = one(f"SELECT count() FROM {DB}.emotion_steps")
    try:  # the double-distributed JOIN the views' distributed_product_mode answers for
        out["join_without_setting"] = one(f"SELECT count() FROM {DB}.scores AS s LEFT JOIN "
                                          f"(SELECT call_id FROM {DB}.alerts) AS a ON s.call_id = a.call_id")
    except Exception as exc:  # noqa: BLE001
        out["join_without_setting"] = str(exc)[:300]
    if folder:  # the test's migration 0003 (tests/streams/sink/test_cluster_schema.py)
        out["test_steps"] = one(f"SELECT count() FROM {DB}.test_steps")
        out["calls_v2"] = client.query(f"SELECT call_id, chunks FROM {DB}.calls ORDER BY call_id").result_rows
        out["columns"] = client.query(f"SELECT table, name FROM system.columns WHERE database = '{DB}' "
                                      "AND name = 'origin' ORDER BY table").result_rows
    out["engines"] = dict(client.query(f"SELECT name, engine FROM system.tables WHERE database = '{DB}'").result_rows)
    try:
        SinkWriter(client, DB, "g", sync_replica=True).recorded("scores-topic", 0)
        out["sync_replica"] = "ran"
    except Exception as exc:  # noqa: BLE001 - what the engine answers SYSTEM SYNC REPLICA on a plain table
        out["sync_replica"] = str(exc)[:300]
    client.close()
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None), default=str))
