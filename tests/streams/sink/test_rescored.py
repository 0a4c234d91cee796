"""scores_rescored on the embedded ClickHouse: models coexist per chunk, reruns add nothing, `scores` untouched."""
import time

import pytest

from emowatch.streams.sink.clickhouse import connect
from emowatch.streams.sink.rescored import RescoredStore
from emowatch.topics.examples import example_record

pytestmark = pytest.mark.integration  # the embedded ClickHouse (chDB)
DB = "emowatch"
T0 = int(time.time() * 1000)  # recent: the table's TTL keeps 400 days


def rec(seq, version):
    r = example_record("FrameScores")
    r.update(call_id="c1", seq=seq, event_time=T0 + seq * 1000, embedding=None,
             model={"name": "m", "version": version})
    return r


def test_two_models_for_the_same_chunks_coexist_and_a_rerun_adds_nothing(tmp_path):
    store = RescoredStore(connect(None, tmp_path, DB), DB)
    try:
        for version in ("v1", "v2"):
            store.insert([(rec(s, version), 0, s) for s in range(3)])
        store.insert([(rec(s, "v1"), 0, s) for s in range(3)])  # the same batch again: dropped by its token
        store.insert([(rec(s, "v1"), 1, 10 + s) for s in range(2)])  # other batching: collapses on the key
        q = store.client.query
        assert q(f"SELECT count() FROM {DB}.scores_rescored").result_rows[0][0] == 8
        assert q(f"SELECT model_version, count() FROM {DB}.scores_rescored FINAL GROUP BY model_version "
                 "ORDER BY model_version").result_rows == [("v1", 3), ("v2", 3)]
        assert q(f"SELECT count() FROM {DB}.scores").result_rows[0][0] == 0
        assert store.rows == 11
    finally:
        store.close()
