"""The pure parts of ``emowatch bench history``: the targets are the issue's, the timing helper
(the generated history: test_history_data.py)."""
from __future__ import annotations

from emowatch.bench.history import RANGES, SINK_KEYS, TARGETS, timed
from emowatch.bench.history_data import SIZES


def test_targets_and_sizes_are_the_issues():
    assert TARGETS == {"sink_msgs_per_s_min": 5_000, "sink_frames_per_s_min": 250_000,
                       "sink_batch_over_single_min": 20.0, "query_p50_ms_max": 500.0, "timeline_ms_max": 100.0}
    assert SIZES["full"] >= 1_000_000 and SIZES["quick"] == 100_000 and SIZES["test"] <= 3_000
    assert SINK_KEYS == ("sink_msgs_per_s", "sink_frames_per_s", "sink_single_msgs_per_s", "sink_batch_over_single")
    assert RANGES == {"24h": 86_400_000, "7d": 604_800_000}


def test_timed_reports_percentiles_over_the_runs():
    calls = []
    res = timed(lambda: calls.append(1) or [1, 2, 3], runs=4)
    assert len(calls) == 5 and res["rows"] == 3  # one warm-up, four timed
    assert 0 <= res["p50_ms"] <= res["p90_ms"] <= res["max_ms"]
