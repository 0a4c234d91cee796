"""The cluster form on the embedded engine (chDB): every statement parses with ClickHouse's own parser, the
single-server path still runs unchanged, and the cluster form runs as far as one embedded server can
(tests/cluster_emulation.py says how far: Distributed tables over local shards, not Keeper or ON CLUSTER)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cluster_emulation import with_0003

from emowatch.streams.sink.migrations import apply_migrations, load_migrations, plan
from emowatch.topics.examples import example_record

pytestmark = pytest.mark.integration  # the embedded ClickHouse (chDB)
DB = "emowatch"
EMULATION = Path(__file__).parents[2] / "cluster_emulation.py"


def test_every_cluster_statement_parses_on_clickhouse(tmp_path):
    from emowatch.streams.sink.clickhouse import connect
    from emowatch.streams.sink.cluster_ddl import ClusterSpec
    start, by_version = plan(load_migrations(with_0003(tmp_path)), DB,
                             ClusterSpec("emo", "/clickhouse/tables/{shard}/{database}/{table}"))
    every = start + [s for v in by_version.values() for s in v]
    client = connect(None, tmp_path, DB)
    try:
        for stmt in every:
            formatted = client.query("SELECT formatQuery(%(q)s)", parameters={"q": stmt}).result_rows[0][0]
            assert "ON CLUSTER emo" in formatted, formatted
        with pytest.raises(Exception, match="Syntax error"):  # the check can fail
            client.query("SELECT formatQuery(%(q)s)", parameters={"q": every[1] + " ENGINE ="})
    finally:
        client.close()
    # start-up 2, 0001: 5 tables twice + 4; 0002: 1; 0004 (the non-replicated dedup window only): nothing; 0099: 6
    assert (len(start), len(by_version[1]), len(by_version[2]), by_version[4], len(by_version[99])) == (2, 14, 1, [], 6)


def test_the_single_server_path_runs_unchanged(tmp_path):
    from emowatch.streams.sink.clickhouse import apply_schema, connect

    client = connect(None, tmp_path, DB)
    try:
        assert apply_schema(client, DB) == [m.version for m in load_migrations()]
        assert apply_migrations(client, DB, cluster=None) == []
        engines = dict(client.query(f"SELECT name, engine FROM system.tables WHERE database = '{DB}'").result_rows)
        assert engines["scores"] == "ReplacingMergeTree" and engines["emotion_minute"] == "SummingMergeTree"
        assert not [n for n, e in engines.items() if n.endswith("_local") or e in ("Distributed",)]
    finally:
        client.close()


@pytest.mark.parametrize("shards", [1, 2])
def test_the_cluster_form_runs_as_far_as_one_embedded_server_can(tmp_path, shards):
    folder = with_0003(tmp_path)
    data = tmp_path / "emu"
    data.mkdir()
    done = subprocess.run([sys.executable, str(EMULATION), str(data), str(shards), str(folder)],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["applied"] == [m.version for m in load_migrations()] + [99] and out["again"] == []
    assert out["recorded"] == [0, 5, out["first_key"]] and out["first_key"]  # sink_batches read back exactly
    engines = out["engines"]
    for table in ("scores", "scores_rescored", "alerts", "replays", "emotion_minute", "emotion_steps", "test_steps"):
        assert engines[table] == "Distributed" and engines[table + "_local"].endswith("MergeTree")
    assert engines["sink_batches"] == engines["schema_migrations"] == "ReplacingMergeTree"
    assert sorted(out["columns"]) == [["scores", "origin"], ["scores_local", "origin"]]  # ALTER on both
    assert "is not replicated" in out["sync_replica"]  # the sink's SYSTEM SYNC REPLICA was sent
    labels = len(example_record("FrameScores")["labels"])
    # 6 score rows inserted through `scores` twice with one dedup token (the retry is dropped on its shard);
    # with 2 shards that are both this server every row is read once per shard
    assert out["scores_local"] == 6
    assert out["scores"] == out["emotion_minute"] == out["emotion_records"] == out["emotion_steps"] == 6 * shards
    assert out["test_steps"] == 6 * labels * shards  # the MV on scores_local -> test_steps_local
    assert out["calls_v2"] == [[f"c{i}", 2 * shards] for i in range(3)]  # CREATE OR REPLACE VIEW
    if shards == 2:  # what the views' distributed_product_mode = 'local' is for
        assert "Double-distributed IN/JOIN subqueries is denied" in out["join_without_setting"]
