"""The cluster form of the migrations (streams/sink/cluster_ddl.py), as text: every bundled statement is
converted (ON CLUSTER, Replicated + Distributed twin, MVs on local tables, views on distributed names),
a migration written like the coming 0003 too, statements without a cluster form are refused, and the
single-server statements are exactly the files' (the renderer is pure: no engine here)."""
from __future__ import annotations

import re

import pytest
from cluster_emulation import with_0003

from emowatch.streams.sink.cluster_ddl import PRODUCT_MODE, ClusterSpec, render
from emowatch.streams.sink.migrations import START, MigrationError, load_migrations, plan

DB = "emowatch"
PATH = "/clickhouse/tables/{shard}/{database}/{table}"
C = ClusterSpec("emo", PATH)
ON = " ON CLUSTER 'emo'"
def cluster_plan(migrations=None):
    return plan(migrations or load_migrations(), DB, C)


def creates(statements):
    """table name -> its CREATE TABLE statement."""
    out = {}
    for s in statements:
        if m := re.match(rf"CREATE TABLE (?:IF NOT EXISTS )?{DB}\.(\w+)", s):
            out[m.group(1)] = s
    return out


def test_single_server_statements_are_the_files_statements_byte_for_byte():
    ms = load_migrations()
    start, statements = plan(ms, DB)
    assert start == [f"CREATE DATABASE IF NOT EXISTS {DB}",  # what apply_migrations ran before the cluster form
                     f"CREATE TABLE IF NOT EXISTS {DB}.schema_migrations (version UInt32, name String, "
                     "checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
                     "ENGINE = ReplacingMergeTree(applied_at) ORDER BY version"]
    assert statements == {m.version: m.statements(DB) for m in ms}
    assert not any("ON CLUSTER" in s or "Replicated" in s for v in statements.values() for s in v)


def test_every_bundled_statement_has_its_cluster_form():
    start, by_version = cluster_plan()
    every = start + [s for v in by_version.values() for s in v]
    assert every and all(ON in s for s in every)
    assert all("non_replicated_deduplication_window" not in s and "{db}" not in s for s in every)
    single = [s for v in plan(load_migrations(), DB)[1].values() for s in v]
    tables = creates(every)
    merge_tree = [n for n, s in creates(single).items() if re.search(r"ENGINE = \w*MergeTree", s)]
    assert set(merge_tree) == {"scores", "scores_rescored", "alerts", "replays", "emotion_minute", "sink_batches",
                               "emotion_steps", "embedding_files"}
    keys = {"scores": "cityHash64(call_id)", "scores_rescored": "cityHash64(call_id)",
            "alerts": "cityHash64(call_id)", "replays": "cityHash64(replay_id)",
            "emotion_steps": "cityHash64(call_id)", "embedding_files": "cityHash64(call_id)",
            "emotion_minute": "cityHash64(business_line, minute, top_emotion)"}
    for name, key in keys.items():
        replicated = rf"ENGINE = Replicated\w*MergeTree\('{re.escape(PATH)}', '{{replica}}'"
        assert re.search(replicated, tables[name + "_local"]), tables[name + "_local"]
        assert tables[name].endswith(f"ENGINE = Distributed('emo', {DB}, {name}_local, {key})"), tables[name]
    for name in ("sink_batches", "schema_migrations"):  # bookkeeping: one replicated table on every server
        assert "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/{table}', " \
               "'{shard}-{replica}'" in tables[name] and name + "_local" not in tables
    mvs = [s for s in every if "MATERIALIZED VIEW" in s]
    mv = next(s for s in mvs if "emotion_minute_mv" in s)
    assert f"TO {DB}.emotion_minute_local AS" in mv and f"FROM {DB}.scores_local GROUP BY" in mv
    steps_mv = next(s for s in mvs if "emotion_steps_mv" in s)
    assert f"TO {DB}.emotion_steps_local AS" in steps_mv and f"FROM {DB}.scores_local\n" in steps_mv
    view_re = rf"CREATE (?:OR REPLACE )?VIEW (?:IF NOT EXISTS )?{DB}\.(\w+)"
    views: dict[str, list[str]] = {}
    single_views: dict[str, list[str]] = {}
    for stmts, out in ((every, views), (single, single_views)):
        for s in stmts:
            if m := re.match(view_re, s):
                out.setdefault(m.group(1), []).append(s)
    assert set(views) == {"calls", "emotion_records", "emotion_frames"}
    for name, forms in views.items():  # unchanged SQL on the distributed names
        for s, one in zip(forms, single_views[name], strict=True):
            head, body = one.split(" AS\n", 1)
            joins = re.search(r"(?<!ARRAY )JOIN", body)
            assert s == f"{head}{ON} AS\n" + body + (f"\nSETTINGS {PRODUCT_MODE}" if joins else "")
    assert all("_local" not in s for forms in views.values() for s in forms)


