"""Versioned migrations: a database made by the schema before migrations (0001's statements, no record)
is upgraded in place with its data; migrations apply once; an edited applied migration is refused."""
from __future__ import annotations

import pytest

from emowatch.streams.sink.migrations import MigrationError, apply_migrations, load_migrations

pytestmark = pytest.mark.integration  # the embedded ClickHouse (chDB)
DB = "emowatch"


def test_files_are_ordered_and_start_with_the_former_schema():
    ms = load_migrations()
    assert [m.version for m in ms] == sorted(m.version for m in ms) and ms[0].version == 1
    assert ms[0].name == "initial" and any("sink_batches" in s for m in ms for s in m.statements(DB))


def test_an_old_database_is_upgraded_in_place_and_keeps_its_data(tmp_path):
    from emowatch.streams.sink.clickhouse import connect

    client = connect(None, tmp_path, DB)
    try:
        for stmt in load_migrations()[0].statements(DB):  # what the old schema.sql created
            client.command(stmt)
        client.command(f"INSERT INTO {DB}.replays (replay_id, source) VALUES ('r-old', 'kafka')")
        assert apply_migrations(client, DB) == [m.version for m in load_migrations()]
        assert apply_migrations(client, DB) == []  # applied once
        assert client.query(f"SELECT replay_id FROM {DB}.replays").result_rows == [("r-old",)]
        assert client.query(f"SELECT count() FROM {DB}.sink_batches").result_rows == [(0,)]
        rec = client.query(f"SELECT version, name FROM {DB}.schema_migrations FINAL ORDER BY version").result_rows
        assert rec == [(m.version, m.name) for m in load_migrations()]
    finally:
        client.close()


def test_an_applied_migration_that_was_edited_is_refused(tmp_path):
    from emowatch.streams.sink.clickhouse import connect

    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_t.sql").write_text("CREATE TABLE IF NOT EXISTS {db}.t (a Int64) ENGINE = MergeTree ORDER BY a\n")
    client = connect(None, tmp_path, DB)
    try:
        assert apply_migrations(client, DB, folder) == [1]
        (folder / "0001_t.sql").write_text("CREATE TABLE IF NOT EXISTS {db}.t (b Int64) ENGINE = Log\n")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            apply_migrations(client, DB, folder)
        (folder / "2_bad.sql").write_text("SELECT 1\n")
        with pytest.raises(MigrationError, match="NNNN_name.sql"):
            load_migrations(folder)
    finally:
        client.close()