def test_golden_statements():
    start, by_version = cluster_plan()
    assert start[0] == f"CREATE DATABASE IF NOT EXISTS {DB}{ON}"
    tables = creates([s for v in by_version.values() for s in v])
    assert tables["scores_rescored_local"] == (
        f"CREATE TABLE IF NOT EXISTS {DB}.scores_rescored_local{ON} AS {DB}.scores_local\n"
        f"ENGINE = ReplicatedReplacingMergeTree('{PATH}', '{{replica}}', inserted_at)\n"
        "PARTITION BY toYYYYMM(ts)\nORDER BY (model_version, business_line, call_id, ts, role, seq)\n"
        "TTL toDateTime(ts) + INTERVAL 400 DAY")
    assert tables["scores"] == (f"CREATE TABLE IF NOT EXISTS {DB}.scores{ON} AS {DB}.scores_local\n"
                                f"ENGINE = Distributed('emo', {DB}, scores_local, cityHash64(call_id))")
    assert tables["emotion_minute_local"].endswith(
        f"ENGINE = ReplicatedSummingMergeTree('{PATH}', '{{replica}}')\nPARTITION BY toYYYYMM(minute)\n"
        "ORDER BY (business_line, minute, top_emotion)\nTTL minute + INTERVAL 400 DAY")
    assert tables["scores_local"].startswith(f"CREATE TABLE IF NOT EXISTS {DB}.scores_local{ON}\n(\n"
                                             "    business_line LowCardinality(String),")
    assert tables["sink_batches"].endswith(
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/{table}', '{shard}-{replica}', "
        "written_at)\nORDER BY (group_id, topic, partition)")


def test_a_migration_written_like_0003_is_converted(tmp_path):
    ms = load_migrations(with_0003(tmp_path))
    steps = cluster_plan(ms)[1][99]
    assert steps[0] == (f"ALTER TABLE {DB}.scores_local{ON} ADD COLUMN IF NOT EXISTS origin LowCardinality(String) "
                        "DEFAULT '',\n    ADD COLUMN IF NOT EXISTS lang LowCardinality(String) DEFAULT ''")
    assert steps[1] == steps[0].replace("scores_local", "scores", 1)
    assert "SETTINGS index_granularity = 8192" in steps[2] and "test_steps_local" in steps[2]
    assert steps[3].endswith(f"ENGINE = Distributed('emo', {DB}, test_steps_local, cityHash64(call_id))")
    assert steps[4] == (f"CREATE MATERIALIZED VIEW IF NOT EXISTS {DB}.test_steps_mv{ON} TO {DB}.test_steps_local "
                        "AS\nSELECT business_line, call_id, role, start_ms AS step_ms, label AS emotion, p AS prob\n"
                        f"FROM {DB}.scores_local ARRAY JOIN labels AS label, probs AS p")
    assert steps[5] == (f"CREATE OR REPLACE VIEW {DB}.calls{ON} AS\n"
                        f"SELECT call_id, count() AS chunks FROM {DB}.scores FINAL GROUP BY call_id")
    assert len(steps) == 6


@pytest.mark.parametrize("sql,why", [
    ("DROP TABLE IF EXISTS {db}.replays", "not a kind"),
    ("INSERT INTO {db}.replays (replay_id) VALUES ('x')", "not a kind"),
    ("CREATE TABLE IF NOT EXISTS {db}.log (a Int64) ENGINE = Log", "not of the MergeTree family"),
    ("CREATE TABLE IF NOT EXISTS {db}.r (a Int64) ENGINE = ReplicatedMergeTree('/p/{shard}/{table}', '{replica}') "
     "ORDER BY a", "not of the MergeTree family"),
    ("CREATE TABLE IF NOT EXISTS {db}.t ENGINE = MergeTree ORDER BY a AS SELECT 1 AS a", "only CREATE TABLE"),
    ("CREATE TABLE IF NOT EXISTS {db}.t (a Int64)", "names no ENGINE"),
    ("CREATE TABLE IF NOT EXISTS {db}.x AS {db}.nothing ENGINE = MergeTree ORDER BY a", "not a sharded table"),
    ("CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.mv ENGINE = MergeTree ORDER BY a AS SELECT 1 AS a", "needs TO"),
    ("CREATE MATERIALIZED VIEW {db}.mv TO {db}.emotion_minute AS SELECT * FROM scores", "write tables as"),
    ("CREATE MATERIALIZED VIEW {db}.mv TO {db}.calls AS SELECT * FROM {db}.scores", "not a sharded table"),
    ("ALTER TABLE {db}.scores DELETE WHERE 1", "only ADD COLUMN"),
    ("ALTER TABLE {db}.scores ADD COLUMN a Int8, MODIFY TTL toDateTime(ts) + INTERVAL 1 DAY", "only ADD COLUMN"),
    ("ALTER TABLE {db}.nothing ADD COLUMN a Int8", "not a table made"),
    ("ALTER TABLE {db}.scores ADD COLUMN a Int8, ADD INDEX i a TYPE minmax", "separate statements"),
    ("CREATE VIEW {db}.v AS SELECT * FROM {db}.replays WHERE replay_id IN (SELECT replay_id FROM {db}.replays)",
     "not sharded by call_id"),
    ("CREATE VIEW {db}.v AS SELECT * FROM {db}.scores WHERE call_id IN (SELECT call_id FROM {db}.alerts) "
     "SETTINGS max_threads = 1", "own SETTINGS"),
])
def test_statements_without_a_cluster_form_are_refused_naming_file_and_statement(sql, why):
    sources = [("0001_initial.sql", load_migrations()[0].statements("{db}")), ("0009_new.sql", [sql])]
    with pytest.raises(MigrationError) as ei:
        render(sources, DB, C)
    text = str(ei.value)
    assert text.startswith("0009_new.sql, statement 1 (") and why in text, text
    assert plan(load_migrations(), DB)  # the single-server form is untouched by any of this


def test_index_projection_and_setting_alters_go_to_the_local_table_only():
    sources = [("0001_initial.sql", load_migrations()[0].statements("{db}")), ("0002_sink_batches.sql",
               load_migrations()[1].statements("{db}")), ("0009_tune.sql", [
        "ALTER TABLE {db}.scores ADD INDEX IF NOT EXISTS call_bf call_id TYPE bloom_filter GRANULARITY 1",
        "ALTER TABLE {db}.scores MATERIALIZE INDEX call_bf",
        "ALTER TABLE {db}.emotion_minute MODIFY SETTING non_replicated_deduplication_window = 1000",
        "ALTER TABLE {db}.alerts ADD PROJECTION IF NOT EXISTS p (SELECT * ORDER BY alert_id), "
        "MODIFY SETTING non_replicated_deduplication_window = 1000",
        "ALTER TABLE {db}.sink_batches MODIFY SETTING index_granularity_bytes = 1024"])]
    out = render(sources, DB, C)[-1]
    assert out == [
        f"ALTER TABLE {DB}.scores_local{ON} ADD INDEX IF NOT EXISTS call_bf call_id TYPE bloom_filter GRANULARITY 1",
        f"ALTER TABLE {DB}.scores_local{ON} MATERIALIZE INDEX call_bf",
        # the dedup window alone: nothing to do on a cluster (Replicated tables deduplicate by themselves)
        f"ALTER TABLE {DB}.alerts_local{ON} ADD PROJECTION IF NOT EXISTS p (SELECT * ORDER BY alert_id)",
        f"ALTER TABLE {DB}.sink_batches{ON} MODIFY SETTING index_granularity_bytes = 1024",  # no Distributed twin
    ]


def test_database_must_be_a_plain_name_in_cluster_mode():
    with pytest.raises(MigrationError, match="plain name"):
        render([("start-up", list(START))], "emo-watch", C)
